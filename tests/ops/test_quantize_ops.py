"""QUANTIZE, DEQUANTIZE and DENSIFY: the numpy reference against LiteRT's reference kernels and
TFLite Micro, bit for bit.

Runtime support differs, so some cases run against one runtime only (tflm=False / litert skipped),
each marked: TFLM quantizes per tensor only (per-channel QUANTIZE fails to prepare, per-channel
DEQUANTIZE silently uses channel 0's scale), has no float16 DEQUANTIZE and no DENSIFY; LiteRT
requires zero point 0 on int16 for int16->int16 QUANTIZE and int16 DEQUANTIZE, and has no
int8->int32 QUANTIZE.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgec.backends.tflite import write_tflite
from edgec.ir import Graph, Op, QuantParams, Tensor
from edgec.ir.interpret import run_batch
from edgec.ir.ops import default_attrs
from edgec.run.tflm import run_tflm
from opcheck import check_bit_exact, random_inputs

Q = QuantParams


def one_op(op_type, shape, in_dtype, in_q, out_dtype, out_q) -> Graph:
    g = Graph(name=op_type.lower())
    g.add_tensor(Tensor("x", shape, in_dtype, quant=in_q))
    g.add_tensor(Tensor("y", shape, out_dtype, quant=out_q))
    g.inputs, g.outputs = ["x"], ["y"]
    g.ops.append(Op(op_type, ["x"], ["y"], default_attrs(op_type)))
    return g


def check_tflm_only(g, n=3, seed=0):
    xs = random_inputs(g, n, seed)
    want = run_batch(g, xs)
    got = run_tflm(write_tflite(g), xs)
    for w, o in zip(want, got):
        assert w.shape == o.shape
        np.testing.assert_array_equal(o, w)


# -- QUANTIZE float -> int -------------------------------------------------------------------------

OUT_PARAMS = [("int8", Q(0.05, 3)), ("int8", Q(0.25, -128)), ("int8", Q(0.007, 127)),
              ("int16", Q(0.001, 0)), ("int16", Q(0.25, 7)), ("int16", Q(3e-5, -100))]


@pytest.mark.parametrize("dtype,q", OUT_PARAMS, ids=lambda v: str(v) if isinstance(v, str) else
                         f"{float(v.scale[0]):g}/{int(v.zero_point[0])}")
def test_quantize_float(dtype, q):
    g = one_op("QUANTIZE", (1, 6, 7), "float32", None, dtype, q)
    check_bit_exact(g, n=4)
    # exact halves of the step: std::round sends them away from zero (numpy's round would not)
    rng = np.random.default_rng(0)
    ties = ((rng.integers(-400, 400, (4, 6, 7)) + 0.5) * np.float32(q.scale[0])).astype(np.float32)
    check_bit_exact(g, inputs=[ties])


def test_quantize_float_rounds_half_away():
    from edgec.ir.interpret import run
    g = one_op("QUANTIZE", (1, 6), "float32", None, "int8", Q(0.5, 0))
    y = run(g, [np.array([[0.25, -0.25, 0.75, -0.75, 100.0, -100.0]], np.float32)])[0]
    np.testing.assert_array_equal(y, [[1, -1, 2, -2, 127, -128]])


def test_quantize_float_per_channel():
    # LiteRT only: TFLM's QUANTIZE requires a single output scale
    g = one_op("QUANTIZE", (1, 5, 4), "float32", None, "int8",
               Q(np.array([0.01, 0.02, 0.05, 0.1]), np.array([0, 1, -3, 5]), axis=2))
    check_bit_exact(g, tflm=False)


# -- QUANTIZE int -> int (requantize) --------------------------------------------------------------

REQUANT = [
    ("int8", Q(0.05, 3), "int8", Q(0.031, -7)),
    ("int8", Q(0.05, 3), "int8", Q(0.2, 100)),
    ("int8", Q(0.05, 3), "int8", Q(0.05, 3)),
    ("int8", Q(0.02, -128), "int8", Q(0.0009, 0)),      # multiplier > 1: a left shift
    ("int8", Q(0.05, 3), "int16", Q(0.0007, 0)),
    ("int16", Q(0.001, 0), "int8", Q(0.1, -2)),
    ("int16", Q(0.001, 0), "int16", Q(0.0003, 0)),
    ("int16", Q(0.0003, 0), "int16", Q(0.001, 0)),
    ("int8", Q(0.05, 3), "uint8", Q(0.05, 131)),
    ("uint8", Q(0.05, 131), "int8", Q(0.05, 3)),
]


@pytest.mark.parametrize("case", range(len(REQUANT)))
def test_requantize(case):
    idt, iq, odt, oq = REQUANT[case]
    check_bit_exact(one_op("QUANTIZE", (1, 9, 5), idt, iq, odt, oq), n=4, seed=case)


def test_requantize_tflm_only_variants():
    # LiteRT rejects these (int16 output zero point must be 0; no int8 -> int32); TFLM runs them
    check_tflm_only(one_op("QUANTIZE", (1, 9, 5), "int16", Q(0.001, 0), "int16", Q(0.0003, 5)))
    check_tflm_only(one_op("QUANTIZE", (1, 9, 5), "int8", Q(0.05, 3), "int32", Q(0.001, 0)))
    check_bit_exact(one_op("QUANTIZE", (1, 9, 5), "int16", Q(0.001, 0), "int32", Q(0.0001, 0)))


# -- DEQUANTIZE ------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype,q", [("int8", Q(0.05, 3)), ("int8", Q(1.7e-3, -128)),
                                     ("int16", Q(0.001, 0)), ("uint8", Q(0.05, 128))],
                         ids=["int8", "int8-small", "int16", "uint8"])
def test_dequantize(dtype, q):
    check_bit_exact(one_op("DEQUANTIZE", (1, 9, 5), dtype, q, "float32", None))


def test_dequantize_int16_nonzero_zero_point_tflm():
    # LiteRT requires zero point 0 for int16 DEQUANTIZE; TFLM accepts any
    g = one_op("DEQUANTIZE", (1, 9, 5), "int16", Q(0.001, 4), "float32", None)
    xs = random_inputs(g)
    np.testing.assert_allclose(run_tflm(write_tflite(g), xs)[0], run_batch(g, xs)[0], rtol=1e-6)


def test_dequantize_per_channel():
    # LiteRT only: TFLM's DEQUANTIZE reads one scale (it would use channel 0's for all)
    g = one_op("DEQUANTIZE", (1, 4, 3), "int8", Q(np.array([0.01, 0.2, 0.03]), np.array([0, 2, -1]), axis=2),
               "float32", None)
    check_bit_exact(g, tflm=False)


def _const_then_concat(op_type, data, quant=None, x_dtype="float32", sparse=None) -> Graph:
    """x (input) ++ op_type(constant): constants feed DEQUANTIZE / DENSIFY in real models."""
    g = Graph(name=op_type.lower())
    rest = data.shape[1:]
    g.add_tensor(Tensor("x", (1, 3) + rest[1:], x_dtype, quant=quant if x_dtype != "float32" else None))
    g.inputs.append("x")
    w = g.const("w", data, quant)
    if sparse is not None:
        g.tensors[w].meta["tflite_sparsity"] = sparse
    mid_dtype = "float32" if op_type == "DEQUANTIZE" else str(data.dtype)
    mid_q = quant if op_type == "DENSIFY" else None
    g.add_tensor(Tensor("w_out", data.shape, mid_dtype, quant=mid_q))
    g.ops.append(Op(op_type, [w], ["w_out"], default_attrs(op_type)))
    g.add_tensor(Tensor("y", (1, 3 + rest[0]) + rest[1:], mid_dtype, quant=mid_q))
    g.ops.append(Op("CONCATENATION", ["x", "w_out"], ["y"], default_attrs("CONCATENATION", axis=1)))
    g.outputs.append("y")
    return g


def test_dequantize_float16_constant():
    # how TFLite stores fp16 models: a float16 constant behind DEQUANTIZE. LiteRT only (TFLM's
    # DEQUANTIZE takes int8/int16/uint8).
    w = np.random.default_rng(0).standard_normal((1, 4, 5)).astype(np.float16)
    g = _const_then_concat("DEQUANTIZE", w)
    check_bit_exact(g, tflm=False)
    assert np.array_equal(run_batch(g, random_inputs(g, 1))[0][0, 3:], w[0].astype(np.float32))


def test_dequantize_int8_constant():
    w = np.random.default_rng(1).integers(-128, 128, (1, 4, 5)).astype(np.int8)
    check_bit_exact(_const_then_concat("DEQUANTIZE", w, Q(0.02, -5)))


# -- DENSIFY ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_densify(dtype):
    # LiteRT only: TFLM has no DENSIFY kernel. More layouts in tests/test_sparsity.py.
    rng = np.random.default_rng(2)
    d = rng.standard_normal((1, 4, 10)) * 10
    d[np.abs(d) < 8] = 0
    q = Q(0.1, 0) if dtype == "int8" else None
    g = _const_then_concat("DENSIFY", d.astype(dtype), q, x_dtype=dtype, sparse=True)
    check_bit_exact(g, tflm=False)
