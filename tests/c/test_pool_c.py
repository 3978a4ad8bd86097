"""C kernels for AVERAGE_POOL_2D, MAX_POOL_2D, MEAN: generated C == TFLite Micro == the reference
interpreter, bit for bit for int8 (float32 to 1e-5)."""
from __future__ import annotations

import numpy as np
import pytest

from ccheck import check_c_exact
from edgec.backends.c.emit import emit_c
from edgec.errors import EdgecError
from edgec.ir import Graph, Op, QuantParams, Tensor
from edgec.ir import ops as opreg
from edgec.ir.ops import default_attrs
from edgec.ir.ops.pool import mean_loops


def build(op_type, in_shape, attrs, dtype="int8", in_q=None, out_q=None, axis=None) -> Graph:
    g = Graph(name=op_type.lower())
    g.add_tensor(Tensor("x", in_shape, dtype, quant=in_q))
    inputs = ["x"]
    if axis is not None:
        inputs.append(g.const("axis", np.asarray(axis, np.int32)))
    op = Op(op_type, inputs, ["y"], attrs)
    shape = opreg.get(op_type).shape(op, [g.t(i) for i in inputs])[0]
    g.add_tensor(Tensor("y", shape, dtype, quant=out_q))
    g.ops.append(op)
    g.inputs, g.outputs = ["x"], ["y"]
    return g


# ------------------------------------------------------------------------------------------------
# AVERAGE_POOL_2D / MAX_POOL_2D: odd sizes, channel counts below, at and across the kernels' block
# of 16, every padding/stride/activation combination, windows larger than the image.

POOL_CASES = [
    ((1, 11, 9, 5), dict(stride_w=2, stride_h=3, filter_width=3, filter_height=4, padding="SAME",
                         fused_activation_function="RELU6")),
    ((1, 11, 9, 5), dict(stride_w=2, stride_h=3, filter_width=3, filter_height=4, padding="VALID")),
    ((1, 7, 10, 19), dict(stride_w=1, stride_h=1, filter_width=3, filter_height=3, padding="SAME",
                          fused_activation_function="RELU")),
    ((1, 13, 6, 7), dict(stride_w=2, stride_h=2, filter_width=2, filter_height=2, padding="SAME",
                         fused_activation_function="RELU_N1_TO_1")),
    ((1, 7, 5, 35), dict(stride_w=1, stride_h=1, filter_width=5, filter_height=7, padding="VALID")),
    ((1, 6, 7, 16), dict(stride_w=3, stride_h=2, filter_width=5, filter_height=5, padding="SAME")),
    ((1, 9, 9, 33), dict(stride_w=2, stride_h=2, filter_width=3, filter_height=3, padding="VALID",
                         fused_activation_function="RELU6")),
    ((1, 3, 5, 3), dict(stride_w=1, stride_h=2, filter_width=7, filter_height=4, padding="SAME")),
]


def _pool_quant(case: int):
    rng = np.random.default_rng(case)
    q = QuantParams(float(rng.uniform(0.01, 0.1)), int(rng.integers(-30, 30)))
    return q, q    # the pools need equal input/output quantization


@pytest.mark.parametrize("case", range(len(POOL_CASES)))
@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("op_type", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
def test_pool(op_type, dtype, case):
    shape, attrs = POOL_CASES[case]
    iq, oq = _pool_quant(case) if dtype == "int8" else (None, None)
    g = build(op_type, shape, default_attrs(op_type, **attrs), dtype, iq, oq)
    check_c_exact(g, n=100, seed=case)


def test_average_pool_rounds_half_away_from_zero():
    g = build("AVERAGE_POOL_2D", (1, 1, 8, 1),
              default_attrs("AVERAGE_POOL_2D", stride_w=2, stride_h=1, filter_width=2,
                            filter_height=1, padding="VALID"), "int8", QuantParams(0.05, 0), QuantParams(0.05, 0))
    x = np.array([1, 2, -1, -2, 3, 0, -3, 0], np.int8).reshape(1, 1, 8, 1)
    check_c_exact(g, inputs=[x])


# ------------------------------------------------------------------------------------------------
# MEAN

MEAN_CASES = [
    # in_shape, axis, keep_dims
    ((1, 7, 9, 5), [1, 2], True),       # global average pool
    ((1, 7, 9, 5), [2, 1], False),
    ((1, 7, 9, 5), [3], False),         # contiguous inner reduction
    ((1, 7, 9, 5), [-1, 1], True),      # kept dim between two reduced ones
    ((1, 7, 9, 5), [1, 2, 3], True),
    ((1, 6, 10), [1], False),
    ((1, 6, 10), [-1, 2], True),        # duplicate axis
    ((1, 300, 5), [1], True),           # 300: not a power of two
    ((1, 2, 3, 4, 5), [1, 3], False),   # alternating reduced / kept
    ((1, 3, 1, 11, 6), [2, 4], True),   # a reduced size-1 dim
]


def _mean_quant(case: int, shape, axis, ratio=None):
    """Input quantization and an output scale that puts the means' spread at ~40 LSB (or
    in_scale / out_scale = ratio), centred by the output zero point, so most outputs are not
    saturated (uniform int8 inputs average -0.5)."""
    rng = np.random.default_rng(100 + case)
    count = int(np.prod([shape[a] for a in axis]))
    s = float(rng.uniform(0.01, 0.1))
    if ratio is None:
        ratio = 40 * np.sqrt(count) / 74 * float(rng.uniform(0.7, 1.4))
    lim = int(min(30, 100 / ratio))
    in_zp = int(rng.integers(-lim, lim + 1))
    out_zp = int(np.clip(np.round((0.5 + in_zp) * ratio) + rng.integers(-10, 11), -128, 127))
    return QuantParams(s, in_zp), QuantParams(s / ratio, out_zp)


@pytest.mark.parametrize("case", range(len(MEAN_CASES)))
@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_mean(case, dtype):
    shape, axis, keep = MEAN_CASES[case]
    iq = oq = None
    if dtype == "int8":
        iq, oq = _mean_quant(case, shape, [a % len(shape) for a in set(axis)])
    g = build("MEAN", shape, default_attrs("MEAN", keep_dims=keep), dtype, iq, oq, axis=axis)
    check_c_exact(g, n=100, seed=case)


@pytest.mark.parametrize("shape,axis,ratio", [
    ((1, 7, 9, 5), [1, 2], 1.0),                 # equal quantization (still QuantizedMeanOrSum)
    ((1, 2, 37), [1], 3.0),                      # multiplier > 1: a left shift remains after 1/count
    ((1, 300, 5), [1], 2.0 ** -25),              # the shift clamp min(s, 31 + shift) applies
    ((1, 4, 5, 3), [1, 2], 0.3),
], ids=str)
def test_mean_int8_multipliers(shape, axis, ratio):
    iq, oq = _mean_quant(len(shape), shape, axis, ratio)
    if ratio == 1.0:
        oq = iq
    g = build("MEAN", shape, default_attrs("MEAN", keep_dims=False), "int8", iq, oq, axis=axis)
    check_c_exact(g, n=100)


def test_mean_loops():
    # global average pool: one kept dim (C, stride 1), one reduced run (H*W, stride C)
    assert mean_loops((1, 7, 9, 5), {1, 2}) == ([1, 1, 1, 1, 5], [0, 0, 0, 0, 1],
                                                 [1, 1, 1, 1, 63], [0, 0, 0, 0, 5])
    od, os_, rd, rs = mean_loops((1, 2, 3, 4, 5), {1, 3})
    assert (od[-2:], os_[-2:], rd[-2:], rs[-2:]) == ([3, 5], [20, 1], [2, 4], [60, 5])
    assert mean_loops((2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2), {0, 2, 4, 6, 8, 10}) is None


def test_unsupported_dtypes_raise():
    q = QuantParams(0.001, 0)
    g = build("MAX_POOL_2D", (1, 4, 4, 3), default_attrs("MAX_POOL_2D", stride_w=1, stride_h=1, filter_width=2,
                                                           filter_height=2, padding="VALID"), "int16", q, q)
    with pytest.raises(EdgecError, match="int8 and float32"):
        emit_c(g)
    g = build("MEAN", (1, 4, 4, 3), default_attrs("MEAN"), "int16", q, q, axis=[1, 2])
    with pytest.raises(EdgecError, match="int8 and float32"):
        emit_c(g)
