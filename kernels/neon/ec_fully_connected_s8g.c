#include "ec_lowbit.h"

/* FULLY_CONNECTED, int8 activations, group-quantized weights (ec_lowbit.h), arm64 NEON. 4-bit q: per group,
 * 16 inputs per step -- 8 weight bytes give the even elements (low nibbles, sign-extended by SHL 4 then
 * SSHR 4) and the odd ones (SSHR 4), and LD2 loads the 16 inputs already split into even / odd; exact
 * int8 x int8 -> int16 products (SMULL / SMLAL, |q x| <= 8 * 128) minus in_zp * (q_even + q_odd) (SMLSL;
 * zp and that sum fit int8) give per lane q_e (x_e - zp) + q_o (x_o - zp), |.| <= 2 * 8 * 255, which
 * SADALP adds pairwise into the group's int32 lanes. At the group's end its lanes are multiplied by the
 * multiplier into the row's lanes (MLA), summed once per row. Odd group starts, group_len % 16 and other
 * widths run scalar / the portable loop. Bit-exact with kernels/ref/ec_fully_connected_s8g.c; no scratch. */

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define EC_G4_NEON 1
#else
#define EC_G4_NEON 0
#endif

#if EC_G4_NEON
/* q of element i of a 4-bit row */
EC_INLINE int32_t ec_g4_q(const uint8_t *row, int32_t i) {
    return (int32_t)(((uint32_t)(row[i >> 1] >> ((i & 1) * 4)) & 15u) ^ 8u) - 8;
}

/* sum_g mult[g] * sum_{i in g} q_i * (x_i - in_zp) over a 4-bit row of n elements */
static int32_t ec_g4_row(const uint8_t *row, const uint8_t *mult, const int8_t *x, int32_t n, int32_t gs,
                         int32_t in_zp) {
    const int8x8_t zp = vdup_n_s8((int8_t)in_zp);
    int32x4_t acc_v = vdupq_n_s32(0);
    int32_t acc = 0;
    for (int32_t s = 0; s < n; s += gs, mult++) {
        const int32_t e = n - s < gs ? n : s + gs, m = (int32_t)*mult;
        int32_t i = s, part = 0;
        if ((i & 1) && i < e) {
            part += ec_g4_q(row, i) * ((int32_t)x[i] - in_zp);
            i++;
        }
        if (i + 16 <= e) {
            int32x4_t g_v = vdupq_n_s32(0);
            for (; i + 16 <= e; i += 16) {
                const int8x8_t v = vreinterpret_s8_u8(vld1_u8(row + (i >> 1)));
                const int8x8_t qe = vshr_n_s8(vshl_n_s8(v, 4), 4), qo = vshr_n_s8(v, 4);
                const int8x8x2_t xv = vld2_s8(x + i);   /* val[0]: x_i, x_i+2, ...; val[1]: x_i+1, ... */
                int16x8_t t = vmull_s8(qe, xv.val[0]);
                t = vmlal_s8(t, qo, xv.val[1]);
                t = vmlsl_s8(t, vadd_s8(qe, qo), zp);
                g_v = vpadalq_s16(g_v, t);
            }
            acc_v = vmlaq_n_s32(acc_v, g_v, m);
        }
        for (; i < e; i++) part += ec_g4_q(row, i) * ((int32_t)x[i] - in_zp);
        acc += m * part;
    }
    return acc + vaddvq_s32(acc_v);
}
#endif

void ec_fully_connected_s8g(const ec_fc_s8g_params_t *p, const int8_t *in, const uint8_t *w,
                            const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    const ec_fc_s8_params_t *f = &p->fc;
    const int32_t n = f->in_features, in_zp = f->in_zp, gs = p->group_size;
    const uint32_t bits = (uint32_t)p->bits;
    const size_t row_bytes = ((size_t)n * bits + 7u) / 8u;
    for (int32_t b = 0; b < f->batches; b++) {
        const int8_t *x = in + (size_t)b * (size_t)n;
        for (int32_t o = 0; o < f->out_features; o++) {
            const uint8_t *row = w + (size_t)o * row_bytes;
            const uint8_t *mult = p->mult + (size_t)o * (size_t)p->groups;
            int32_t acc = bias ? bias[o] : 0;
#if EC_G4_NEON
            if (bits == 4u) acc += ec_g4_row(row, mult, x, n, gs, in_zp);
            else
#endif
            acc += ec_group_run(row, mult, bits, (uint32_t)gs, 0u, (uint32_t)n, x, 1u, in_zp);
            acc = ec_requantize(acc, f->mult[o], f->shift[o]) + f->out_zp;
            out[(size_t)b * (size_t)f->out_features + (size_t)o] = (int8_t)ec_clamp_i32(acc, f->act_min, f->act_max);
        }
    }
}
