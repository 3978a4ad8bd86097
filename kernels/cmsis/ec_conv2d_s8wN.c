#include "ec_lowbit_conv.h"
#include "ec_cmsis.h"

/* CONV_2D, int8 activations, packed low-bit weights (ec_lowbit.h), for Cortex-M cores with the DSP
 * extension. Fast path for 4-bit two's-complement weights (uniform int4): bits == 4 with one shared
 * table (lut_stride 0) that is the two's-complement decode (lut[c] == (c ^ 8) - 8 for all 16 codes -- the
 * params carry no scheme, and a per-tensor kmeans-16 codebook or a pow2-4 table has bits 4 and stride 0
 * too, so the table itself is checked, once per call). Per output channel and kernel row, the in-bounds
 * taps of a row are one contiguous run of inputs (dil_w == 1; else one run per tap) against one
 * contiguous run of weight nibbles: 8 per step -- a 32-bit word of nibbles split into even / odd
 * elements placed in the high nibble of each byte (so SXTB16 yields 16 * w, sign included), the inputs
 * widened with the offset applied (SXTAB16), repacked (PKHBT / PKHTB) to pair with the weights, dual
 * MACs (SMLAD) into a 16x accumulator, shifted back exactly per run. Requires
 * k_h * k_w * in_c <= 32768 (else the generic path runs; the 16x sum stays in int32).
 * Every other case -- other widths, tables, per-channel codebooks, no DSP extension -- runs the generic
 * table loop of kernels/ref/ec_conv2d_s8wN.c. Bit-exact with it; no scratch. */

#if defined(EC_CMSIS_DSP)
/* the int4 weight of element j of a packed row */
EC_INLINE int32_t ec_w4_at(const uint8_t *row, uint32_t j) {
    return (int32_t)((((uint32_t)row[j >> 1] >> ((j & 1u) << 2)) & 15u) ^ 8u) - 8;
}

/* PKHBT a, b, lsl #16 (low half of a, low half of b on top) / PKHTB a, b, asr #16 (top half of a, top
 * half of b at the bottom) */
EC_INLINE uint32_t ec_pkhbt16(uint32_t a, uint32_t b) {
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
EC_INLINE uint32_t ec_pkhtb16(uint32_t a, uint32_t b) {
    uint32_t r;
    __asm__("pkhtb %0, %1, %2, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

/* sum_{t < len} w[j + t] * (x[t] - zp), w the int4 nibbles of row (a call of its own: the loop gets the
 * registers to itself) */
static __attribute__((noinline)) int32_t ec_dot_w4(const uint8_t *row, uint32_t j, const int8_t *x, int32_t len,
                                                  int32_t in_zp, uint32_t off2) {
    int32_t acc = 0, t = 0, a16 = 0;   /* a16: 16 * the SIMD part */
    if ((j & 1u) && len > 0) {
        acc = ec_w4_at(row, j) * ((int32_t)x[0] - in_zp);
        t = 1;
    }
    const uint8_t *r = row + ((j + (uint32_t)t) >> 1);
    const int8_t *xp = x + t;
    for (int32_t steps = (len - t) >> 3; steps > 0; steps--) {
        const uint32_t wv = (uint32_t)ec_rd32(r);
        const uint32_t xa = (uint32_t)ec_rd32(xp), xb = (uint32_t)ec_rd32(xp + 4);
        r += 4;
        xp += 8;
        const uint32_t ev = (wv << 4) & 0xF0F0F0F0u;   /* bytes: w0 w2 w4 w6 << 4, so SXTB16 gives 16 * w */
        const uint32_t od = wv & 0xF0F0F0F0u;          /* bytes: w1 w3 w5 w7 << 4 */
        const uint32_t x02 = __sxtab16(off2, xa), x46 = __sxtab16(off2, xb);
        const uint32_t x13 = ec_sxtab16_ror8(off2, xa), x57 = ec_sxtab16_ror8(off2, xb);
        a16 = __smlad(__sxtb16(ev), ec_pkhbt16(x02, x46), a16);          /* (w0, w4) . (x0, x4) */
        a16 = __smlad(ec_sxtb16_ror8(ev), ec_pkhtb16(x46, x02), a16);    /* (w2, w6) . (x2, x6) */
        a16 = __smlad(__sxtb16(od), ec_pkhbt16(x13, x57), a16);          /* (w1, w5) . (x1, x5) */
        a16 = __smlad(ec_sxtb16_ror8(od), ec_pkhtb16(x57, x13), a16);    /* (w3, w7) . (x3, x7) */
    }
    t += ((len - t) >> 3) << 3;
    if (t + 4 <= len) {   /* 4 more: nibbles w0..w3 of a half-word spread to bytes 0 / 2 */
        const uint32_t v = (uint32_t)r[0] | ((uint32_t)r[1] << 8);
        const uint32_t ev = ((v << 4) | (v << 12)) & 0x00F000F0u;   /* w0, w2 */
        const uint32_t od = (v | (v << 8)) & 0x00F000F0u;           /* w1, w3 */
        const uint32_t xa = (uint32_t)ec_rd32(x + t);
        a16 = __smlad(__sxtb16(ev), __sxtab16(off2, xa), a16);
        a16 = __smlad(__sxtb16(od), ec_sxtab16_ror8(off2, xa), a16);
        t += 4;
    }
    acc += a16 >> 4;   /* exact: a multiple of 16 */
    for (; t < len; t++) acc += ec_w4_at(row, j + (uint32_t)t) * ((int32_t)x[t] - in_zp);
    return acc;
}

static int ec_is_w4_twos(const ec_conv_s8wN_params_t *p) {
    const ec_conv_s8_params_t *c = &p->conv;
    if (p->bits != 4 || p->lut_stride != 0 || (int64_t)c->k_h * c->k_w * c->in_c > 32768) return 0;
    for (int32_t k = 0; k < 16; k++)
        if (p->lut[k] != (int8_t)((k ^ 8) - 8)) return 0;
    return 1;
}

static void ec_conv_w4(const ec_conv_s8wN_params_t *p, const int8_t *in, const uint8_t *w, const int32_t *bias,
                       int8_t *out) {
    const ec_conv_s8_params_t *c = &p->conv;
    const int32_t in_c = c->in_c, out_c = c->out_c, in_zp = c->in_zp, k_w = c->k_w;
    const uint32_t off2 = ((uint32_t)(-in_zp) & 0xFFFFu) * 0x10001u;
    const size_t row_bytes = ((size_t)c->k_h * (size_t)k_w * (size_t)in_c + 1u) / 2u;
    for (int32_t oy = 0; oy < c->out_h; oy++) {
        const int32_t iy0 = oy * c->stride_h - c->pad_h;
        int32_t ky_lo, ky_hi;
        ec_tap_range(iy0, c->dil_h, c->in_h, c->k_h, &ky_lo, &ky_hi);
        for (int32_t ox = 0; ox < c->out_w; ox++) {
            const int32_t ix0 = ox * c->stride_w - c->pad_w;
            int32_t kx_lo, kx_hi;
            ec_tap_range(ix0, c->dil_w, c->in_w, c->k_w, &kx_lo, &kx_hi);
            int8_t *o = out + ((size_t)oy * (size_t)c->out_w + (size_t)ox) * (size_t)out_c;
            const int32_t span = c->dil_w == 1 ? (kx_hi - kx_lo) * in_c : in_c;   /* inputs per run */
            const int32_t runs = c->dil_w == 1 ? (kx_hi > kx_lo) : (kx_hi - kx_lo);
            for (int32_t oc = 0; oc < out_c; oc++) {
                const uint8_t *row = w + (size_t)oc * row_bytes;
                int32_t acc = bias ? bias[oc] : 0;
                for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
                    const int8_t *xrow = in + (size_t)(iy0 + ky * c->dil_h) * (size_t)c->in_w * (size_t)in_c;
                    for (int32_t r = 0; r < runs; r++) {
                        const int32_t kx = kx_lo + r;
                        const int8_t *x = xrow + (size_t)(ix0 + kx * c->dil_w) * (size_t)in_c;
                        const uint32_t j0 = (uint32_t)(ky * k_w + kx) * (uint32_t)in_c;
                        acc += ec_dot_w4(row, j0, x, span, in_zp, off2);
                    }
                }
                acc = ec_cm_requantize(acc, c->mult[oc], c->shift[oc]) + c->out_zp;
                o[oc] = (int8_t)ec_clamp_i32(acc, c->act_min, c->act_max);
            }
        }
    }
}
#endif

void ec_conv2d_s8wN(const ec_conv_s8wN_params_t *p, const int8_t *in, const uint8_t *w,
                    const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
#if defined(EC_CMSIS_DSP)
    if (ec_is_w4_twos(p)) {
        ec_conv_w4(p, in, w, bias, out);
        return;
    }
#endif
    ec_conv_wN_generic(p, in, w, bias, out);
}
