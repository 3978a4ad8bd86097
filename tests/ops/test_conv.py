"""CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV: the numpy reference against LiteRT's
reference kernels and TFLite Micro, bit for bit (float32 to 1e-5)."""
from __future__ import annotations

import time

import numpy as np
import pytest

import opcheck
from edgec.backends.tflite import write_tflite
from edgec.errors import EdgecError
from edgec.ir import Graph, Op, QuantParams, Tensor, verify
from edgec.ir import ops as opreg
from edgec.ir.interpret import run, run_batch
from edgec.ir.ops import default_attrs
from edgec.ir.quant import activation_range, round_half_away
from edgec.run.litert import run_litert
from edgec.run.tflm import run_tflm

CHANNEL_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0, "TRANSPOSE_CONV": 0}
INT32 = 2  # schema TensorType.INT32, for quantized_bias_type


def qp(scale, zp=0, axis=None) -> QuantParams:
    return QuantParams(np.asarray(scale, np.float32), np.asarray(zp), axis)


def build(op_type, in_shape, w_shape, attrs, dtype="int8", per_channel=True, bias="default",
          seed=0, out_shape=None, out_scale=None, out_zp=None) -> Graph:
    """One-op graph with random (seeded) weights and scales. bias: "default" (int32 for int8,
    int64 for int16), None, or a dtype name."""
    rng = np.random.default_rng(seed)
    g = Graph(name=op_type.lower())
    nch = w_shape[CHANNEL_AXIS[op_type]]
    if dtype == "float32":
        g.add_tensor(Tensor("x", in_shape, "float32"))
        wn = g.const("w", (rng.standard_normal(w_shape) * 0.3).astype(np.float32))
        bn = g.const("b", rng.standard_normal(nch).astype(np.float32)) if bias else None
        oq = None
    else:
        i8 = dtype == "int8"
        s_in = rng.uniform(0.005, 0.05) if i8 else rng.uniform(1e-4, 1e-3)
        z_in = int(rng.integers(-20, 20)) if i8 else 0
        g.add_tensor(Tensor("x", in_shape, dtype, quant=qp(s_in, z_in)))
        if per_channel:
            ws = rng.uniform(0.002, 0.02, nch).astype(np.float32)
            wq = qp(ws, np.zeros(nch, np.int64), CHANNEL_AXIS[op_type])
        else:
            ws = np.float32(rng.uniform(0.002, 0.02))
            wq = qp([ws])
        wn = g.const("w", rng.integers(-127, 128, w_shape).astype(np.int8), wq)
        bn = None
        if bias:
            bdt = bias if bias != "default" else ("int32" if i8 else "int64")
            bs = np.atleast_1d(np.float32(s_in) * np.asarray(ws, np.float32)).astype(np.float32)
            bq = QuantParams(bs, np.zeros(bs.size, np.int64), 0 if per_channel else None)
            bn = g.const("b", rng.integers(-20000, 20000, nch).astype(bdt), bq)
        s_out = out_scale or (rng.uniform(0.02, 0.2) if i8 else rng.uniform(2e-3, 2e-2))
        z_out = out_zp if out_zp is not None else (int(rng.integers(-20, 20)) if i8 else 0)
        oq = qp(s_out, z_out)
    if op_type == "TRANSPOSE_CONV":
        inputs = [g.const("output_shape", np.asarray(out_shape, np.int32)), wn, "x"]
        inputs += [bn] if bn else []
    else:
        inputs = ["x", wn] + ([bn] if bn else [])
    op = Op(op_type, inputs, ["y"], attrs)
    shape = opreg.get(op_type).shape(op, [g.t(i) for i in inputs])[0]
    g.add_tensor(Tensor("y", shape, dtype, quant=oq))
    g.ops.append(op)
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def A(op_type, **kw):
    return default_attrs(op_type, **kw)


# ------------------------------------------------------------------------------------------------
# CONV_2D

CONV_CASES = [
    # in_shape, filter OHWI, attrs
    ((1, 9, 11, 5), (7, 3, 3, 5), dict(stride_w=2, stride_h=1, padding="SAME",
                                       fused_activation_function="RELU6")),
    ((1, 13, 12, 3), (6, 3, 2, 3), dict(stride_w=1, stride_h=2, padding="VALID",
                                        dilation_h_factor=2, dilation_w_factor=3,
                                        fused_activation_function="RELU")),
    ((1, 10, 7, 6), (5, 5, 5, 6), dict(stride_w=2, stride_h=2, padding="SAME",
                                       dilation_h_factor=2, dilation_w_factor=2,
                                       fused_activation_function="RELU_N1_TO_1")),
    ((1, 6, 5, 17), (9, 1, 1, 17), dict(stride_w=1, stride_h=1, padding="VALID")),
    ((1, 7, 9, 6), (10, 3, 3, 3), dict(stride_w=1, stride_h=2, padding="SAME")),   # 2 groups
    ((1, 4, 3, 2), (3, 5, 4, 2), dict(stride_w=2, stride_h=2, padding="SAME")),    # filter > image
]


@pytest.mark.parametrize("case", range(len(CONV_CASES)))
@pytest.mark.parametrize("dtype,per_channel", [("float32", None), ("int8", True), ("int8", False),
                                               ("int16", True), ("int16", False)])
def test_conv2d(case, dtype, per_channel):
    shape, fshape, attrs = CONV_CASES[case]
    g = build("CONV_2D", shape, fshape, A("CONV_2D", **attrs), dtype, per_channel, seed=case)
    opcheck.check_bit_exact(g, n=2, seed=case)


@pytest.mark.parametrize("dtype", ["float32", "int8", "int16"])
def test_conv2d_no_bias_tflm(dtype):
    # LiteRT 2.3's conv.cc requires a bias tensor (conv.cc:411 has_bias), so a bias-less CONV_2D is
    # checked against TFLM only. TFLM runs a bias-less 16x8 conv with the int64 accumulator (and
    # its reduced 16-bit multiplier), as when the bias is int64.
    g = build("CONV_2D", (1, 9, 11, 5), (7, 3, 3, 5), A("CONV_2D", stride_w=1, stride_h=1),
              dtype, bias=None)
    _check_tflm_only(g, n=2)


def test_conv2d_int16_int32_bias():
    # quantized_bias_type INT32: int32 accumulator and the 32-bit fixed-point multiply.
    g = build("CONV_2D", (1, 9, 11, 5), (7, 3, 3, 5),
              A("CONV_2D", stride_w=1, stride_h=2, quantized_bias_type=INT32,
                fused_activation_function="RELU"), "int16", bias="int32")
    opcheck.check_bit_exact(g, n=2)


@pytest.mark.parametrize("op_type", ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED",
                                     "TRANSPOSE_CONV"])
@pytest.mark.parametrize("dtype", ["int8", "int16"])
def test_effective_scale_above_one(op_type, dtype):
    # Output scales smaller than input * filter scale: positive shifts (the left-shift path of
    # MultiplyByQuantizedMultiplier), with small inputs and weights so outputs do not saturate.
    shapes = {"CONV_2D": ((1, 6, 7, 5), (4, 3, 3, 5), dict(stride_w=1, stride_h=1)),
              "DEPTHWISE_CONV_2D": ((1, 6, 7, 5), (1, 3, 3, 5),
                                    dict(stride_w=1, stride_h=1, depth_multiplier=1)),
              "FULLY_CONNECTED": ((1, 40), (6, 40), dict()),
              "TRANSPOSE_CONV": ((1, 3, 4, 5), (4, 3, 3, 5), dict(stride_w=2, stride_h=2))}
    shape, wshape, attrs = shapes[op_type]
    rng = np.random.default_rng(5)
    g = build(op_type, shape, wshape, A(op_type, **attrs), dtype,
              per_channel=op_type != "FULLY_CONNECTED", out_shape=(1, 6, 8, 4), seed=5)
    w = g.tensors["w"]
    w.data[...] = rng.integers(-2, 3, w.shape)
    w.quant.scale = rng.uniform(0.01, 0.012, w.quant.scale.size).astype(np.float32)
    s_in = float(g.tensors["x"].quant.scale[0])
    g.tensors["b"].quant.scale = (np.float32(s_in) * w.quant.scale).astype(np.float32)
    g.tensors["y"].quant.scale = np.array([s_in * 0.011 / 3], np.float32)  # multipliers ~3
    g.tensors["b"].data[...] = rng.integers(-3, 4, g.tensors["b"].shape)
    zp = int(g.tensors["x"].quant.zero_point[0])
    xs = [(rng.integers(-3, 4, (2,) + shape[1:]) + zp).astype(dtype)]
    y = run_batch(g, xs)[0]
    info = np.iinfo(dtype)
    assert ((y > info.min) & (y < info.max)).mean() > 0.5      # mostly unsaturated
    if op_type == "FULLY_CONNECTED":
        _check_tflm_only(g, n=2, xs=xs)
    else:
        opcheck.check_bit_exact(g, inputs=xs)


def test_activation_range_uses_float32_division():
    # 6 / 0.24489796 is 24.4999... in double but 24.5 in float32: TFLite's RELU6 bound is zp + 25.
    s = np.float32(0.2448979616165161)
    assert activation_range("RELU6", "int8", float(s), -128) == (-128, -103)
    g = build("CONV_2D", (1, 6, 6, 8), (4, 3, 3, 8),
              A("CONV_2D", stride_w=1, stride_h=1, fused_activation_function="RELU6"),
              "int8", out_scale=s, out_zp=-128, seed=3)
    g.tensors["b"].data[:] = 2 ** 30 // 4096        # drive most outputs into the upper clamp
    y = run(g, opcheck.random_inputs(g, 1))[0]
    assert y.max() == -103
    opcheck.check_bit_exact(g, n=1)


# ------------------------------------------------------------------------------------------------
# DEPTHWISE_CONV_2D

DW_CASES = [
    ((1, 9, 11, 5), (1, 3, 3, 10), dict(stride_w=2, stride_h=1, depth_multiplier=2, padding="SAME",
                                        fused_activation_function="RELU6")),
    ((1, 13, 12, 3), (1, 3, 2, 3), dict(stride_w=1, stride_h=2, depth_multiplier=1, padding="VALID",
                                        dilation_h_factor=2, dilation_w_factor=3,
                                        fused_activation_function="RELU")),
    ((1, 10, 9, 7), (1, 5, 5, 21), dict(stride_w=2, stride_h=2, depth_multiplier=3, padding="SAME",
                                        dilation_h_factor=2, dilation_w_factor=1,
                                        fused_activation_function="RELU_N1_TO_1")),
    ((1, 7, 6, 13), (1, 3, 3, 13), dict(stride_w=1, stride_h=1, depth_multiplier=1,
                                        padding="SAME")),
]


@pytest.mark.parametrize("case", range(len(DW_CASES)))
@pytest.mark.parametrize("dtype,per_channel", [("float32", None), ("int8", True), ("int8", False),
                                               ("int16", True), ("int16", False)])
def test_depthwise(case, dtype, per_channel):
    shape, fshape, attrs = DW_CASES[case]
    g = build("DEPTHWISE_CONV_2D", shape, fshape, A("DEPTHWISE_CONV_2D", **attrs), dtype,
              per_channel, seed=10 + case)
    opcheck.check_bit_exact(g, n=2, seed=case)


@pytest.mark.parametrize("dtype", ["float32", "int8", "int16"])
def test_depthwise_no_bias(dtype):
    g = build("DEPTHWISE_CONV_2D", (1, 9, 11, 5), (1, 3, 3, 5),
              A("DEPTHWISE_CONV_2D", stride_w=1, stride_h=1, depth_multiplier=1), dtype, bias=None)
    opcheck.check_bit_exact(g, n=2)


@pytest.mark.parametrize("mult_attr", [0, 1])
def test_depthwise_writes_the_multiplier_the_shapes_imply(mult_attr):
    # graphs built by hand may leave depth_multiplier at its default 0; TFLM loops over the written value
    g = build("DEPTHWISE_CONV_2D", (1, 6, 5, 3), (1, 3, 3, 6),
              A("DEPTHWISE_CONV_2D", stride_w=1, stride_h=1, depth_multiplier=mult_attr), "int8", True)
    opcheck.check_bit_exact(g, n=2)


def test_depthwise_int16_int32_bias_unsupported():
    # LiteRT rejects it and TFLM reads the int32 bias as int64: no reference to match.
    g = build("DEPTHWISE_CONV_2D", (1, 5, 5, 3), (1, 3, 3, 3),
              A("DEPTHWISE_CONV_2D", stride_w=1, stride_h=1, depth_multiplier=1), "int16",
              bias="int32")
    with pytest.raises(EdgecError, match="int32 bias"):   # a user error naming the op
        run(g, opcheck.random_inputs(g, 1))


# ------------------------------------------------------------------------------------------------
# FULLY_CONNECTED
#
# LiteRT's reference FULLY_CONNECTED (ai-edge-litert 2.3) does not use the fixed-point rescale: it
# computes round(double(acc) * in_scale * w_scale / out_scale) in double. TFLM (and our C backend)
# use MultiplyByQuantizedMultiplier, so the reference matches TFLM exactly and LiteRT within 1 LSB:
# measured on 64x200 layers, 0.1-0.2% of int8 outputs and 2-20% of int16 outputs differ, by 1.
# _litert_fc models LiteRT's kernel, and the tests assert it reproduces LiteRT exactly.

FC_CASES = [
    # in_shape, weights [O, I], attrs
    ((1, 37), (13, 37), dict(fused_activation_function="RELU")),
    ((1, 200), (64, 200), dict()),
    ((1, 3, 5, 37), (11, 37), dict(keep_num_dims=True, fused_activation_function="RELU6")),
    ((1, 3, 5, 6), (9, 90), dict(fused_activation_function="RELU_N1_TO_1")),  # -> [1, 90]
    ((1, 4, 21), (7, 21), dict()),                                           # -> [4, 7]
]


def _litert_fc(g: Graph, xs: list[np.ndarray]) -> np.ndarray:
    it, wt, ot = g.tensors["x"], g.tensors["w"], g.tensors["y"]
    o, i = wt.shape
    x = xs[0].reshape(-1, i).astype(np.int64) - int(it.quant.zero_point[0])
    acc = x @ wt.data.astype(np.int64).T
    if "b" in g.tensors:
        acc = acc + g.tensors["b"].data.astype(np.int64)
    eff = (np.float64(it.quant.scale[0]) * np.broadcast_to(wt.quant.scale.astype(np.float64), (o,))
           / np.float64(ot.quant.scale[0]))
    y = round_half_away(acc * eff).astype(np.int64) + int(ot.quant.zero_point[0])
    act = g.ops[0].attrs["fused_activation_function"]
    lo, hi = activation_range(act, ot.dtype, float(ot.quant.scale[0]), int(ot.quant.zero_point[0]))
    return np.clip(y, lo, hi).reshape((-1,) + ot.shape[1:]).astype(ot.dtype)


def _check_tflm_only(g: Graph, n: int, seed: int = 0, xs=None):
    verify(g)
    xs = xs if xs is not None else opcheck.random_inputs(g, n, seed)
    want = run_batch(g, xs)[0]
    got = run_tflm(write_tflite(g), xs)[0]
    assert got.shape == want.shape
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        return xs, want
    diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
    assert diff.max() == 0, f"tflm: {int((diff > 0).sum())} of {diff.size} values differ"
    return xs, want


def _check_fc_quant(g: Graph, n: int, seed: int = 0):
    xs, want = _check_tflm_only(g, n, seed)
    got = run_litert(write_tflite(g), xs)[0]
    np.testing.assert_array_equal(got, _litert_fc(g, xs))       # LiteRT's double-rounding kernel
    assert np.abs(got.astype(np.int64) - want).max() <= 1        # ... is within 1 LSB of TFLM
    return int((got != want).sum())


@pytest.mark.parametrize("case", range(len(FC_CASES)))
@pytest.mark.parametrize("dtype,per_channel", [("float32", None), ("int8", False), ("int8", True),
                                               ("int16", False), ("int16", True)])
def test_fully_connected(case, dtype, per_channel):
    shape, wshape, attrs = FC_CASES[case]
    g = build("FULLY_CONNECTED", shape, wshape, A("FULLY_CONNECTED", **attrs), dtype, per_channel,
              seed=20 + case)
    if dtype == "float32":
        opcheck.check_bit_exact(g, n=3, seed=case)
    else:
        _check_fc_quant(g, n=8, seed=case)


def test_fully_connected_litert_difference_is_measured():
    # Enough samples that LiteRT's double rounding shows: assert it differs somewhere (so the
    # comparison above is not vacuous) and never by more than 1 LSB.
    diffs = {}
    for dtype in ("int8", "int16"):
        g = build("FULLY_CONNECTED", (1, 200), (64, 200), A("FULLY_CONNECTED"), dtype, False,
                  seed=1)
        diffs[dtype] = _check_fc_quant(g, n=40, seed=1)
    assert diffs["int16"] > 0, diffs


@pytest.mark.parametrize("dtype", ["float32", "int8", "int16"])
def test_fully_connected_no_bias(dtype):
    g = build("FULLY_CONNECTED", (1, 37), (13, 37), A("FULLY_CONNECTED"), dtype, False, bias=None)
    if dtype == "float32":
        opcheck.check_bit_exact(g, n=3)
    else:
        _check_fc_quant(g, n=8)


def test_fully_connected_int16_int32_bias():
    g = build("FULLY_CONNECTED", (1, 37), (13, 37), A("FULLY_CONNECTED", quantized_bias_type=INT32),
              "int16", False, bias="int32")
    _check_fc_quant(g, n=8)


# ------------------------------------------------------------------------------------------------
# TRANSPOSE_CONV

TCONV_CASES = [
    # input, filter OHWI, output_shape, attrs
    ((1, 5, 6, 3), (4, 3, 3, 3), (1, 10, 12, 4), dict(stride_w=2, stride_h=2, padding="SAME")),
    ((1, 5, 6, 3), (4, 3, 3, 3), (1, 11, 13, 4), dict(stride_w=2, stride_h=2, padding="VALID",
                                                      fused_activation_function="RELU")),
    ((1, 4, 5, 3), (5, 4, 2, 3), (1, 11, 9, 5), dict(stride_w=2, stride_h=3, padding="SAME",
                                                     fused_activation_function="RELU_N1_TO_1")),
    ((1, 4, 5, 3), (5, 4, 2, 3), (1, 13, 10, 5), dict(stride_w=2, stride_h=3, padding="VALID",
                                                      fused_activation_function="RELU6")),
    ((1, 7, 6, 9), (2, 3, 3, 9), (1, 7, 6, 2), dict(stride_w=1, stride_h=1, padding="SAME")),
]


@pytest.mark.parametrize("case", range(len(TCONV_CASES)))
@pytest.mark.parametrize("dtype,per_channel", [("float32", None), ("int8", True), ("int8", False),
                                               ("int16", True), ("int16", False)])
def test_transpose_conv(case, dtype, per_channel):
    shape, fshape, oshape, attrs = TCONV_CASES[case]
    g = build("TRANSPOSE_CONV", shape, fshape, A("TRANSPOSE_CONV", **attrs), dtype, per_channel,
              seed=30 + case, out_shape=oshape, bias=None if case == 4 else "default")
    opcheck.check_bit_exact(g, n=2, seed=case)


def test_transpose_conv_rejects_inconsistent_output_shape():
    with pytest.raises(ValueError):
        build("TRANSPOSE_CONV", (1, 5, 6, 3), (4, 3, 3, 3), A("TRANSPOSE_CONV", stride_w=2,
              stride_h=2), "float32", out_shape=(1, 7, 12, 4))


def test_transpose_conv_int16_int32_bias_unsupported():
    # LiteRT supports it, TFLM reads the int32 bias as int64: unsupported, like TFLM.
    g = build("TRANSPOSE_CONV", (1, 5, 6, 3), (4, 3, 3, 3),
              A("TRANSPOSE_CONV", stride_w=2, stride_h=2, quantized_bias_type=INT32), "int16",
              out_shape=(1, 10, 12, 4), bias="int32")
    with pytest.raises(EdgecError, match="int32 bias"):   # a user error naming the op
        run(g, opcheck.random_inputs(g, 1))


# ------------------------------------------------------------------------------------------------
# Registry entries, costs, speed

def test_registry_entries():
    r = opreg.REGISTRY
    assert r["CONV_2D"].weights == {1: 0} and r["CONV_2D"].bias == 2
    assert r["DEPTHWISE_CONV_2D"].weights == {1: 3} and r["DEPTHWISE_CONV_2D"].bias == 2
    assert r["FULLY_CONNECTED"].weights == {1: None} and r["FULLY_CONNECTED"].bias == 2
    assert r["TRANSPOSE_CONV"].weights == {1: 0} and r["TRANSPOSE_CONV"].bias == 3
    assert r["TRANSPOSE_CONV"].int_operands == (0,)
    for name in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV"):
        assert r[name].out_quant == "calibrate"
        assert r[name].quant_dtypes == ("int8", "int16")


def test_macs():
    g = build("CONV_2D", (1, 8, 8, 4), (6, 3, 3, 4), A("CONV_2D", stride_w=2, stride_h=2),
              "float32")
    op = g.ops[0]
    ins, outs = [g.t(i) for i in op.inputs], [g.t(o) for o in op.outputs]
    assert opreg.get("CONV_2D").macs(op, ins, outs) == 4 * 4 * 6 * 3 * 3 * 4
    g = build("DEPTHWISE_CONV_2D", (1, 8, 8, 4), (1, 3, 3, 8),
              A("DEPTHWISE_CONV_2D", stride_w=1, stride_h=1, depth_multiplier=2), "float32")
    op = g.ops[0]
    ins, outs = [g.t(i) for i in op.inputs], [g.t(o) for o in op.outputs]
    assert opreg.get("DEPTHWISE_CONV_2D").macs(op, ins, outs) == 8 * 8 * 8 * 9
    g = build("FULLY_CONNECTED", (1, 4, 21), (7, 21), A("FULLY_CONNECTED"), "float32")
    op = g.ops[0]
    ins, outs = [g.t(i) for i in op.inputs], [g.t(o) for o in op.outputs]
    assert opreg.get("FULLY_CONNECTED").macs(op, ins, outs) == 4 * 7 * 21


def test_mobilenet_sized_layers_are_fast():
    layers = [
        build("CONV_2D", (1, 224, 224, 3), (32, 3, 3, 3),
              A("CONV_2D", stride_w=2, stride_h=2, fused_activation_function="RELU6")),
        build("DEPTHWISE_CONV_2D", (1, 112, 112, 64), (1, 3, 3, 64),
              A("DEPTHWISE_CONV_2D", stride_w=1, stride_h=1, depth_multiplier=1)),
        build("CONV_2D", (1, 112, 112, 64), (64, 1, 1, 64), A("CONV_2D", stride_w=1, stride_h=1)),
        build("CONV_2D", (1, 56, 56, 128), (128, 3, 3, 128), A("CONV_2D", stride_w=1, stride_h=1)),
    ]
    for g in layers:
        xs = opcheck.random_inputs(g, 1)
        t = time.perf_counter()
        run(g, [xs[0]])
        assert time.perf_counter() - t < 1.0, g.name
