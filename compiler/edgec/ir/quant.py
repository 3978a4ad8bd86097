"""Integer arithmetic of the TFLite reference kernels, vectorised over numpy int64 arrays.

TFLite (and TFLite Micro, which shares tensorflow/lite/kernels/internal/common.h) rescales an int32
accumulator by a real multiplier M stored as a Q31 mantissa and a power-of-two exponent:
M = q * 2^shift with q in [0.5, 1) held as round(q * 2^31). The rescale is two rounding steps,
"saturating rounding doubling high multiply" (round-half-away on the 64-bit product's high half)
then "rounding divide by power of two" (round half away from zero). Any other rounding order is off
by one LSB on some inputs, so every integer kernel here goes through these functions.
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(2 ** 31), 2 ** 31 - 1


def quantize_multiplier(m: float) -> tuple[int, int]:
    """(q31 multiplier, shift) with m == multiplier * 2^(shift - 31); TFLite's QuantizeMultiplier."""
    if m == 0.0:
        return 0, 0
    q, shift = math.frexp(m)
    q_fixed = int(math.copysign(math.floor(abs(q) * (1 << 31) + 0.5), q))  # std::round
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def quantize_multipliers(ms) -> tuple[np.ndarray, np.ndarray]:
    pairs = [quantize_multiplier(float(m)) for m in np.atleast_1d(ms)]
    return (np.array([p[0] for p in pairs], np.int64), np.array([p[1] for p in pairs], np.int64))


def saturating_rounding_doubling_high_mul(a, b):
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    # C++ integer division truncates toward zero; numpy's // floors, so fix negative quotients.
    hi = np.where(s >= 0, s >> 31, -((-s) >> 31))
    overflow = (a == b) & (a == INT32_MIN)
    return np.where(overflow, INT32_MAX, hi)


def rounding_divide_by_pot(x, exponent):
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """x * M rounded as TFLite does; multiplier/shift broadcast (per-channel arrays are fine)."""
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    x = np.asarray(x, np.int64) * (np.int64(1) << left)
    # x * 2^left is an int32 product in C; wrap like it would (never happens for valid models).
    x = ((x + 2 ** 31) % 2 ** 32) - 2 ** 31
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), right)


def multiply_by_quantized_multiplier_int64(x, multiplier, shift):
    """The int64-accumulator variant used by the int16x8 kernels (reduced 16-bit multiplier)."""
    multiplier = np.asarray(multiplier, np.int64)
    shift = np.asarray(shift, np.int64)
    reduced = np.where(multiplier < 0x7FFF0000, (multiplier + (1 << 15)) >> 16, 0x7FFF)
    total_shift = 15 - shift
    x = np.asarray(x, np.int64) * reduced + (np.int64(1) << (total_shift - 1))
    return (x >> total_shift).astype(np.int64)


def activation_range(act: str, dtype: str, scale: float | None = None, zero_point: int = 0):
    """The clamp a fused activation becomes: a float range, or a quantized one when scale is given.

    Quantized bounds follow TFLite's CalculateActivationRangeQuantized: zp + round(bound / scale),
    intersected with the dtype's range. The division is a float32 one (TFLite divides two floats
    and std::rounds the float quotient); a double division rounds differently near .5.
    """
    lo, hi = {"NONE": (-math.inf, math.inf), "RELU": (0.0, math.inf), "RELU6": (0.0, 6.0),
              "RELU_N1_TO_1": (-1.0, 1.0)}[act]
    if scale is None:
        return lo, hi
    info = np.iinfo(dtype)
    q = lambda v: zero_point + int(round_half_away(np.float32(v) / np.float32(scale)))  # noqa: E731
    qlo = info.min if lo == -math.inf else max(info.min, q(lo))
    qhi = info.max if hi == math.inf else min(info.max, q(hi))
    return qlo, qhi


def round_half_away(x):
    """std::round: halves go away from zero (numpy's round goes to even).

    Exact for every double: floor(|x| + 0.5) would round |x| + 0.5 first and send values just
    below a half (0.49999999999999994) up; |x| - floor(|x|) is always exact."""
    x = np.asarray(x, np.float64)
    a = np.abs(x)
    f = np.floor(a)
    return np.sign(x) * (f + (a - f >= 0.5))
