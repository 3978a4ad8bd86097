#include "ec_lowbit.h"

/* FULLY_CONNECTED, int8 activations, binary weights (ec_lowbit.h), arm64 NEON, additions only:
 * acc = 2 * sum_{w=+1} (x - zp) - sum (x - zp). 16 inputs per step: two weight bytes expanded to lane
 * masks (vtst against 1, 2, 4, ..., 128), the int16 inputs (zero point applied) masked and pairwise
 * accumulated (vpadalq_s16). The last in_features % 16 inputs run the scalar loop. Bit-exact with
 * kernels/ref/ec_fully_connected_s8w1.c; no scratch. Elsewhere the portable loop runs. */

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define EC_W1_NEON 1
#else
#define EC_W1_NEON 0
#endif

void ec_fully_connected_s8w1(const ec_fc_s8_params_t *p, const int8_t *in, const uint8_t *w,
                             const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    const int32_t n = p->in_features, in_zp = p->in_zp;
    const size_t row_bytes = ((size_t)n + 7u) / 8u;
#if EC_W1_NEON
    static const uint8_t bitv[8] = {1, 2, 4, 8, 16, 32, 64, 128};
    const uint8x8_t bits = vld1_u8(bitv);
    const int16x8_t zp = vdupq_n_s16((int16_t)in_zp);
#endif
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *x = in + (size_t)b * (size_t)n;
        int32_t total = 0;
        for (int32_t i = 0; i < n; i++) total += (int32_t)x[i] - in_zp;
        for (int32_t o = 0; o < p->out_features; o++) {
            const uint8_t *row = w + (size_t)o * row_bytes;
            int32_t pos = 0;
            int32_t i = 0;
#if EC_W1_NEON
            {
                int32x4_t a = vdupq_n_s32(0);
                for (; i + 16 <= n; i += 16) {
                    const uint8x8_t m0 = vtst_u8(vdup_n_u8(row[i >> 3]), bits);
                    const uint8x8_t m1 = vtst_u8(vdup_n_u8(row[(i >> 3) + 1]), bits);
                    const int8x16_t xv = vld1q_s8(x + i);
                    const int16x8_t x0 = vsubq_s16(vmovl_s8(vget_low_s8(xv)), zp);
                    const int16x8_t x1 = vsubq_s16(vmovl_s8(vget_high_s8(xv)), zp);
                    const int16x8_t k0 = vmovl_s8(vreinterpret_s8_u8(m0)), k1 = vmovl_s8(vreinterpret_s8_u8(m1));
                    a = vpadalq_s16(a, vandq_s16(x0, k0));
                    a = vpadalq_s16(a, vandq_s16(x1, k1));
                }
                pos += vaddvq_s32(a);
            }
#endif
            for (; i < n; i++)
                if ((row[i >> 3] >> (i & 7)) & 1u) pos += (int32_t)x[i] - in_zp;
            int32_t acc = (bias ? bias[o] : 0) + 2 * pos - total;
            acc = ec_requantize(acc, p->mult[o], p->shift[o]) + p->out_zp;
            out[(size_t)b * (size_t)p->out_features + (size_t)o] = (int8_t)ec_clamp_i32(acc, p->act_min, p->act_max);
        }
    }
}
