"""AVERAGE_POOL_2D, MAX_POOL_2D, MEAN: the numpy reference against LiteRT's reference kernels and
TFLite Micro, bit for bit (float32 to 1e-5)."""
from __future__ import annotations

import numpy as np
import pytest

import opcheck
from edgec.ir import Graph, Op, QuantParams, Tensor
from edgec.ir import ops as opreg
from edgec.ir.interpret import run
from edgec.ir.ops import default_attrs


def qp(scale, zp=0) -> QuantParams:
    return QuantParams(np.asarray(scale, np.float32), np.asarray(zp))


def build(op_type, in_shape, attrs, dtype="int8", seed=0, same_quant=True, axis=None) -> Graph:
    """One-op graph; quantized outputs share the input's quantization unless same_quant=False
    (MEAN only: the pools require equal quantization)."""
    rng = np.random.default_rng(seed)
    g = Graph(name=op_type.lower())
    iq = oq = None
    if dtype != "float32":
        i8 = dtype == "int8"
        s = rng.uniform(0.01, 0.1)
        z = int(rng.integers(-30, 30)) if i8 else 0            # int16 kernels need zero points of 0
        iq = qp(s, z)
        oq = qp(s, z) if same_quant else qp(rng.uniform(0.002, 0.05),
                                             int(rng.integers(-30, 30)) if i8 else 0)
    g.add_tensor(Tensor("x", in_shape, dtype, quant=iq))
    inputs = ["x"]
    if axis is not None:
        inputs.append(g.const("axis", np.asarray(axis, np.int32)))
    op = Op(op_type, inputs, ["y"], attrs)
    shape = opreg.get(op_type).shape(op, [g.t(i) for i in inputs])[0]
    g.add_tensor(Tensor("y", shape, dtype, quant=oq))
    g.ops.append(op)
    g.inputs, g.outputs = ["x"], ["y"]
    return g


# ------------------------------------------------------------------------------------------------
# AVERAGE_POOL_2D / MAX_POOL_2D

POOL_CASES = [
    # in_shape, Pool2DOptions
    ((1, 11, 9, 5), dict(stride_w=2, stride_h=3, filter_width=3, filter_height=4, padding="SAME",
                         fused_activation_function="RELU6")),
    ((1, 11, 9, 5), dict(stride_w=2, stride_h=3, filter_width=3, filter_height=4, padding="VALID")),
    ((1, 7, 10, 3), dict(stride_w=1, stride_h=1, filter_width=3, filter_height=3, padding="SAME",
                         fused_activation_function="RELU")),
    ((1, 13, 6, 7), dict(stride_w=2, stride_h=2, filter_width=2, filter_height=2, padding="SAME",
                         fused_activation_function="RELU_N1_TO_1")),
    ((1, 7, 5, 17), dict(stride_w=1, stride_h=1, filter_width=5, filter_height=7, padding="VALID")),
    ((1, 6, 7, 4), dict(stride_w=3, stride_h=2, filter_width=5, filter_height=5, padding="SAME")),
]


@pytest.mark.parametrize("case", range(len(POOL_CASES)))
@pytest.mark.parametrize("dtype", ["float32", "int8", "int16"])
@pytest.mark.parametrize("op_type", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
def test_pool(op_type, dtype, case):
    shape, attrs = POOL_CASES[case]
    g = build(op_type, shape, default_attrs(op_type, **attrs), dtype, seed=case)
    opcheck.check_bit_exact(g, n=3, seed=case)


def test_average_pool_rounds_half_away_from_zero():
    # Two taps per window: every odd sum is a .5 average, which TFLite rounds away from zero.
    g = build("AVERAGE_POOL_2D", (1, 1, 8, 1),
              default_attrs("AVERAGE_POOL_2D", stride_w=2, stride_h=1, filter_width=2,
                            filter_height=1, padding="VALID"), "int8")
    x = np.array([1, 2, -1, -2, 3, 0, -3, 0], np.int8).reshape(1, 1, 8, 1)
    assert run(g, [x])[0].reshape(-1).tolist() == [2, -2, 2, -2]
    opcheck.check_bit_exact(g, inputs=[x])


# ------------------------------------------------------------------------------------------------
# MEAN

MEAN_CASES = [
    # in_shape, axis, keep_dims
    ((1, 7, 9, 5), [1, 2], True),       # global average pool
    ((1, 7, 9, 5), [2, 1], False),
    ((1, 7, 9, 5), [3], False),
    ((1, 7, 9, 5), [-1, 1], True),
    ((1, 7, 9, 5), [1, 2, 3], True),
    ((1, 6, 10), [1], False),
    ((1, 6, 10), [-1, 2], True),        # duplicate axis
    ((1, 300, 5), [1], True),           # 300 = not a power of two, shift > 8
    ((1, 2, 3, 4, 5), [1, 3], False),
]


@pytest.mark.parametrize("case", range(len(MEAN_CASES)))
@pytest.mark.parametrize("dtype,same_quant", [("float32", True), ("int8", True), ("int8", False),
                                              ("int16", True), ("int16", False)])
def test_mean(case, dtype, same_quant):
    shape, axis, keep = MEAN_CASES[case]
    g = build("MEAN", shape, default_attrs("MEAN", keep_dims=keep), dtype, seed=case,
              same_quant=same_quant, axis=axis)
    opcheck.check_bit_exact(g, n=3, seed=case)


def test_mean_shapes():
    get = opreg.get("MEAN").shape
    g = build("MEAN", (1, 7, 9, 5), default_attrs("MEAN", keep_dims=True), "float32", axis=[1, -2])
    assert get(g.ops[0], [g.t(i) for i in g.ops[0].inputs]) == [(1, 1, 1, 5)]
    g = build("MEAN", (1, 7, 9, 5), default_attrs("MEAN"), "float32", axis=[2, 1, 2])
    assert get(g.ops[0], [g.t(i) for i in g.ops[0].inputs]) == [(1, 5)]


def test_registry_entries():
    r = opreg.REGISTRY
    for name in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        assert r[name].out_quant == "same" and r[name].options == "Pool2DOptions"
        assert r[name].quant_dtypes == ("int8", "int16")
    assert r["MEAN"].out_quant == "calibrate" and r["MEAN"].int_operands == (1,)
    assert r["MEAN"].options == "ReducerOptions"
    assert r["MEAN"].quant_dtypes == ("int8", "int16")
