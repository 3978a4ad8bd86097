#include "ec_lowbit_conv.h"

/* CONV_2D, int8 activations, packed low-bit weights (ec_lowbit.h), arm64 NEON. Fast path for 4-bit
 * two's-complement weights (uniform int4): bits == 4 with one shared table (lut_stride 0) that is the
 * two's-complement decode (lut[c] == (c ^ 8) - 8 for all 16 codes -- the params carry no scheme, and a
 * per-tensor kmeans-16 codebook or a pow2-4 table has bits 4 and stride 0 too, so the table itself is
 * checked, once per call). Per output channel and kernel row, the in-bounds taps of a row are one
 * contiguous run of inputs (dil_w == 1; else one run per tap) against one contiguous run of weight
 * nibbles: 16 (then 8) per step -- weight bytes split into low / high nibbles, sign-extended
 * ((v ^ 8) - 8), interleaved back into element order (vzip), inputs widened to int16 with the zero point
 * applied, exact int16 x int16 -> int32 MACs (vmlal_s16); an odd first element and the last run % 8
 * inputs are scalar. Every other case (other widths, tables, per-channel codebooks, non-NEON builds)
 * runs the generic table loop of kernels/ref/ec_conv2d_s8wN.c. Bit-exact with it; no scratch. */

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define EC_WN_NEON 1
#else
#define EC_WN_NEON 0
#endif

#if EC_WN_NEON
/* the int4 weight of element j of a packed row */
static inline int32_t ec_w4_at(const uint8_t *row, uint32_t j) {
    return (int32_t)((((uint32_t)row[j >> 1] >> ((j & 1u) << 2)) & 15u) ^ 8u) - 8;
}

/* signed int4 of the low / high nibbles of v */
static inline int8x8_t ec_lo4(uint8x8_t v) {
    return vsub_s8(vreinterpret_s8_u8(veor_u8(vand_u8(v, vdup_n_u8(15)), vdup_n_u8(8))), vdup_n_s8(8));
}
static inline int8x8_t ec_hi4(uint8x8_t v) {
    return vsub_s8(vreinterpret_s8_u8(veor_u8(vshr_n_u8(v, 4), vdup_n_u8(8))), vdup_n_s8(8));
}

/* sum_{t < len} w[j + t] * (x[t] - zp), w the int4 nibbles of row */
static inline int32_t ec_dot_w4(const uint8_t *row, uint32_t j, const int8_t *x, int32_t len, int16x8_t zp,
                                int32_t in_zp) {
    int32_t acc = 0, t = 0;
    if ((j & 1u) && len > 0) {
        acc = ec_w4_at(row, j) * ((int32_t)x[0] - in_zp);
        t = 1;
    }
    const uint8_t *r = row + ((j + (uint32_t)t) >> 1);
    if (t + 8 <= len) {
        int32x4_t a0 = vdupq_n_s32(0), a1 = vdupq_n_s32(0);
        for (; t + 16 <= len; t += 16, r += 8) {
            const uint8x8_t v = vld1_u8(r);
            const int8x8x2_t wz = vzip_s8(ec_lo4(v), ec_hi4(v));   /* elements 0..7, 8..15 */
            const int8x16_t xv = vld1q_s8(x + t);
            const int16x8_t x0 = vsubq_s16(vmovl_s8(vget_low_s8(xv)), zp);
            const int16x8_t x1 = vsubq_s16(vmovl_s8(vget_high_s8(xv)), zp);
            const int16x8_t w0 = vmovl_s8(wz.val[0]), w1 = vmovl_s8(wz.val[1]);
            a0 = vmlal_s16(a0, vget_low_s16(w0), vget_low_s16(x0));
            a1 = vmlal_s16(a1, vget_high_s16(w0), vget_high_s16(x0));
            a0 = vmlal_s16(a0, vget_low_s16(w1), vget_low_s16(x1));
            a1 = vmlal_s16(a1, vget_high_s16(w1), vget_high_s16(x1));
        }
        if (t + 8 <= len) {
            uint32_t wb;
            __builtin_memcpy(&wb, r, 4);
            const uint8x8_t v = vreinterpret_u8_u32(vdup_n_u32(wb));
            const int8x8_t we = vzip_s8(ec_lo4(v), ec_hi4(v)).val[0];
            const int16x8_t x0 = vsubq_s16(vmovl_s8(vld1_s8(x + t)), zp);
            const int16x8_t w0 = vmovl_s8(we);
            a0 = vmlal_s16(a0, vget_low_s16(w0), vget_low_s16(x0));
            a1 = vmlal_s16(a1, vget_high_s16(w0), vget_high_s16(x0));
            t += 8;
        }
        acc += vaddvq_s32(vaddq_s32(a0, a1));
    }
    for (; t < len; t++) acc += ec_w4_at(row, j + (uint32_t)t) * ((int32_t)x[t] - in_zp);
    return acc;
}

static int ec_is_w4_twos(const ec_conv_s8wN_params_t *p) {
    if (p->bits != 4 || p->lut_stride != 0) return 0;
    for (int32_t k = 0; k < 16; k++)
        if (p->lut[k] != (int8_t)((k ^ 8) - 8)) return 0;
    return 1;
}

static void ec_conv_w4(const ec_conv_s8wN_params_t *p, const int8_t *in, const uint8_t *w, const int32_t *bias,
                       int8_t *out) {
    const ec_conv_s8_params_t *c = &p->conv;
    const int32_t in_c = c->in_c, out_c = c->out_c, in_zp = c->in_zp, k_w = c->k_w;
    const int16x8_t zp = vdupq_n_s16((int16_t)in_zp);
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
                int32_t acc = 0;
                for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
                    const int8_t *xrow = in + (size_t)(iy0 + ky * c->dil_h) * (size_t)c->in_w * (size_t)in_c;
                    for (int32_t r = 0; r < runs; r++) {
                        const int32_t kx = kx_lo + r;
                        const int8_t *x = xrow + (size_t)(ix0 + kx * c->dil_w) * (size_t)in_c;
                        const uint32_t j0 = (uint32_t)(ky * k_w + kx) * (uint32_t)in_c;
                        acc += ec_dot_w4(row, j0, x, span, zp, in_zp);
                    }
                }
                if (bias) acc += bias[oc];
                acc = ec_requantize(acc, c->mult[oc], c->shift[oc]) + c->out_zp;
                o[oc] = (int8_t)ec_clamp_i32(acc, c->act_min, c->act_max);
            }
        }
    }
}
#endif

void ec_conv2d_s8wN(const ec_conv_s8wN_params_t *p, const int8_t *in, const uint8_t *w,
                    const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
#if EC_WN_NEON
    if (ec_is_w4_twos(p)) {
        ec_conv_w4(p, in, w, bias, out);
        return;
    }
#endif
    ec_conv_wN_generic(p, in, w, bias, out);
}
