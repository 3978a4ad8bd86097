#include "ec_conv.h"

/* FULLY_CONNECTED int8, arm64 NEON: bit-exact with kernels/ref/ec_fully_connected_s8.c (TFLite Micro
 * FullyConnected): out[b][o] = clamp(out_zp + requant_o(bias[o] + sum_i w[o][i] * (in[b][i] - in_zp))).
 *
 * Computed as sum_i w[o][i] * in[b][i] - in_zp * sum_i w[o][i] (exact modulo 2^32, like the reference's
 * int32 accumulator), 4 weight rows at a time, 16 inputs per step: SDOT (vdotq_s32) with
 * __ARM_FEATURE_DOTPROD, else vmull_s8 (exact int16 products) + vpadalq_s16; the row sums are skipped
 * when in_zp == 0. The last in_features % 16 inputs reuse a 16-byte load ending at the row's end with the
 * already-counted lanes of the filter masked to zero (rows shorter than 16 are copied). Requantization is
 * vectorised (vqrdmulhq_s32 = SaturatingRoundingDoublingHighMul; vrshlq_s32 after a saturating -1 on
 * negative values = RoundingDivideByPOT). No scratch. */

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define EC_FC_NEON 1
#else
#define EC_FC_NEON 0
#endif

#if EC_FC_NEON

/* loading 16 bytes at ec_fc_tail_mask + r keeps the last r lanes */
static const int8_t ec_fc_tail_mask[32] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                           -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};

EC_INLINE int32x4_t ec_dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
#endif
}

EC_INLINE int32x4_t ec_sum16(int32x4_t acc, int8x16_t a) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, vdupq_n_s8(1));
#else
    return vpadalq_s16(acc, vpaddlq_s8(a));
#endif
}

EC_INLINE int32x4_t ec_requant4(int32x4_t acc, int32x4_t mult, int32x4_t shift) {
    const int32x4_t zero = vdupq_n_s32(0), right = vminq_s32(shift, zero);
    int32x4_t x = vqrdmulhq_s32(vshlq_s32(acc, vmaxq_s32(shift, zero)), mult);
    x = vqaddq_s32(x, vshrq_n_s32(vandq_s32(x, right), 31)); /* -1 for x < 0 when right < 0 */
    return vrshlq_s32(x, right);
}

/* One batch row; with_zp is a compile-time constant in both calls (row sums needed or not). */
EC_INLINE void ec_fc_row(const ec_fc_s8_params_t *p, const int8_t *x, const int8_t *w, const int32_t *bias,
                         int8_t *out, const int with_zp) {
    const int32_t I = p->in_features, O = p->out_features, nfull = I / 16, rem = I % 16;
    const int short_rows = I < 16;
    int8x16_t xt = vdupq_n_s8(0), mask = xt;
    if (rem && !short_rows) {
        xt = vld1q_s8(x + I - 16);
        mask = vld1q_s8(ec_fc_tail_mask + rem);
    } else if (rem) {
        int8_t t[16] = {0};
        for (int32_t i = 0; i < rem; i++) t[i] = x[i];
        xt = vld1q_s8(t);
    }
    for (int32_t o = 0; o < O; o += 4) {
        const int32_t n = O - o < 4 ? O - o : 4;
        const int32_t r1 = n > 1 ? o + 1 : o, r2 = n > 2 ? o + 2 : o, r3 = n > 3 ? o + 3 : o;
        const int8_t *w0 = w + (size_t)o * (size_t)I, *w1 = w + (size_t)r1 * (size_t)I;
        const int8_t *w2 = w + (size_t)r2 * (size_t)I, *w3 = w + (size_t)r3 * (size_t)I;
        int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
        int32x4_t s0 = a0, s1 = a0, s2 = a0, s3 = a0;
        for (int32_t c = 0; c < nfull; c++) {
            const int8x16_t xv = vld1q_s8(x + 16 * c);
            const int8x16_t f0 = vld1q_s8(w0 + 16 * c), f1 = vld1q_s8(w1 + 16 * c);
            const int8x16_t f2 = vld1q_s8(w2 + 16 * c), f3 = vld1q_s8(w3 + 16 * c);
            a0 = ec_dot16(a0, xv, f0);
            a1 = ec_dot16(a1, xv, f1);
            a2 = ec_dot16(a2, xv, f2);
            a3 = ec_dot16(a3, xv, f3);
            if (with_zp) {
                s0 = ec_sum16(s0, f0);
                s1 = ec_sum16(s1, f1);
                s2 = ec_sum16(s2, f2);
                s3 = ec_sum16(s3, f3);
            }
        }
        if (rem) {
            int8x16_t f0, f1, f2, f3;
            if (!short_rows) {   /* the 16 bytes ending at the row's end, counted lanes zeroed */
                f0 = vandq_s8(vld1q_s8(w0 + I - 16), mask);
                f1 = vandq_s8(vld1q_s8(w1 + I - 16), mask);
                f2 = vandq_s8(vld1q_s8(w2 + I - 16), mask);
                f3 = vandq_s8(vld1q_s8(w3 + I - 16), mask);
            } else {
                int8_t t[4][16] = {{0}};
                for (int32_t i = 0; i < rem; i++) {
                    t[0][i] = w0[i];
                    t[1][i] = w1[i];
                    t[2][i] = w2[i];
                    t[3][i] = w3[i];
                }
                f0 = vld1q_s8(t[0]);
                f1 = vld1q_s8(t[1]);
                f2 = vld1q_s8(t[2]);
                f3 = vld1q_s8(t[3]);
            }
            a0 = ec_dot16(a0, xt, f0);
            a1 = ec_dot16(a1, xt, f1);
            a2 = ec_dot16(a2, xt, f2);
            a3 = ec_dot16(a3, xt, f3);
            if (with_zp) {
                s0 = ec_sum16(s0, f0);
                s1 = ec_sum16(s1, f1);
                s2 = ec_sum16(s2, f2);
                s3 = ec_sum16(s3, f3);
            }
        }
        int32x4_t acc = vpaddq_s32(vpaddq_s32(a0, a1), vpaddq_s32(a2, a3));
        if (with_zp) acc = vmlsq_n_s32(acc, vpaddq_s32(vpaddq_s32(s0, s1), vpaddq_s32(s2, s3)), p->in_zp);
        int32x4_t b, m, sh;
        if (n == 4) {
            b = bias ? vld1q_s32(bias + o) : vdupq_n_s32(0);
            m = vld1q_s32(p->mult + o);
            sh = vld1q_s32(p->shift + o);
        } else {
            int32_t tb[4] = {0}, tm[4] = {0}, ts[4] = {0};
            for (int32_t j = 0; j < n; j++) {
                tb[j] = bias ? bias[o + j] : 0;
                tm[j] = p->mult[o + j];
                ts[j] = p->shift[o + j];
            }
            b = vld1q_s32(tb);
            m = vld1q_s32(tm);
            sh = vld1q_s32(ts);
        }
        const int16x4_t y4 = vqmovn_s32(ec_requant4(vaddq_s32(acc, b), m, sh));
        int16x8_t y = vqaddq_s16(vcombine_s16(y4, y4), vdupq_n_s16((int16_t)p->out_zp));
        y = vminq_s16(vmaxq_s16(y, vdupq_n_s16((int16_t)p->act_min)), vdupq_n_s16((int16_t)p->act_max));
        const int8x8_t q = vqmovn_s16(y);
        if (n == 4) {
            vst1_lane_u32((uint32_t *)(void *)(out + o), vreinterpret_u32_s8(q), 0);
        } else {
            int8_t t[8];
            vst1_s8(t, q);
            for (int32_t j = 0; j < n; j++) out[o + j] = t[j];
        }
    }
}

#endif /* EC_FC_NEON */

void ec_fully_connected_s8(const ec_fc_s8_params_t *p, const int8_t *in, const int8_t *w,
                           const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *x = in + (size_t)b * (size_t)p->in_features;
        int8_t *y = out + (size_t)b * (size_t)p->out_features;
#if EC_FC_NEON
        if (p->in_zp) ec_fc_row(p, x, w, bias, y, 1);
        else ec_fc_row(p, x, w, bias, y, 0);
#else
        for (int32_t o = 0; o < p->out_features; o++) {
            const int8_t *row = w + (size_t)o * (size_t)p->in_features;
            int32_t acc = bias ? bias[o] : 0;
            for (int32_t i = 0; i < p->in_features; i++) acc += (int32_t)row[i] * ((int32_t)x[i] - p->in_zp);
            acc = ec_requantize(acc, p->mult[o], p->shift[o]) + p->out_zp;
            y[o] = (int8_t)ec_clamp_i32(acc, p->act_min, p->act_max);
        }
#endif
    }
}
