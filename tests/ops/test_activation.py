"""RELU, RELU6, LOGISTIC, TANH, HARD_SWISH, SOFTMAX, PRELU, LEAKY_RELU: the reference interpreter
against TFLite Micro (bit for bit) and LiteRT's BUILTIN_REF kernels (bit for bit, or -- where LiteRT
derives its parameters differently -- equal to an emulation of LiteRT's own arithmetic and within
1 LSB of the reference). Integer inputs sweep the whole int8 range / a dense int16 grid."""
from __future__ import annotations

import os
import sys
import zlib

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))  # opcheck (also via conftest)

import opcheck  # noqa: E402
from edgec.backends.tflite import write_tflite  # noqa: E402
from edgec.ir import Graph, Op, QuantParams, Tensor, verify  # noqa: E402
from edgec.ir import ops as opreg  # noqa: E402
from edgec.ir.interpret import run_batch  # noqa: E402
from edgec.ir.ops import activation, default_attrs  # noqa: E402
from edgec.ir.quant import multiply_by_quantized_multiplier as mbqm  # noqa: E402
from edgec.ir.quant import quantize_multiplier  # noqa: E402
from edgec.run.litert import run_litert  # noqa: E402
from edgec.run.tflm import run_tflm  # noqa: E402

f32 = np.float32


def seeded(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def unary_graph(op, shape, dtype="float32", qi=None, qo=None, **attrs):
    g = Graph(name=op.lower())
    g.add_tensor(Tensor("x", shape, dtype, quant=qi))
    g.add_tensor(Tensor("y", shape, dtype, quant=qo))
    g.ops.append(Op(op, ["x"], ["y"], default_attrs(op, **attrs)))
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def prelu_graph(shape, alpha_shape, dtype="float32", qi=None, qa=None, qo=None, seed=0):
    rng = np.random.default_rng(seed)
    g = Graph(name="prelu")
    g.add_tensor(Tensor("x", shape, dtype, quant=qi))
    if dtype == "float32":
        alpha = rng.uniform(-0.5, 0.5, alpha_shape).astype(np.float32)
    else:
        alpha = rng.integers(-128, 128, alpha_shape).astype(np.int8)
    g.add_tensor(Tensor("alpha", alpha_shape, dtype, data=alpha, quant=qa))
    g.add_tensor(Tensor("y", shape, dtype, quant=qo))
    g.ops.append(Op("PRELU", ["x", "alpha"], ["y"], default_attrs("PRELU")))
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def fixed_out_quant(op, dtype):
    return QuantParams(*opreg.get(op).out_quant[dtype])


def rand_q(rng, dtype):
    if dtype == "int8":
        return QuantParams(float(np.exp(rng.uniform(np.log(0.003), np.log(0.3)))), int(rng.integers(-60, 61)))
    return QuantParams(float(np.exp(rng.uniform(np.log(2e-5), np.log(2e-3)))), 0)


def full_range(dtype, shape_tail, n_random=1, seed=0):
    """Every int8 value (a dense int16 grid) in sample 0, random values in the others."""
    size = int(np.prod(shape_tail))
    info = np.iinfo(dtype)
    grid = np.linspace(info.min, info.max, size).round().astype(dtype).reshape((1,) + shape_tail)
    rnd = np.random.default_rng(seed).integers(info.min, info.max + 1, (n_random,) + shape_tail)
    return [np.concatenate([grid, rnd.astype(dtype)])]


def run_both(g, xs):
    verify(g)
    model = write_tflite(g)
    want = run_batch(g, xs)[0].astype(np.int64)
    return want, run_tflm(model, xs)[0].astype(np.int64), run_litert(model, xs)[0].astype(np.int64)


def check_litert_explained(g, xs, litert_expected):
    """TFLM == reference bit for bit; LiteRT == `litert_expected` (LiteRT's own arithmetic, emulated)
    bit for bit and within 1 LSB of the reference. Returns how many values LiteRT moved."""
    want, tflm, litert = run_both(g, xs)
    np.testing.assert_array_equal(tflm, want, err_msg="TFLM != reference")
    np.testing.assert_array_equal(litert, np.asarray(litert_expected, np.int64),
                                  err_msg="LiteRT != emulation of its own arithmetic")
    assert np.abs(litert - want).max() <= 1
    return int((litert != want).sum())


def _s(t):
    return f32(t.quant.scale[0])


def _z(t):
    return int(t.quant.zero_point[0])


# LiteRT's parameter arithmetic where it differs from TFLM's (see activation.py's docstring).

def relu_litert(g, x):
    i, o = g.tensors["x"], g.tensors["y"]
    m, s = quantize_multiplier(float(_s(i) / _s(o)))      # float division (TFLM: double)
    info = np.iinfo(o.dtype)
    return np.clip(_z(o) + mbqm(x.astype(np.int64) - _z(i), m, s), max(info.min, _z(o)), info.max)


def leaky_relu_litert(g, x):
    i, o, alpha = g.tensors["x"], g.tensors["y"], f32(g.ops[0].attrs["alpha"])
    ma, sa = quantize_multiplier(float(_s(i) * alpha / _s(o)))
    mi, si = quantize_multiplier(float(_s(i) / _s(o)))
    v = x.astype(np.int64) - _z(i)
    info = np.iinfo(o.dtype)
    return np.clip(np.where(v >= 0, mbqm(v, mi, si), mbqm(v, ma, sa)) + _z(o), info.min, info.max)


def prelu_litert(g, x):
    i, a, o = g.tensors["x"], g.tensors["alpha"], g.tensors["y"]
    m1, s1 = quantize_multiplier(float(_s(i) / _s(o)))
    m2, s2 = quantize_multiplier(float(_s(i) * _s(a) / _s(o)))
    v = x.astype(np.int64) - _z(i)
    av = a.data.astype(np.int64) - _z(a)
    return np.clip(np.where(v >= 0, mbqm(v, m1, s1), mbqm(v * av, m2, s2)) + _z(o), -128, 127)


def softmax16_litert(g, x):
    return activation.softmax_int16(x, _s(g.tensors["x"]), g.ops[0].attrs["beta"], flavor="litert")


# -- float ----------------------------------------------------------------------------------------

FLOAT_CASES = [
    ("RELU", {}), ("RELU6", {}), ("LOGISTIC", {}), ("TANH", {}), ("HARD_SWISH", {}),
    ("SOFTMAX", {"beta": 1.0}), ("SOFTMAX", {"beta": 0.37}),
    ("LEAKY_RELU", {"alpha": 0.2}), ("LEAKY_RELU", {"alpha": -0.3}), ("LEAKY_RELU", {"alpha": 1.5}),
]


@pytest.mark.parametrize("op,attrs", FLOAT_CASES, ids=str)
@pytest.mark.parametrize("shape", [(1, 5, 7, 3), (1, 13), (1, 2, 3, 4, 5)], ids=str)
def test_float(op, attrs, shape):
    g = unary_graph(op, shape, **attrs)
    xs = [np.random.default_rng(0).standard_normal((3,) + shape[1:]).astype(np.float32) * 4]
    opcheck.check_bit_exact(g, inputs=xs)


@pytest.mark.parametrize("alpha_shape", [(3,), (1, 1, 3), (7, 3), (5, 1, 1), (5, 7, 3)], ids=str)
def test_prelu_float(alpha_shape):
    opcheck.check_bit_exact(prelu_graph((1, 5, 7, 3), alpha_shape), n=3)


# -- int8 ------------------------------------------------------------------------------------------

EXACT_INT8 = ["RELU6", "LOGISTIC", "TANH", "HARD_SWISH"]


@pytest.mark.parametrize("op", EXACT_INT8)
def test_int8_full_range(op):
    """LOGISTIC/TANH: TFLM's gemmlowp fixed point and LiteRT's float LUT agree on every value."""
    rng = seeded(op)
    for k in range(8):
        qi = rand_q(rng, "int8")
        d = opreg.get(op)
        qo = (fixed_out_quant(op, "int8") if isinstance(d.out_quant, dict)
              else qi if d.out_quant == "same" else rand_q(rng, "int8"))
        g = unary_graph(op, (1, 2, 128), "int8", qi, qo)
        opcheck.check_bit_exact(g, inputs=full_range("int8", (2, 128), seed=k))


@pytest.mark.parametrize("op", ["LOGISTIC", "TANH"])
@pytest.mark.parametrize("scale,zp", [(1 / 16, 0), (0.5, -128), (0.002, 30), (0.37, 127)], ids=str)
def test_logistic_tanh_int8_saturating_scales(op, scale, zp):
    """Very coarse and very fine input scales: the input radius clamps most or none of the range."""
    g = unary_graph(op, (1, 256), "int8", QuantParams(scale, zp), fixed_out_quant(op, "int8"))
    opcheck.check_bit_exact(g, inputs=full_range("int8", (256,), n_random=0))


@pytest.mark.parametrize("ratio", [0.3, 1.0, 1.7, 6.0])
def test_relu_int8(ratio):
    """Output scale = input scale * ratio: requantizing multipliers < 1, == 1 and > 1."""
    rng = seeded("RELU", ratio)
    for k in range(4):
        qi = rand_q(rng, "int8")
        qo = QuantParams(float(qi.scale[0]) / ratio, int(rng.integers(-128, 0)))
        g = unary_graph("RELU", (1, 2, 128), "int8", qi, qo)
        xs = full_range("int8", (2, 128), seed=k)
        check_litert_explained(g, xs, relu_litert(g, xs[0]))


def test_relu6_int8_output_quant_is_not_read_by_tflm():
    """RELU6 is out_quant="same": TFLM clamps the raw input to [zp_in, q_in(6)] and never reads the
    output quantization, LiteRT requantizes. With a different output quantization the reference
    follows TFLM and LiteRT disagrees wholesale -- the quantizer must keep them equal."""
    qi, qo = QuantParams(0.05, -20), QuantParams(0.03, -128)
    g = unary_graph("RELU6", (1, 256), "int8", qi, qo)
    xs = full_range("int8", (256,), n_random=0)
    want, tflm, litert = run_both(g, xs)
    np.testing.assert_array_equal(tflm, want)
    x = xs[0].astype(np.int64)
    np.testing.assert_array_equal(want, np.clip(x, -20, -20 + 120))  # 6 / 0.05 = 120 steps
    assert (litert != want).sum() > 100


@pytest.mark.parametrize("alpha", [0.1, 0.5, -0.25, 1.3, 0.0])
def test_leaky_relu_int8(alpha):
    rng = seeded("LEAKY_RELU", alpha)
    for k in range(4):
        qi, qo = rand_q(rng, "int8"), rand_q(rng, "int8")
        g = unary_graph("LEAKY_RELU", (1, 2, 128), "int8", qi, qo, alpha=alpha)
        xs = full_range("int8", (2, 128), seed=k)
        check_litert_explained(g, xs, leaky_relu_litert(g, xs[0]))


@pytest.mark.parametrize("alpha_shape", [(1,), (16,), (1, 1, 16), (4, 5, 16), (1, 5, 1)], ids=str)
def test_prelu_int8(alpha_shape):
    rng = seeded("PRELU", alpha_shape)
    for k in range(4):
        qi, qo = rand_q(rng, "int8"), rand_q(rng, "int8")
        qa = QuantParams(float(rng.uniform(0.001, 0.01)), int(rng.integers(-20, 21)))
        g = prelu_graph((1, 4, 5, 16), alpha_shape, "int8", qi, qa, qo, seed=k)
        xs = opcheck.random_inputs(g, 3, seed=k)
        check_litert_explained(g, xs, prelu_litert(g, xs[0]))


def test_prelu_int8_litert_float_multiplier_deviation():
    """LiteRT computes PRELU's multipliers as float expressions, TFLM in double. With these scales
    the alpha-side multiplier differs and LiteRT moves 3 of the 65536 (x, alpha) pairs by 1 LSB;
    over 2000 random quantizations 14 showed a difference, 316 of 131M values."""
    g = prelu_graph((1, 256, 256), (1, 256, 256), "int8", QuantParams(0.15807, 31),
                    QuantParams(0.00998, -43), QuantParams(0.25989, 8))
    v = np.arange(-128, 128, dtype=np.int8)
    g.tensors["alpha"].data = np.broadcast_to(v.reshape(1, 1, 256), (1, 256, 256)).copy()
    xs = [np.broadcast_to(v.reshape(1, 256, 1), (1, 256, 256)).copy()]
    assert check_litert_explained(g, xs, prelu_litert(g, xs[0])) == 3


@pytest.mark.parametrize("shape", [(1, 10), (1, 3, 5, 7), (1, 4, 1), (1, 2, 256)], ids=str)
@pytest.mark.parametrize("beta", [1.0, 0.5, 2.0, 0.01])
def test_softmax_int8(shape, beta):
    rng = seeded("SOFTMAX", shape, beta)
    for k in range(3):
        qi = rand_q(rng, "int8")
        g = unary_graph("SOFTMAX", shape, "int8", qi, fixed_out_quant("SOFTMAX", "int8"), beta=beta)
        xs = full_range("int8", shape[1:], n_random=2, seed=k)
        opcheck.check_bit_exact(g, inputs=xs)


def test_softmax_int8_1000_classes():
    rng = seeded("SOFTMAX", 1000)
    for k in range(3):
        qi = QuantParams(float(rng.uniform(0.05, 0.2)), int(rng.integers(-60, 61)))
        g = unary_graph("SOFTMAX", (1, 1000), "int8", qi, fixed_out_quant("SOFTMAX", "int8"), beta=1.0)
        opcheck.check_bit_exact(g, inputs=full_range("int8", (1000,), n_random=2, seed=k))


def test_softmax_int8_sum_of_exps_limit():
    """Rows whose sum of exps reaches 512 (2^28 in Q12.19) make both LiteRT and TFLM abort
    (TFLITE_CHECK on the output shift), e.g. 512 equal logits; the reference refuses them instead
    of inventing a result. 511 equal logits are still fine."""
    q = QuantParams(0.1, 0), fixed_out_quant("SOFTMAX", "int8")
    ok = unary_graph("SOFTMAX", (1, 511), "int8", *q, beta=1.0)
    opcheck.check_bit_exact(ok, inputs=[np.zeros((1, 511), np.int8)])
    bad = unary_graph("SOFTMAX", (1, 512), "int8", *q, beta=1.0)
    with pytest.raises(ValueError, match="aborts"):
        run_batch(bad, [np.zeros((1, 512), np.int8)])


# -- int16 (symmetric 16x8) -----------------------------------------------------------------------

@pytest.mark.parametrize("op", ["LOGISTIC", "TANH"])
@pytest.mark.parametrize("scale", [2.0 ** -12, 2.0 ** -11, 2.0 ** -12 * 1.0004, 3e-4, 1e-3, 2.5e-5, 7e-3],
                         ids=str)
def test_logistic_tanh_int16(op, scale):
    """Power-of-two input scales (2^-12 for both, 2^-11 for TANH; within CheckedLog2's 1e-3 also
    counts) take the fixed 3 << shift path, the others the rescaling multiplier."""
    g = unary_graph(op, (1, 8, 1024), "int16", QuantParams(scale, 0), fixed_out_quant(op, "int16"))
    opcheck.check_bit_exact(g, inputs=full_range("int16", (8, 1024), seed=1))


def test_relu6_int16():
    rng = seeded("RELU6", 16)
    for k in range(4):
        q = rand_q(rng, "int16")
        g = unary_graph("RELU6", (1, 8, 1024), "int16", q, q)
        opcheck.check_bit_exact(g, inputs=full_range("int16", (8, 1024), seed=k))


def test_relu_int16_litert_float_multiplier_deviation():
    """LiteRT's float-divided RELU multiplier moves ~1 in 10^4 int16 outputs by 1 LSB (11489 of
    131M over 2000 random scale pairs; never for int8)."""
    rng = seeded("RELU", 16)
    moved = 0
    for k in range(4):
        g = unary_graph("RELU", (1, 8, 1024), "int16", rand_q(rng, "int16"), rand_q(rng, "int16"))
        xs = full_range("int16", (8, 1024), seed=k)
        moved += check_litert_explained(g, xs, relu_litert(g, xs[0]))
    assert moved > 0


@pytest.mark.parametrize("alpha", [0.1, -0.3, 1.4])
def test_leaky_relu_int16(alpha):
    """LiteRT's float-expression multipliers move ~2 in 10^4 int16 outputs by 1 LSB."""
    rng = seeded("LEAKY_RELU", 16, alpha)
    for k in range(3):
        g = unary_graph("LEAKY_RELU", (1, 8, 1024), "int16", rand_q(rng, "int16"), rand_q(rng, "int16"),
                        alpha=alpha)
        xs = full_range("int16", (8, 1024), seed=k)
        check_litert_explained(g, xs, leaky_relu_litert(g, xs[0]))


@pytest.mark.parametrize("shape", [(1, 10), (1, 3, 5, 7), (1, 8, 257), (1, 4, 1)], ids=str)
@pytest.mark.parametrize("beta", [1.0, 0.37])
def test_softmax_int16(shape, beta):
    """TFLM builds the exp and 1/(1+x) LUTs in float, LiteRT in double (two 1/(1+x) entries differ)
    and multiplies s_in * beta in float: LiteRT moves ~1 in 10^4 outputs by 1 LSB."""
    rng = seeded("SOFTMAX", 16, shape, beta)
    for k in range(3):
        q = QuantParams(float(rng.uniform(2e-5, 2e-3)), 0)
        g = unary_graph("SOFTMAX", shape, "int16", q, fixed_out_quant("SOFTMAX", "int16"), beta=beta)
        xs = full_range("int16", shape[1:], n_random=3, seed=k)
        check_litert_explained(g, xs, softmax16_litert(g, xs[0]))


def test_softmax_int16_luts_differ_only_in_two_entries():
    t_exp, t_inv = activation.softmax_int16_luts("tflm")
    l_exp, l_inv = activation.softmax_int16_luts("litert")
    assert (t_exp != l_exp).sum() == 0 and (t_inv != l_inv).sum() == 2
    assert np.abs(t_inv - l_inv).max() == 1


# -- registry entries -----------------------------------------------------------------------------

def test_registry_entries():
    i8_16 = ("int8", "int16")
    expect = {
        "RELU": (None, "calibrate", i8_16), "RELU6": (None, "same", i8_16),
        "LOGISTIC": (None, {"int8": (1 / 256, -128), "int16": (1 / 32768, 0)}, i8_16),
        "TANH": (None, {"int8": (1 / 128, 0), "int16": (1 / 32768, 0)}, i8_16),
        "HARD_SWISH": ("HardSwishOptions", "calibrate", ("int8",)),
        "SOFTMAX": ("SoftmaxOptions", {"int8": (1 / 256, -128), "int16": (1 / 32768, 0)}, i8_16),
        "PRELU": (None, "calibrate", ("int8",)),
        "LEAKY_RELU": ("LeakyReluOptions", "calibrate", i8_16),
    }
    for op, (options, out_quant, dtypes) in expect.items():
        d = opreg.get(op)
        assert (d.options, d.out_quant, d.quant_dtypes) == (options, out_quant, dtypes), op
        g = unary_graph(op, (1, 4))
        assert d.macs(g.ops[0], [g.tensors["x"]], [g.tensors["y"]]) == 0
    assert opreg.get("PRELU").weights == {1: None}   # alpha: a constant, per-tensor quantized
    assert default_attrs("SOFTMAX") == {"beta": 0.0} and default_attrs("LEAKY_RELU") == {"alpha": 0.0}
