#include "ec_lowbit.h"

/* FULLY_CONNECTED, int8 activations, int4 weights (ec_lowbit.h), arm64 NEON: 16 inputs per step -- 8 weight
 * bytes split into low / high nibbles, sign-extended ((v ^ 8) - 8) and interleaved back into element
 * order (vzip), inputs widened to int16 with the zero point applied, exact int16 x int16 -> int32 MACs
 * (vmlal_s16). The last in_features % 16 inputs run the scalar loop. Bit-exact with
 * kernels/ref/ec_fully_connected_s8w4.c; no scratch. Elsewhere the portable loop runs. */

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define EC_W4_NEON 1
#else
#define EC_W4_NEON 0
#endif

void ec_fully_connected_s8w4(const ec_fc_s8_params_t *p, const int8_t *in, const uint8_t *w,
                             const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    const int32_t n = p->in_features, in_zp = p->in_zp;
    const size_t row_bytes = ((size_t)n + 1u) / 2u;
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *x = in + (size_t)b * (size_t)n;
        for (int32_t o = 0; o < p->out_features; o++) {
            const uint8_t *row = w + (size_t)o * row_bytes;
            int32_t acc = bias ? bias[o] : 0;
            int32_t i = 0;
#if EC_W4_NEON
            {
                const int16x8_t zp = vdupq_n_s16((int16_t)in_zp);
                const uint8x8_t m15 = vdup_n_u8(15), eight = vdup_n_u8(8);
                int32x4_t a0 = vdupq_n_s32(0), a1 = vdupq_n_s32(0);
                for (; i + 16 <= n; i += 16) {
                    const uint8x8_t v = vld1_u8(row + (i >> 1));
                    const int8x8_t lo = vsub_s8(vreinterpret_s8_u8(veor_u8(vand_u8(v, m15), eight)), vreinterpret_s8_u8(eight));
                    const int8x8_t hi = vsub_s8(vreinterpret_s8_u8(veor_u8(vshr_n_u8(v, 4), eight)), vreinterpret_s8_u8(eight));
                    const int8x8x2_t wz = vzip_s8(lo, hi);   /* elements 0..7, 8..15 */
                    const int8x16_t xv = vld1q_s8(x + i);
                    const int16x8_t x0 = vsubq_s16(vmovl_s8(vget_low_s8(xv)), zp);
                    const int16x8_t x1 = vsubq_s16(vmovl_s8(vget_high_s8(xv)), zp);
                    const int16x8_t w0 = vmovl_s8(wz.val[0]), w1 = vmovl_s8(wz.val[1]);
                    a0 = vmlal_s16(a0, vget_low_s16(w0), vget_low_s16(x0));
                    a1 = vmlal_s16(a1, vget_high_s16(w0), vget_high_s16(x0));
                    a0 = vmlal_s16(a0, vget_low_s16(w1), vget_low_s16(x1));
                    a1 = vmlal_s16(a1, vget_high_s16(w1), vget_high_s16(x1));
                }
                acc += vaddvq_s32(vaddq_s32(a0, a1));
            }
#endif
            for (; i + 1 < n; i += 2) {
                const uint32_t byte = row[i >> 1];
                const int32_t w0 = (int32_t)((byte & 15u) ^ 8u) - 8, w1 = (int32_t)((byte >> 4) ^ 8u) - 8;
                acc += w0 * ((int32_t)x[i] - in_zp) + w1 * ((int32_t)x[i + 1] - in_zp);
            }
            if (i < n) acc += ((int32_t)((row[i >> 1] & 15u) ^ 8u) - 8) * ((int32_t)x[i] - in_zp);
            acc = ec_requantize(acc, p->mult[o], p->shift[o]) + p->out_zp;
            out[(size_t)b * (size_t)p->out_features + (size_t)o] = (int8_t)ec_clamp_i32(acc, p->act_min, p->act_max);
        }
    }
}
