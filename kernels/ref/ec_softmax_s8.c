#include "ec_activation.h"

/* SOFTMAX int8 -> int8 (output scale 1/256, zero point -128), TFLite Micro's SoftmaxInt8 with
 * gemmlowp's fixed point, bit for bit: per row the max, exp(beta * s_in * (x - max)) in Q0.31 from
 * the input difference rescaled to Q5.26, their sum in Q12.19, its reciprocal, and the product
 * rounded to 8 bits. gemmlowp's int32 additions wrap around; they are done on uint32 here.
 *
 * Where TFLM aborts (a row's sum of exps reaches 512, so the output shift exceeds 31) the exact
 * result of the wider shift is 0 for every element: such rows come out all -128.
 * In-place safe: out[c] is written only after the row's in[] was read (and in[c] last). */

EC_INLINE int32_t wadd(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
EC_INLINE int32_t wsub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }
EC_INLINE int32_t srdhm(int32_t a, int32_t b) { return ec_sat_rounding_doubling_high_mul(a, b); }

/* SaturatingRoundingMultiplyByPOT<exponent> for exponent > 0 */
EC_INLINE int32_t sat_shl(int32_t x, int exponent) {
    const int32_t threshold = (int32_t)(((uint32_t)1 << (31 - exponent)) - 1u);
    if (x > threshold) return INT32_MAX;
    if (x < -threshold) return INT32_MIN;
    return (int32_t)((uint32_t)x << exponent);
}

/* exp(a) for a in [-1/4, 0), Q0.31 in and out */
static int32_t exp_on_interval(int32_t a) {
    const int32_t constant_term = 1895147668;
    const int32_t constant_1_over_3 = 715827883;
    const int32_t x = wadd(a, 1 << 28);
    const int32_t x2 = srdhm(x, x);
    const int32_t x3 = srdhm(x2, x);
    const int32_t x4 = srdhm(x2, x2);
    const int32_t x4_over_4 = ec_rounding_divide_by_pot(x4, 2);
    const int32_t poly_x2 = wadd(srdhm(wadd(x4_over_4, x3), constant_1_over_3), x2);
    const int32_t poly = ec_rounding_divide_by_pot(poly_x2, 1);   /* x^4/24 + x^3/6 + x^2/2 */
    return wadd(constant_term, srdhm(constant_term, wadd(x, poly)));
}

/* gemmlowp::exp_on_negative_values for a Q5.26 input <= 0; Q0.31 out */
static int32_t exp_on_negative_values_q5(int32_t a) {
    enum { kIntegerBits = 5, kFracBits = 31 - kIntegerBits };
    static const int32_t mults[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int32_t one_quarter = 1 << (kFracBits - 2);
    const int32_t a_mod = wsub(a & (one_quarter - 1), one_quarter);
    int32_t result = exp_on_interval(sat_shl(a_mod, kIntegerBits));
    const int32_t remainder = wsub(a_mod, a);
    for (int k = 0; k < 7; k++) {   /* exponents -2 .. 4, all < kIntegerBits */
        if (remainder & (int32_t)((uint32_t)1 << (kFracBits - 2 + k))) result = srdhm(result, mults[k]);
    }
    return a == 0 ? INT32_MAX : result;
}

/* gemmlowp::one_over_one_plus_x_for_x_in_0_1: Q0.31 in [0, 1) -> Q0.31 */
static int32_t one_over_one_plus_x(int32_t a) {
    int64_t s = (int64_t)a + (int64_t)INT32_MAX;
    s += s >= 0 ? 1 : -1;
    const int32_t half_denominator = (int32_t)(s / 2);   /* C division truncates, as gemmlowp's */
    int32_t x = wadd(1515870810, srdhm(half_denominator, -1010580540));   /* Q2.29 */
    for (int i = 0; i < 3; i++) {
        const int32_t one_minus = wsub(1 << 29, srdhm(half_denominator, x));
        x = wadd(x, sat_shl(srdhm(x, one_minus), 2));
    }
    return sat_shl(x, 1);
}

EC_INLINE int clz32(uint32_t x) {
#if defined(__GNUC__)
    return x ? __builtin_clz(x) : 32;
#else
    int n = 0;
    if (!x) return 32;
    while (!(x & 0x80000000u)) { x <<= 1; n++; }
    return n;
#endif
}

void ec_softmax_s8(const ec_softmax_s8_params_t *p, const int8_t *in, int8_t *out) {
    /* locals: int8 stores may alias *p, so fields read in the loops would be reloaded */
    const int32_t outer = p->outer, depth = p->depth;
    const int32_t mult = p->mult, shift = p->shift, diff_min = p->diff_min;
    for (int32_t r = 0; r < outer; r++) {
        const int8_t *x = in + (size_t)r * (size_t)depth;
        int8_t *y = out + (size_t)r * (size_t)depth;
        int32_t max = x[0];
        for (int32_t c = 1; c < depth; c++) max = x[c] > max ? x[c] : max;
        uint32_t sum = 0;   /* Q12.19, wrapping like TFLM's int32 */
        for (int32_t c = 0; c < depth; c++) {
            const int32_t diff = (int32_t)x[c] - max;
            if (diff >= diff_min) {
                const int32_t scaled = srdhm((int32_t)((uint32_t)diff << shift), mult);
                sum += (uint32_t)ec_rounding_divide_by_pot(exp_on_negative_values_q5(scaled), 12);
            }
        }
        /* GetReciprocal(sum, 12 integer bits) */
        const int headroom_plus_one = clz32(sum);
        const int32_t exponent = 12 - headroom_plus_one + 31 - 8;
        if (exponent > 31) {
            for (int32_t c = 0; c < depth; c++) y[c] = -128;
            continue;
        }
        const uint32_t shifted = headroom_plus_one < 32 ? sum << headroom_plus_one : 0u;
        const int32_t recip = one_over_one_plus_x((int32_t)(shifted - 0x80000000u));
        for (int32_t c = 0; c < depth; c++) {
            const int32_t diff = (int32_t)x[c] - max;
            int32_t v = -128;
            if (diff >= diff_min) {
                const int32_t scaled = srdhm((int32_t)((uint32_t)diff << shift), mult);
                const int32_t e = exp_on_negative_values_q5(scaled);
                v = ec_clamp_i32(ec_rounding_divide_by_pot(srdhm(recip, e), exponent) - 128, -128, 127);
            }
            y[c] = (int8_t)v;
        }
    }
}
