"""Activations: RELU, RELU6, LOGISTIC, TANH, HARD_SWISH, SOFTMAX, PRELU, LEAKY_RELU.

Integer semantics are TensorFlow Lite Micro's (activations_common.cc, logistic_common.cc, tanh.cc,
hard_swish_common.cc, softmax_common.cc, prelu_common.cc, leaky_relu_common.cc and the reference
kernels they call). LiteRT's BUILTIN_REF kernels differ in a few places, all in how parameters are
derived, never in the per-element integer recipe:

  RELU, PRELU,        LiteRT computes the real multipliers (s_in / s_out, ...) as float
  LEAKY_RELU          expressions, TFLM in double: the Q31 multipliers differ in their low bits
                      and LiteRT is 1 LSB off on a few values. For LEAKY_RELU with alpha < 0 TFLM
                      also computes -(x * |M_alpha|) where LiteRT computes x * M_alpha (SRDHM
                      rounds exact ties asymmetrically).
  RELU6 int8/int16    LiteRT requantizes input -> output; TFLM clamps the raw input to
                      [zp_in, q_in(6.0)] and ignores the output quantization. They agree when the
                      output quantization equals the input's, which is why RELU6 is out_quant="same".
  SOFTMAX int16       TFLM builds its exp and 1/(1+x) LUTs in float, LiteRT in double: two LUT
                      entries differ (softmax_int16_luts).
  LOGISTIC/TANH int8  LiteRT evaluates a 256-entry LUT of the float function (LUTPopulate); TFLM
                      rescales the input to Q4.27 and runs gemmlowp's fixed-point logistic/tanh.
                      Different algorithms, but they agreed on every value of 300 random input
                      quantizations each (the fixed-point result is within ~1e-9 of the float one).

The int16 LOGISTIC/TANH kernels (sigmoid-table interpolation) are shared code. HARD_SWISH and PRELU
have no int16 kernel in LiteRT, so they are int8 only here.

Float constants that TFLite computes with libm (expf, exp, logf) are computed with the same libm
through ctypes, so LUTs built from them are bit-identical.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np

from . import CCall, OpDef, register
from ...errors import EdgecError
from ..graph import Op
from ..quant import (INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier, quantize_multiplier,
                     round_half_away, rounding_divide_by_pot, saturating_rounding_doubling_high_mul)
from ..tensor import Tensor

# -- helpers ----------------------------------------------------------------------------------------

_srdhm = saturating_rounding_doubling_high_mul
_rdbpot = rounding_divide_by_pot
_mbqm = multiply_by_quantized_multiplier


def _scale(t: Tensor) -> np.float32:
    return np.float32(t.quant.scale[0])


def _zp(t: Tensor) -> int:
    return int(t.quant.zero_point[0])


def _info(dtype: str):
    return np.iinfo(dtype)


def _same_shape(op: Op, ins):
    return [ins[0].shape]


def _check_quant(ins, outs, symmetric16: bool = True):
    for t in (ins[0], outs[0]):
        if t.quant is None or t.quant.per_channel:
            raise ValueError(f"{t.name}: quantized activations need per-tensor quantization")
    if symmetric16 and outs[0].dtype == "int16" and (_zp(ins[0]) or _zp(outs[0])):
        raise ValueError("int16 activations need zero points of 0 (symmetric 16x8)")


def _roundf(x) -> float:
    """std::round on a float value (halves away from zero)."""
    return float(round_half_away(np.float32(x)))


_LIBM = None


def _libm():
    global _LIBM
    if _LIBM is None:
        lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        for name, t in (("expf", ctypes.c_float), ("logf", ctypes.c_float), ("exp", ctypes.c_double)):
            f = getattr(lib, name)
            f.restype, f.argtypes = t, [t]
        _LIBM = lib
    return _LIBM


def _expf(x) -> np.float32:
    try:
        return np.float32(_libm().expf(float(x)))
    except OSError:  # no libm to call: numpy's expf (may differ from glibc by an ulp)
        return np.exp(np.float32(x))


def _exp(x: float) -> float:
    try:
        return float(_libm().exp(float(x)))
    except OSError:
        return math.exp(x)


def _logf(x) -> np.float32:
    try:
        return np.float32(_libm().logf(float(x)))
    except OSError:
        return np.log(np.float32(x))


# -- gemmlowp fixed point (int32 values held in int64 arrays) ---------------------------------------

def _wrap32(x):
    """int32 wrap-around of C's non-saturating int32 arithmetic."""
    return ((np.asarray(x, np.int64) + 2 ** 31) & 0xFFFFFFFF) - 2 ** 31


def _sat_shift_left(x, exponent: int):
    """gemmlowp SaturatingRoundingMultiplyByPOT<exponent> for exponent > 0 (int32)."""
    if exponent == 0:
        return x
    threshold = (1 << (31 - exponent)) - 1
    r = _wrap32(x * (1 << exponent))
    r = np.where(x > threshold, INT32_MAX, r)
    return np.where(x < -threshold, INT32_MIN, r)


def _rescale(x, src_bits: int, dst_bits: int):
    e = src_bits - dst_bits
    return _sat_shift_left(x, e) if e >= 0 else _rdbpot(x, -e)


def _rounding_half_sum(a, b):
    s = np.asarray(a, np.int64) + b
    s = s + np.where(s >= 0, 1, -1)
    return np.where(s >= 0, s // 2, -((-s) // 2))  # C division truncates


def exp_on_interval_between_negative_one_quarter_and_0_excl(a):
    """exp(a) for a in [-1/4, 0), Q0.31 in and out."""
    constant_term = 1895147668
    constant_1_over_3 = 715827883
    x = _wrap32(a + (1 << 28))
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _rdbpot(x4, 2)
    poly = _rdbpot(_wrap32(_srdhm(_wrap32(x4_over_4 + x3), constant_1_over_3) + x2), 1)
    return _wrap32(constant_term + _srdhm(constant_term, _wrap32(x + poly)))


def exp_on_negative_values(a, integer_bits: int):
    """gemmlowp::exp_on_negative_values: Q(integer_bits) input <= 0, Q0.31 output."""
    a = np.asarray(a, np.int64)
    frac = 31 - integer_bits
    one_quarter = 1 << (frac - 2)
    a_mod = _wrap32((a & (one_quarter - 1)) - one_quarter)
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(_rescale(a_mod, integer_bits, 0))
    remainder = _wrap32(a_mod - a)
    for exponent, mult in ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
                           (2, 39332535), (3, 720401), (4, 242)):
        if integer_bits > exponent:
            bit = 1 << (frac + exponent)
            result = np.where(remainder & bit, _srdhm(result, mult), result)
    if integer_bits > 5:
        result = np.where(a < -(1 << (36 - integer_bits)), 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _newton_reciprocal_x(a):
    """The Newton-Raphson core shared by 1/(1+x) and (1-x)/(1+x): returns (x in Q2.29)."""
    half_denominator = _rounding_half_sum(a, INT32_MAX)
    x = _wrap32(1515870810 + _srdhm(half_denominator, -1010580540))
    for _ in range(3):
        hdx = _srdhm(half_denominator, x)
        one_minus = _wrap32((1 << 29) - hdx)
        x = _wrap32(x + _rescale(_srdhm(x, one_minus), 4, 2))
    return x


def one_over_one_plus_x_for_x_in_0_1(a):
    return _rescale(_newton_reciprocal_x(a), 1, 0)        # ExactMulByPot<-1>: Q2 -> Q1


def one_minus_x_over_one_plus_x_for_x_in_0_1(a):
    return _rescale(_wrap32(_newton_reciprocal_x(a) - (1 << 29)), 2, 0)


def fixed_tanh(a, integer_bits: int):
    a = np.asarray(a, np.int64)
    neg = a < 0
    n = np.where(neg, a, _wrap32(-a))
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    return np.where(a == 0, 0, np.where(neg, _wrap32(-t), t))


def fixed_logistic(a, integer_bits: int):
    a = np.asarray(a, np.int64)
    pos = a > 0
    abs_in = np.where(pos, a, _wrap32(-a))
    r_pos = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(_wrap32(-abs_in), integer_bits))
    r_neg = _wrap32(INT32_MAX - r_pos)
    return np.where(a == 0, 1 << 30, np.where(pos, r_pos, r_neg))


def get_reciprocal(x, x_integer_digits: int):
    """TFLite GetReciprocal: (Q0.31 reciprocal scale, num_bits_over_unit) per element of x > 0."""
    x = np.asarray(x, np.int64)
    headroom_plus_one = _clz32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted = _wrap32(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted), num_bits_over_unit


def _clz32(x):
    """Count leading zeros of the uint32 view (32 for 0); frexp is exact on integers < 2^53."""
    x = np.asarray(x, np.int64) & 0xFFFFFFFF
    return 32 - np.frexp(x.astype(np.float64))[1].astype(np.int64)


# -- LUTs and tables --------------------------------------------------------------------------------

# sigmoid(i / 24) in Q0.16, the table TFLite's int16 LOGISTIC and TANH interpolate
# (sigmoid_table_uint16 in kernels/internal/common.h). Data, not a formula: no simple rounding of
# 65536 * sigmoid(i / 24) reproduces all 256 entries.
SIGMOID_TABLE_UINT16 = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794,
    41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443,
    48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169, 53581, 53983, 54374,
    54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433, 57724, 58007, 58280, 58544,
    58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110, 61279,
    61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990,
    63090, 63186, 63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030,
    64090, 64148, 64204, 64257, 64308, 64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652,
    64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019,
    65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234,
    65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360,
    65367, 65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476,
    65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498, 65500, 65501,
    65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513, 65514, 65515, 65516,
    65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529,
    65529, 65530, 65530, 65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532,
    65532, 65532, 65532, 65533, 65533, 65533, 65533, 65533, 65533, 65533, 65533, 65534, 65534,
    65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535], np.int64)


def lut_populate_int16(fn, input_scale, input_zp: int, output_scale, output_zp: int,
                       float_type=np.float64) -> np.ndarray:
    """TFLite's LUTPopulateInt16<FloatT>: 512 interpolation nodes plus one, biased so that linear
    interpolation at the midpoints has half the error. `fn` maps a FloatT scalar to FloatT."""
    F = float_type
    s_in, s_out = F(input_scale), F(output_scale)
    input_min = s_in * F(-32768 - input_zp)
    input_max = s_in * F(32767 - input_zp)
    output_min = s_out * F(-32768 - output_zp)
    output_max = s_out * F(32767 - output_zp)
    step = (input_max - input_min) / F(512)
    half_step = step / F(2)
    inv = F(65536) / (output_max - output_min)
    rnd = lambda v: F(round_half_away(v))  # noqa: E731  (round of a FloatT value)
    lut = np.zeros(513, np.int64)
    for i in range(512):
        val = F(fn(input_min + F(i) * step))
        val_mid = F(fn(input_min + F(i) * step + half_step))
        val_next = F(fn(input_min + F(i + 1) * step))
        sample = rnd(val * inv)
        mid_interp = rnd((val_next * inv + rnd(val * inv)) / F(2))
        mid_val = rnd(val_mid * inv)
        bias = rnd((mid_interp - mid_val) / F(2))
        lut[i] = int(min(max(sample - bias, F(-32768)), F(32767)))
    lut[512] = int(min(max(rnd(F(fn(input_max)) * inv), F(-32768)), F(32767)))
    return lut


def lut_lookup_int16(value, lut: np.ndarray):
    """TFLite LUTLookup(int16, 513-entry LUT): 9-bit index, 7-bit linear interpolation."""
    value = np.asarray(value, np.int64)
    index = 256 + (value >> 7)
    offset = value & 0x7F
    base = lut[index]
    slope = lut[index + 1] - base
    return ((base + ((slope * offset + 64) >> 7)) + 32768) % 65536 - 32768


def checked_log2(x) -> tuple[bool, int]:
    """TFLite CheckedLog2 (float logf arithmetic): (is power of two within 1e-3, rounded log2)."""
    x_log2 = _logf(x) * (np.float32(1.0) / _logf(np.float32(2.0)))
    rounded = np.float32(round_half_away(x_log2))
    return bool(abs(x_log2 - rounded) < np.float32(1e-3)), int(rounded)


# -- RELU, RELU6 ------------------------------------------------------------------------------------

def _relu_ref(op: Op, xs, ins, outs):
    x, inp, out = xs[0], ins[0], outs[0]
    if out.dtype == "float32":
        return [np.maximum(x, np.float32(0)).astype(np.float32)]
    _check_quant(ins, outs)
    # activations_common.cc CalculateReluOpData: multiplier s_in / s_out in double.
    m, s = quantize_multiplier(float(_scale(inp)) / float(_scale(out)))
    info = _info(out.dtype)
    lo = max(info.min, _zp(out) + int(_roundf(np.float32(0) / _scale(out))))
    y = _zp(out) + _mbqm(np.asarray(x, np.int64) - _zp(inp), m, s)
    return [np.clip(y, lo, info.max).astype(out.dtype)]


def _relu6_ref(op: Op, xs, ins, outs):
    x, inp, out = xs[0], ins[0], outs[0]
    if out.dtype == "float32":
        return [np.clip(x, np.float32(0), np.float32(6)).astype(np.float32)]
    _check_quant(ins, outs)
    # TFLM Relu6Prepare/Relu6Quantized: clamp the raw input to [zp, FloatToQuantizedType(6)]
    # in the input's quantization; the output's quantization is not read (out_quant="same").
    info = _info(inp.dtype)
    six = int(np.float32(round_half_away(np.float32(6.0) / _scale(inp))) + np.float32(_zp(inp)))
    six = min(max(six, info.min), info.max)
    return [np.clip(np.asarray(x, np.int64), _zp(inp), six).astype(out.dtype)]


# -- LOGISTIC, TANH ---------------------------------------------------------------------------------

def _q4_input_params(inp: Tensor):
    """TFLM int8 LOGISTIC/TANH prepare: input scale * 2^27 as a Q31 multiplier and left shift, and
    the input radius beyond which the output saturates."""
    q, left_shift = math.frexp(float(_scale(inp)) * float(1 << 27))
    mult = int(math.copysign(math.floor(abs(q) * 2 ** 31 + 0.5), q))
    if mult == 2 ** 31:  # static_cast<int32_t> of 2^31 (out of range: x86 gives INT32_MIN)
        mult = INT32_MIN
    radius = int(math.floor(15.0 * float(1 << 27) / 2.0 ** left_shift))
    return mult, left_shift, radius


def _int16_lut_input_params(inp: Tensor, pot_shifts: tuple[int, ...]):
    """LOGISTIC/TANH int16 prepare: (multiplier, left shift) rescaling the input to 1/(3*4096)."""
    pot, log2 = checked_log2(_scale(inp))
    left_shift = 12 + log2
    if pot and left_shift in pot_shifts:
        return 3 << left_shift, 0
    mult = float(_scale(inp)) * 4096.0 * 3.0
    left_shift = 0
    while mult <= 32767.0 / 2.0 and left_shift <= 30:
        left_shift += 1
        mult *= 2.0
    return int(mult), left_shift


def _int16_rescale(x, mult: int, shift: int):
    rnd = (1 << (shift - 1)) if shift > 0 else 0
    return _wrap32(np.asarray(x, np.int64) * mult + rnd) >> shift


def _logistic_ref(op: Op, xs, ins, outs):
    x, inp, out = xs[0], ins[0], outs[0]
    if out.dtype == "float32":
        v = np.asarray(x, np.float64)
        y = np.where(v > 16.619047164916992, 1.0, np.where(v < -9.0, np.exp(v), 1.0 / (1.0 + np.exp(-v))))
        return [y.astype(np.float32)]
    _check_quant(ins, outs, symmetric16=out.dtype == "int16")
    if out.dtype == "int8":
        mult, shift, radius = _q4_input_params(inp)
        d = np.asarray(x, np.int64) - _zp(inp)
        q4 = _mbqm(np.clip(d, -radius, radius), mult, shift)
        y = _rdbpot(fixed_logistic(q4, 4), 23) - 128
        y = np.where(d <= -radius, -128, np.where(d >= radius, 127, np.clip(y, -128, 127)))
        return [y.astype(np.int8)]
    mult, shift = _int16_lut_input_params(inp, (0,))
    v = _int16_rescale(x, mult, shift)
    a = np.abs(v)
    uh = a >> 9
    idx = np.minimum(uh, 254)
    ua, ub = SIGMOID_TABLE_UINT16[idx], SIGMOID_TABLE_UINT16[idx + 1]
    r = np.where(uh >= 255, 0x7FFF << 10, (ua << 9) + (a & 0x1FF) * (ub - ua))
    r = np.where(v >= 0, r + (1 << 9), (1 << 25) - r + (1 << 9) - 1) >> 10
    return [r.astype(np.int16)]


def _tanh_ref(op: Op, xs, ins, outs):
    x, inp, out = xs[0], ins[0], outs[0]
    if out.dtype == "float32":
        return [np.tanh(np.asarray(x, np.float64)).astype(np.float32)]
    _check_quant(ins, outs, symmetric16=out.dtype == "int16")
    if out.dtype == "int8":
        mult, shift, radius = _q4_input_params(inp)
        d = np.asarray(x, np.int64) - _zp(inp)
        q4 = _mbqm(np.clip(d, -radius, radius), mult, shift)
        y = np.clip(_rdbpot(fixed_tanh(q4, 4), 24), -128, 127)
        y = np.where(d <= -radius, -128, np.where(d >= radius, 127, y))
        return [y.astype(np.int8)]
    mult, shift = _int16_lut_input_params(inp, (0, 1))
    v = _int16_rescale(x, mult, shift)
    a = np.abs(v)
    uh = a >> 8
    idx = np.minimum(uh, 254)
    ua, ub = SIGMOID_TABLE_UINT16[idx], SIGMOID_TABLE_UINT16[idx + 1]
    r = np.where(uh >= 255, 0xFFFF << 8, (ua << 8) + (a & 0xFF) * (ub - ua))
    r = np.where(v >= 0, r - (1 << 23) + (1 << 7), -r + (1 << 23) + (1 << 7) - 1) >> 8
    return [r.astype(np.int16)]


# -- HARD_SWISH -------------------------------------------------------------------------------------

def _downscale_q31_to_q15(m: int) -> int:
    """DownScaleInt32ToInt16Multiplier."""
    if m >= INT32_MAX - (1 << 15):
        return 32767
    return (m + (1 << 15)) >> 16


def hard_swish_params(inp: Tensor, out: Tensor):
    """HardSwishPrepare (float arithmetic as in TFLM/LiteRT): Q15 output and "reluish" multipliers."""
    hires = np.float32(1.0 / 128.0) * _scale(inp)
    out_m, out_e = quantize_multiplier(float(hires / _scale(out)))
    relu_m, relu_e = quantize_multiplier(float(hires / (np.float32(3.0) / np.float32(32768.0))))
    if out_e > 0:
        raise ValueError("HARD_SWISH: output scale too small for the input scale")
    return _downscale_q31_to_q15(out_m), out_e, _downscale_q31_to_q15(relu_m), relu_e


def _i16(x):
    return ((np.asarray(x, np.int64) + 32768) & 0xFFFF) - 32768


def _srdhm16(a, b):
    a = np.asarray(a, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    s = ab + nudge
    hi = _i16(np.where(s >= 0, s >> 15, -((-s) >> 15)))
    return np.where((a == b) & (a == -32768), 32767, hi)


def _sat_left_shift16(x, amount: int):
    return np.clip(np.asarray(x, np.int64) * (1 << amount), -32768, 32767)


def _hard_swish_ref(op: Op, xs, ins, outs):
    x, inp, out = xs[0], ins[0], outs[0]
    if out.dtype == "float32":
        v = np.asarray(x, np.float32)
        return [(v * np.minimum(np.float32(6), np.maximum(np.float32(0), v + np.float32(3)))
                 / np.float32(6)).astype(np.float32)]
    _check_quant(ins, outs, symmetric16=False)
    out_m, out_e, relu_m, relu_e = hard_swish_params(inp, out)
    v = _i16(np.asarray(x, np.int64) - _zp(inp))
    hires = _i16(v * (1 << 7))
    preshift_out = _srdhm16(hires, out_m)
    r = hires
    if relu_e > 0:
        r = _sat_left_shift16(r, relu_e - 1)
    r = _srdhm16(r, relu_m)
    if relu_e > 0:
        r = _sat_left_shift16(r, 1)
    if relu_e < 0:
        r = _rdbpot(r, -relu_e)
    r = (r + (1 << 15)) >> 1
    # SaturatingDoublingHighMul: truncating (C division) instead of rounding.
    ab = r * preshift_out
    p = _i16(np.where(ab >= 0, ab >> 15, -((-ab) >> 15)))
    p = np.where((r == preshift_out) & (r == -32768), 32767, p)
    y = _i16(_rdbpot(p, -out_e) + _zp(out))
    info = _info(out.dtype)
    return [np.clip(y, info.min, info.max).astype(out.dtype)]


# -- SOFTMAX ----------------------------------------------------------------------------------------

def softmax_int8_params(inp: Tensor, beta: float):
    """PreprocessSoftmaxScaling(beta, s_in, 5) and diff_min = -CalculateInputRadius(5, shift)."""
    real = min(float(np.float32(beta)) * float(_scale(inp)) * float(1 << 26), float((1 << 31) - 1))
    mult, shift = quantize_multiplier(real)
    diff_min = -int(math.floor(31.0 * float(1 << 26) / 2.0 ** shift))
    return mult, shift, diff_min


def softmax_int8_exps(diff, mult: int, shift: int, diff_min: int):
    """Per element of diff = x - row max: (kept, exp in Q0.31, its Q12.19 term of the row sum)."""
    keep = diff >= diff_min
    scaled = _srdhm(_wrap32(np.where(keep, diff, 0) * (1 << shift)), mult)        # Q5.26
    e = exp_on_negative_values(scaled, 5)                                           # Q0.31
    return keep, e, np.where(keep, _rdbpot(e, 12), 0)


_SOFTMAX16_LUTS: dict = {}


def softmax_int16_luts(flavor: str = "tflm"):
    """The exp LUT on [-10, 0] and the 1/(1+x) LUT on [0, 1], both onto [-1, 1] in Q15.

    TFLM builds them with LUTPopulate<float> (float arithmetic, expf); LiteRT's SoftmaxPrepare with
    the double overload (exp), "for backward compatibility". Two entries of the 1/(1+x) table
    differ, which moves ~1 in 10^4 int16 outputs by 1 LSB.
    """
    if flavor not in _SOFTMAX16_LUTS:
        rng = 65535
        if flavor == "tflm":
            f32 = np.float32
            exp_lut = lut_populate_int16(_expf, f32(10.0) / f32(rng), 32767, f32(2.0) / f32(rng), 0,
                                         np.float32)
            inv_lut = lut_populate_int16(lambda v: f32(1) / (f32(1) + v), f32(1.0) / f32(rng), -32768,
                                         f32(2.0) / f32(rng), 0, np.float32)
        elif flavor == "litert":
            exp_lut = lut_populate_int16(lambda v: _exp(float(v)), 10.0 / rng, 32767, 2.0 / rng, 0)
            inv_lut = lut_populate_int16(lambda v: 1.0 / (1.0 + v), 1.0 / rng, -32768, 2.0 / rng, 0)
        else:
            raise ValueError(flavor)
        _SOFTMAX16_LUTS[flavor] = (exp_lut, inv_lut)
    return _SOFTMAX16_LUTS[flavor]


def softmax_int16(x, input_scale, beta: float, flavor: str = "tflm") -> np.ndarray:
    """SoftmaxInt16 over the last axis, int16 in (zero point 0) -> Q15 out. `flavor` picks TFLM's
    (the reference) or LiteRT's LUTs and input-multiplier arithmetic (s_in * beta is a float
    product in LiteRT, a double one in TFLM)."""
    exp_lut, inv_lut = softmax_int16_luts(flavor)
    s, b = np.float32(input_scale), np.float32(beta)
    real = float(s * b) if flavor == "litert" else float(s) * float(b)
    mult, shift = quantize_multiplier(real / (10.0 / 65535.0))
    x = np.asarray(x, np.int64)
    scaled = _mbqm(x - x.max(axis=-1, keepdims=True), mult, shift) + 32767
    e = lut_lookup_int16(np.clip(scaled, -32768, 32767), exp_lut)
    total = e.sum(axis=-1, keepdims=True)
    hpo = _clz32(total)
    shifted = ((total << (hpo - 1)) + (1 << 13)) >> 14
    recip = lut_lookup_int16(np.clip(shifted - (1 << 15) - (1 << 16), -32768, 32767), inv_lut)
    right = 31 - hpo
    y = (e * recip + (np.int64(1) << (right - 1))) >> right
    return np.clip(y, 0, 32767).astype(np.int16)


def _softmax_ref(op: Op, xs, ins, outs):
    x, inp, out = xs[0], ins[0], outs[0]
    beta = float(np.float32(op.attrs.get("beta", 1.0)))
    if out.dtype == "float32":
        v = np.asarray(x, np.float64)
        e = np.exp((v - v.max(axis=-1, keepdims=True)) * beta)
        return [(e / e.sum(axis=-1, keepdims=True)).astype(np.float32)]
    _check_quant(ins, outs)
    if out.dtype == "int16":
        return [softmax_int16(x, _scale(inp), beta)]
    x = np.asarray(x, np.int64)
    diff = x - x.max(axis=-1, keepdims=True)
    mult, shift, diff_min = softmax_int8_params(inp, beta)
    if shift < 0:  # QuantizeMultiplierGreaterThanOne's check
        raise ValueError("SOFTMAX: beta * input scale too small")
    keep, e, term = softmax_int8_exps(diff, mult, shift, diff_min)
    total = _wrap32(term.sum(axis=-1, keepdims=True))                              # Q12.19
    recip, bits_over_unit = get_reciprocal(total, 12)
    if (bits_over_unit + 31 - 8 > 31).any():
        # TFLite's TFLITE_CHECK(exponent <= 31): LiteRT and TFLM both abort here.
        raise ValueError("SOFTMAX int8: a row's sum of exp(beta * s_in * (x - max)) reaches 512; "
                         "TFLite's int8 kernel aborts on it (too many classes near the maximum for "
                         "this input scale and beta)")
    y = _rdbpot(_srdhm(recip, e), bits_over_unit + 31 - 8) - 128
    return [np.where(keep, np.clip(y, -128, 127), -128).astype(np.int8)]


# -- PRELU, LEAKY_RELU ------------------------------------------------------------------------------

def _prelu_shape(op: Op, ins):
    return [tuple(np.broadcast_shapes(ins[0].shape, ins[1].shape))]


def prelu_params(inp: Tensor, at: Tensor, out: Tensor):
    """prelu_common.cc CalculatePreluParams: the x >= 0 and the alpha multipliers, in double."""
    return (quantize_multiplier(float(_scale(inp)) / float(_scale(out))),
            quantize_multiplier(float(_scale(inp)) * float(_scale(at)) / float(_scale(out))))


def _prelu_ref(op: Op, xs, ins, outs):
    x, alpha = xs[0], xs[1]
    inp, at, out = ins[0], ins[1], outs[0]
    if out.dtype == "float32":
        x = np.asarray(x, np.float32)
        return [np.where(x >= 0, x, x * np.asarray(alpha, np.float32)).astype(np.float32)]
    _check_quant(ins, outs, symmetric16=False)
    if at.quant is None or at.quant.per_channel:
        raise ValueError("PRELU: alpha must be quantized per tensor")
    (m1, s1), (m2, s2) = prelu_params(inp, at, out)
    v = np.asarray(x, np.int64) - _zp(inp)
    a = np.asarray(alpha, np.int64) - _zp(at)
    y = np.where(v >= 0, _mbqm(v, m1, s1), _mbqm(v * a, m2, s2)) + _zp(out)
    info = _info(out.dtype)
    return [np.clip(y, info.min, info.max).astype(out.dtype)]


def leaky_relu_params(inp: Tensor, out: Tensor, alpha: float):
    """TFLM LeakyReluPrepare: s_in * alpha / s_out and s_in / s_out in double (LiteRT evaluates
    both as float expressions; the TFLM we test against matches the double ones on every value)."""
    s_in, s_out, a = float(_scale(inp)), float(_scale(out)), float(np.float32(alpha))
    return quantize_multiplier(s_in * a / s_out), quantize_multiplier(s_in / s_out)


def _leaky_relu_ref(op: Op, xs, ins, outs):
    x, inp, out = xs[0], ins[0], outs[0]
    alpha = op.attrs.get("alpha", 0.0)
    if out.dtype == "float32":
        x = np.asarray(x, np.float32)
        return [np.where(x > 0, x, x * np.float32(alpha)).astype(np.float32)]
    _check_quant(ins, outs)
    (ma, sa), (mi, si) = leaky_relu_params(inp, out, alpha)
    v = np.asarray(x, np.int64) - _zp(inp)
    # TFLM's QuantizeLeakyRelu keeps the multiplier non-negative: a negative alpha is applied as
    # -(x * |M|). SRDHM rounds ties asymmetrically, so this differs from LiteRT's x * M on ties.
    if ma < 0:
        neg = _wrap32(-_mbqm(v, _wrap32(-ma), sa))
    else:
        neg = _mbqm(v, ma, sa)
    y = np.where(v >= 0, _mbqm(v, mi, si), neg) + _zp(out)
    info = _info(out.dtype)
    return [np.clip(y, info.min, info.max).astype(out.dtype)]


# -- C emitters (backends/c) -----------------------------------------------------------------------
# int8 element-wise ops become a 256-entry LUT: the reference evaluated on every int8 value, indexed
# by the input's bit pattern (lut[(uint8_t)x]), so the C equals the reference by construction.
# RELU/RELU6 whose table is a plain clamp emit the clamp instead (no table). SOFTMAX int8 runs
# TFLM's fixed point in C (kernels/ref/ec_softmax_s8.c); PRELU int8 requantizes per element.

_LUT_X = np.arange(256, dtype=np.uint8).view(np.int8)    # table index i is the int8 bit pattern i


def _c_dtype(op: Op, tensors) -> str:
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) != 1 or not dtypes <= {"float32", "int8"}:
        raise EdgecError(f"{op.type} {op.name}: the C backend runs float32 and int8 activations, not "
                         f"{'/'.join(sorted(dtypes))}")
    return dtypes.pop()


def _c_reference(op: Op, fn, xs, ins, outs):
    """The reference on compile-time values; what it refuses, the compiler refuses (one line)."""
    try:
        return fn(op, xs, ins, outs)
    except ValueError as e:
        raise EdgecError(f"{op.type} {op.name}: {e}") from None


def _int8_lut(op: Op, fn, ins, outs) -> np.ndarray:
    return np.asarray(_c_reference(op, fn, [_LUT_X], ins[:1], outs)[0], np.int8)


def _lut_c(kernel: str, fn):
    def emit(op: Op, ins, outs, cx):
        args = [cx.ptr(op.inputs[0]), cx.ptr(op.outputs[0])]
        size = outs[0].size
        if _c_dtype(op, (ins[0], outs[0])) == "float32":
            if kernel == "ec_leaky_relu":
                return CCall(kernel + "_f32", args, ("ec_leaky_relu_f32_params_t", {
                    "size": size, "alpha": np.float32(op.attrs.get("alpha", 0.0))}))
            return CCall(kernel + "_f32", args, ("ec_act_f32_params_t", {"size": size}))
        lut = _int8_lut(op, fn, ins, outs)
        if kernel in ("ec_relu", "ec_relu6"):
            lo, hi = int(lut.min()), int(lut.max())
            clamp = np.array_equal(lut, np.clip(_LUT_X, lo, hi))
            return CCall(kernel + "_s8", args, ("ec_relu_s8_params_t", {
                "size": size, "act_min": lo, "act_max": hi,
                "lut": "NULL" if clamp else cx.array(op.name + "_lut", lut, "int8_t")}))
        return CCall(kernel + "_s8", args, ("ec_lut_s8_params_t", {
            "size": size, "lut": cx.array(op.name + "_lut", lut, "int8_t")}))
    return emit


def _softmax_c(op: Op, ins, outs, cx):
    it, ot = ins[0], outs[0]
    depth = int(it.shape[-1]) if it.shape else 1
    dims = {"outer": it.size // max(depth, 1), "depth": depth}
    args = [cx.ptr(op.inputs[0]), cx.ptr(op.outputs[0])]
    beta = np.float32(op.attrs.get("beta", 1.0))
    if _c_dtype(op, (it, ot)) == "float32":
        return CCall("ec_softmax_f32", args, ("ec_softmax_f32_params_t", {**dims, "beta": beta}))
    _c_reference(op, _softmax_ref, [np.zeros((1, 1), np.int8)], [it], [ot])  # quantization checks
    mult, shift, diff_min = softmax_int8_params(it, float(beta))
    # TFLM aborts on a row whose sum of exps reaches 512 (the reference raises): refuse when every
    # row would, i.e. when even the most peaked one (one value at the max, the rest at the smallest
    # exp) does -- decidable while the int32 sum cannot wrap (depth * 2^19 < 2^32). Otherwise such
    # rows are input-dependent and the kernel outputs -128 for them (see ec_softmax_s8.c).
    _, _, term = softmax_int8_exps(np.arange(-255, 1), mult, shift, diff_min)
    min_sum = int(term[-1]) + (depth - 1) * int(term[:-1].min())
    if depth * int(term[-1]) < 2 ** 32 and min_sum >= 2 ** 28:
        raise EdgecError(f"SOFTMAX {op.name}: every row's sum of exp(beta * s_in * (x - max)) reaches "
                         f"512 ({depth} classes, input scale {float(_scale(it)):g}, beta {float(beta):g}); "
                         "TFLite's int8 kernel aborts on it")
    return CCall("ec_softmax_s8", args, ("ec_softmax_s8_params_t", {
        **dims, "mult": mult, "shift": shift, "diff_min": diff_min}))


_PRELU_MAX_DIMS = 6   # EC_PRELU_MAX_DIMS in kernels/include/ec_activation.h


def prelu_geometry(x_shape, alpha_shape, out_shape):
    """The output shape with size-1 axes dropped and neighbouring axes merged while both operands
    stay contiguous (or broadcast) across them: (dims, x strides, alpha strides), in elements."""
    r = len(out_shape)

    def strides(shape):
        shape = (1,) * (r - len(shape)) + tuple(shape)
        st, acc = [0] * r, 1
        for d in reversed(range(r)):
            st[d] = acc if shape[d] != 1 else 0
            acc *= shape[d]
        return st

    sx, sa = strides(x_shape), strides(alpha_shape)
    dims, tx, ta = [], [], []
    for d in range(r):
        n = int(out_shape[d])
        if n == 1:
            continue
        if dims and tx[-1] == sx[d] * n and ta[-1] == sa[d] * n:
            dims[-1], tx[-1], ta[-1] = dims[-1] * n, sx[d], sa[d]
        else:
            dims.append(n)
            tx.append(sx[d])
            ta.append(sa[d])
    return (dims, tx, ta) if dims else ([1], [0], [0])


def _c_int_array(values) -> str:
    vals = list(values) + [0] * (_PRELU_MAX_DIMS - len(values))
    return "{" + ", ".join(str(int(v)) for v in vals) + "}"


def _prelu_c(op: Op, ins, outs, cx):
    it, at, ot = ins[0], ins[1], outs[0]
    dims, tx, ta = prelu_geometry(it.shape, at.shape, ot.shape)
    if len(dims) > _PRELU_MAX_DIMS:
        raise EdgecError(f"PRELU {op.name}: broadcasting over {len(dims)} axes; the C kernel takes "
                         f"{_PRELU_MAX_DIMS}")
    geom = {"rank": len(dims), "dims": _c_int_array(dims), "in_stride": _c_int_array(tx),
            "alpha_stride": _c_int_array(ta)}
    args = [cx.ptr(op.inputs[0]), cx.ptr(op.inputs[1]), cx.ptr(op.outputs[0])]
    if _c_dtype(op, (it, at, ot)) == "float32":
        return CCall("ec_prelu_f32", args, ("ec_prelu_f32_params_t", geom))
    one = np.zeros(1, np.int8)
    _c_reference(op, _prelu_ref, [one, one], [it, at], [ot])   # quantization checks
    (m1, s1), (m2, s2) = prelu_params(it, at, ot)
    return CCall("ec_prelu_s8", args, ("ec_prelu_s8_params_t", {
        **geom, "in_zp": _zp(it), "alpha_zp": _zp(at), "out_zp": _zp(ot),
        "pos_mult": m1, "pos_shift": s1, "neg_mult": m2, "neg_shift": s2}))


# -- TF lowerings (edgec.train): the float32 references on a batch --------------------------------

def _act_tf(kind: str):
    def lower(op: Op, xs, attrs):
        from ._tfutil import tfm
        tf = tfm()
        x = xs[0]
        if kind == "RELU":
            return [tf.nn.relu(x)]
        if kind == "RELU6":
            return [tf.clip_by_value(x, 0.0, 6.0)]
        if kind == "LOGISTIC":
            return [tf.sigmoid(x)]
        if kind == "TANH":
            return [tf.tanh(x)]
        if kind == "HARD_SWISH":
            return [x * tf.clip_by_value(x + 3.0, 0.0, 6.0) / 6.0]
        if kind == "SOFTMAX":
            return [tf.nn.softmax(x * float(np.float32(attrs.get("beta", 1.0))), axis=-1)]
        if kind == "PRELU":
            return [tf.where(x >= 0, x, x * xs[1])]
        if kind == "LEAKY_RELU":
            return [tf.where(x > 0, x, x * float(np.float32(attrs.get("alpha", 0.0))))]
        raise NotImplementedError(kind)
    return lower


_I8_I16 = ("int8", "int16")
_EW = "elementwise"   # every kernel here reads each element before writing the same index
register(OpDef("RELU", _same_shape, _relu_ref, quant_dtypes=_I8_I16, c=_lut_c("ec_relu", _relu_ref),
               inplace=_EW, tf=_act_tf("RELU")))
register(OpDef("RELU6", _same_shape, _relu6_ref, out_quant="same", quant_dtypes=_I8_I16,
               c=_lut_c("ec_relu6", _relu6_ref), inplace=_EW, tf=_act_tf("RELU6")))
register(OpDef("LOGISTIC", _same_shape, _logistic_ref, quant_dtypes=_I8_I16,
               out_quant={"int8": (1.0 / 256, -128), "int16": (1.0 / 32768, 0)},
               c=_lut_c("ec_logistic", _logistic_ref), inplace=_EW, tf=_act_tf("LOGISTIC")))
register(OpDef("TANH", _same_shape, _tanh_ref, quant_dtypes=_I8_I16,
               out_quant={"int8": (1.0 / 128, 0), "int16": (1.0 / 32768, 0)},
               c=_lut_c("ec_tanh", _tanh_ref), inplace=_EW, tf=_act_tf("TANH")))
register(OpDef("HARD_SWISH", _same_shape, _hard_swish_ref, options="HardSwishOptions",
               c=_lut_c("ec_hard_swish", _hard_swish_ref), inplace=_EW, tf=_act_tf("HARD_SWISH")))
register(OpDef("SOFTMAX", _same_shape, _softmax_ref, options="SoftmaxOptions", quant_dtypes=_I8_I16,
               out_quant={"int8": (1.0 / 256, -128), "int16": (1.0 / 32768, 0)}, c=_softmax_c,
               inplace=_EW, tf=_act_tf("SOFTMAX")))
register(OpDef("PRELU", _prelu_shape, _prelu_ref, weights={1: None}, c=_prelu_c, inplace=_EW, tf=_act_tf("PRELU")))
register(OpDef("LEAKY_RELU", _same_shape, _leaky_relu_ref, options="LeakyReluOptions",
               quant_dtypes=_I8_I16, c=_lut_c("ec_leaky_relu", _leaky_relu_ref), inplace=_EW, tf=_act_tf("LEAKY_RELU")))
