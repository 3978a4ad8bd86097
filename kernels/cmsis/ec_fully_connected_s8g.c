#include "ec_lowbit.h"
#include "ec_cmsis.h"

/* FULLY_CONNECTED, int8 activations, group-quantized weights (ec_lowbit.h), for Cortex-M cores with the DSP
 * extension. 4-bit q: per group, 8 inputs per step from one weight word (nibbles w0..w7). Each nibble is
 * moved to the top of its byte (lo = v << 4 & 0xF0F0F0F0: w0, w2, w4, w6; hi = v & 0xF0F0F0F0: w1, w3, ...)
 * and SXTB16 sign-extends byte pairs to 16 * q per lane -- (16 w0, 16 w4), (16 w2, 16 w6), (16 w1, 16 w5),
 * (16 w3, 16 w7) -- with no offset arithmetic. The inputs are paired to match: PKHBT / PKHTB regroup the
 * words x0..x3, x4..x7 into bytes (x0, x1, x4, x5) and (x2, x3, x6, x7), SXTAB16 widens them with the offset
 * -in_zp applied, and four dual MACs (SMUAD / SMLAD) sum the step. A step's sum is a multiple of 16 and is
 * added back >> 4 (exact), so no partial sum exceeds the int8 kernel's bound; a group's sum is multiplied
 * by its multiplier once. A group starting at an odd element takes one scalar element first, then
 * steps of 8, one of 4, and the last < 4 scalar. Other widths run the portable loop (also without __ARM_FEATURE_DSP).
 * Bit-exact with kernels/ref/ec_fully_connected_s8g.c; no scratch. */

#if defined(EC_CMSIS_DSP)
/* PKHBT a, b, lsl #16 (low half of a, low half of b on top) / PKHTB a, b, asr #16 (top half of a, top
 * half of b at the bottom) */
EC_INLINE uint32_t ec_g_pkhbt16(uint32_t a, uint32_t b) {
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
EC_INLINE uint32_t ec_g_pkhtb16(uint32_t a, uint32_t b) {
    uint32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* sum over the elements [s, e) of a 4-bit row of q * (x - in_zp) */
EC_INLINE int32_t ec_g4_dot(const uint8_t *row, const int8_t *x, int32_t s, int32_t e, uint32_t off2, int32_t in_zp) {
    int32_t part = 0, i = s;
    if ((i & 1) && i < e) {
        part += ((int32_t)((row[i >> 1] >> 4) ^ 8u) - 8) * ((int32_t)x[i] - in_zp);
        i++;
    }
    for (; i + 8 <= e; i += 8) {
        const uint32_t v = (uint32_t)ec_rd32(row + (i >> 1));
        const uint32_t lo = (v << 4) & 0xF0F0F0F0u, hi = v & 0xF0F0F0F0u;
        const uint32_t xa = (uint32_t)ec_rd32(x + i), xb = (uint32_t)ec_rd32(x + i + 4);
        const uint32_t x0145 = ec_g_pkhbt16(xa, xb), x2367 = ec_g_pkhtb16(xb, xa);
        int32_t t = __smuad(__sxtb16(lo), __sxtab16(off2, x0145));                 /* w0 x0 + w4 x4 */
        t = __smlad(ec_sxtb16_ror8(lo), __sxtab16(off2, x2367), t);               /* w2 x2 + w6 x6 */
        t = __smlad(__sxtb16(hi), ec_sxtab16_ror8(off2, x0145), t);               /* w1 x1 + w5 x5 */
        t = __smlad(ec_sxtb16_ror8(hi), ec_sxtab16_ror8(off2, x2367), t);         /* w3 x3 + w7 x7 */
        part += t >> 4;
    }
    if (i + 4 <= e) {   /* 4 more: nibbles w0..w3 of a half-word, to the top of bytes 0 / 2 */
        const uint32_t v = (uint32_t)row[i >> 1] | ((uint32_t)row[(i >> 1) + 1] << 8);
        const uint32_t ev = ((v << 4) | (v << 12)) & 0x00F000F0u, od = (v | (v << 8)) & 0x00F000F0u;
        const uint32_t xa = (uint32_t)ec_rd32(x + i);
        int32_t t = __smuad(__sxtb16(ev), __sxtab16(off2, xa));
        t = __smlad(__sxtb16(od), ec_sxtab16_ror8(off2, xa), t);
        part += t >> 4;
        i += 4;
    }
    for (; i < e; i++) {
        const uint32_t nib = (row[i >> 1] >> ((i & 1) * 4)) & 15u;
        part += ((int32_t)(nib ^ 8u) - 8) * ((int32_t)x[i] - in_zp);
    }
    return part;
}

/* sum_g mult[g] * (group g's sum) over a 4-bit row of n elements (a call of its own: the loops get the
 * registers to themselves) */
static __attribute__((noinline)) int32_t ec_g4_row(const uint8_t *row, const uint8_t *mult, const int8_t *x,
                                                  int32_t n, int32_t gs, uint32_t off2, int32_t in_zp) {
    int32_t acc = 0;
    for (int32_t s = 0; s < n; s += gs, mult++) {
        const int32_t e = n - s < gs ? n : s + gs;
        acc += (int32_t)*mult * ec_g4_dot(row, x, s, e, off2, in_zp);
    }
    return acc;
}
#endif

void ec_fully_connected_s8g(const ec_fc_s8g_params_t *p, const int8_t *in, const uint8_t *w,
                            const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    const ec_fc_s8_params_t *f = &p->fc;
    const int32_t n = f->in_features, in_zp = f->in_zp, gs = p->group_size;
    const uint32_t bits = (uint32_t)p->bits;
    const size_t row_bytes = ((size_t)n * bits + 7u) / 8u;
#if defined(EC_CMSIS_DSP)
    const uint32_t off2 = ((uint32_t)(-in_zp) & 0xFFFFu) * 0x10001u;
#endif
    for (int32_t b = 0; b < f->batches; b++) {
        const int8_t *x = in + (size_t)b * (size_t)n;
        for (int32_t o = 0; o < f->out_features; o++) {
            const uint8_t *row = w + (size_t)o * row_bytes;
            const uint8_t *mult = p->mult + (size_t)o * (size_t)p->groups;
            int32_t acc = bias ? bias[o] : 0;
#if defined(EC_CMSIS_DSP)
            if (bits == 4u) acc += ec_g4_row(row, mult, x, n, gs, off2, in_zp);
            else
#endif
            acc += ec_group_run(row, mult, bits, (uint32_t)gs, 0u, (uint32_t)n, x, 1u, in_zp);
            acc = ec_requantize(acc, f->mult[o], f->shift[o]) + f->out_zp;
            out[(size_t)b * (size_t)f->out_features + (size_t)o] = (int8_t)ec_clamp_i32(acc, f->act_min, f->act_max);
        }
    }
}
