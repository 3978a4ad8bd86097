#include "ec_conv.h"

/* DEPTHWISE_CONV_2D int8, arm64 NEON: bit-exact with kernels/ref/ec_depthwise_conv2d_s8.c (TFLite Micro
 * DepthwiseConvPerChannel). Output channel oc = ic * depth_mult + j reads input channel ic with filter
 * column oc (filter [1][k_h][k_w][out_c]); taps outside the image are skipped, as in the reference.
 *
 * Vectorised over channels: per output pixel and tap, (x - in_zp) is widened exactly to int16
 * (vsubl_s8), the filter to int16 (vmovl_s8), and vmlal_s16 accumulates into int32 lanes that start at
 * the bias, so every lane holds the reference's accumulator. depth_mult 1 runs 16-, then 8-channel
 * blocks (a last partial block is recomputed overlapping its neighbour, which rewrites identical
 * bytes); depth_mult >= 8 runs 8 output channels of one input channel at a time (vmlal_n_s16 with the
 * input value broadcast); other multipliers, and fewer than 8 channels, run scalar code. Requantization
 * is vectorised (vqrdmulhq_s32 = SaturatingRoundingDoublingHighMul; vrshlq_s32 after a saturating -1 on
 * negative values = RoundingDivideByPOT). No scratch. */

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define EC_DW_NEON 1
#else
#define EC_DW_NEON 0
#endif

/* One output pixel: where its taps are. */
typedef struct {
    int32_t iy0, ix0, ky_lo, ky_hi, kx_lo, kx_hi;
} ec_dw_pixel_t;

/* Output channels [c0, c1) of one pixel, scalar (the reference's arithmetic). */
static void ec_dw_scalar(const ec_conv_s8_params_t *p, const ec_dw_pixel_t *t, const int8_t *in, const int8_t *w,
                         const int32_t *bias, int8_t *o, int32_t c0, int32_t c1) {
    const int32_t in_c = p->in_c, out_c = p->out_c, dm = p->depth_mult, in_zp = p->in_zp;
    for (int32_t oc = c0; oc < c1; oc++) {
        const int32_t ic = oc / dm;
        int32_t acc = 0;
        for (int32_t ky = t->ky_lo; ky < t->ky_hi; ky++) {
            const int32_t iy = t->iy0 + ky * p->dil_h;
            const int8_t *xrow = in + (size_t)iy * (size_t)p->in_w * (size_t)in_c + (size_t)ic;
            const int8_t *wrow = w + (size_t)ky * (size_t)p->k_w * (size_t)out_c + (size_t)oc;
            for (int32_t kx = t->kx_lo; kx < t->kx_hi; kx++) {
                const int32_t ix = t->ix0 + kx * p->dil_w;
                acc += (int32_t)wrow[(size_t)kx * (size_t)out_c] * ((int32_t)xrow[(size_t)ix * (size_t)in_c] - in_zp);
            }
        }
        if (bias) acc += bias[oc];
        acc = ec_requantize(acc, p->mult[oc], p->shift[oc]) + p->out_zp;
        o[oc] = (int8_t)ec_clamp_i32(acc, p->act_min, p->act_max);
    }
}

#if EC_DW_NEON

EC_INLINE int32x4_t ec_requant4(int32x4_t acc, const int32_t *mult, const int32_t *shift) {
    const int32x4_t sh = vld1q_s32(shift), zero = vdupq_n_s32(0);
    const int32x4_t right = vminq_s32(sh, zero);
    int32x4_t x = vqrdmulhq_s32(vshlq_s32(acc, vmaxq_s32(sh, zero)), vld1q_s32(mult));
    x = vqaddq_s32(x, vshrq_n_s32(vandq_s32(x, right), 31)); /* -1 for x < 0 when right < 0 */
    return vrshlq_s32(x, right);
}

/* 8 requantized lanes -> + out_zp, clamp, int8 (saturating to int16 first changes no result) */
EC_INLINE int8x8_t ec_out8(const ec_conv_s8_params_t *p, int32x4_t a, int32x4_t b, int32_t c) {
    int16x8_t y = vcombine_s16(vqmovn_s32(ec_requant4(a, p->mult + c, p->shift + c)),
                               vqmovn_s32(ec_requant4(b, p->mult + c + 4, p->shift + c + 4)));
    y = vqaddq_s16(y, vdupq_n_s16((int16_t)p->out_zp));
    y = vminq_s16(vmaxq_s16(y, vdupq_n_s16((int16_t)p->act_min)), vdupq_n_s16((int16_t)p->act_max));
    return vqmovn_s16(y);
}

/* depth_mult 1: channels [c, c + 16) */
EC_INLINE void ec_dw_block16(const ec_conv_s8_params_t *p, const ec_dw_pixel_t *t, const int8_t *in,
                             const int8_t *w, const int32_t *bias, int8_t *o, int32_t c) {
    const int32_t C = p->out_c;
    const int8x16_t zp = vdupq_n_s8((int8_t)p->in_zp);
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
    if (bias) {
        a0 = vld1q_s32(bias + c);
        a1 = vld1q_s32(bias + c + 4);
        a2 = vld1q_s32(bias + c + 8);
        a3 = vld1q_s32(bias + c + 12);
    }
    for (int32_t ky = t->ky_lo; ky < t->ky_hi; ky++) {
        const int8_t *xr = in + (size_t)(t->iy0 + ky * p->dil_h) * (size_t)p->in_w * (size_t)C + (size_t)c;
        const int8_t *wr = w + (size_t)ky * (size_t)p->k_w * (size_t)C + (size_t)c;
        for (int32_t kx = t->kx_lo; kx < t->kx_hi; kx++) {
            const int8x16_t xv = vld1q_s8(xr + (size_t)(t->ix0 + kx * p->dil_w) * (size_t)C);
            const int8x16_t wv = vld1q_s8(wr + (size_t)kx * (size_t)C);
            const int16x8_t xl = vsubl_s8(vget_low_s8(xv), vget_low_s8(zp)), xh = vsubl_high_s8(xv, zp);
            const int16x8_t wl = vmovl_s8(vget_low_s8(wv)), wh = vmovl_high_s8(wv);
            a0 = vmlal_s16(a0, vget_low_s16(xl), vget_low_s16(wl));
            a1 = vmlal_high_s16(a1, xl, wl);
            a2 = vmlal_s16(a2, vget_low_s16(xh), vget_low_s16(wh));
            a3 = vmlal_high_s16(a3, xh, wh);
        }
    }
    vst1q_s8(o + c, vcombine_s8(ec_out8(p, a0, a1, c), ec_out8(p, a2, a3, c + 8)));
}

/* depth_mult 1: channels [c, c + 8) */
EC_INLINE void ec_dw_block8(const ec_conv_s8_params_t *p, const ec_dw_pixel_t *t, const int8_t *in,
                            const int8_t *w, const int32_t *bias, int8_t *o, int32_t c) {
    const int32_t C = p->out_c;
    const int8x8_t zp = vdup_n_s8((int8_t)p->in_zp);
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0;
    if (bias) {
        a0 = vld1q_s32(bias + c);
        a1 = vld1q_s32(bias + c + 4);
    }
    for (int32_t ky = t->ky_lo; ky < t->ky_hi; ky++) {
        const int8_t *xr = in + (size_t)(t->iy0 + ky * p->dil_h) * (size_t)p->in_w * (size_t)C + (size_t)c;
        const int8_t *wr = w + (size_t)ky * (size_t)p->k_w * (size_t)C + (size_t)c;
        for (int32_t kx = t->kx_lo; kx < t->kx_hi; kx++) {
            const int16x8_t xl = vsubl_s8(vld1_s8(xr + (size_t)(t->ix0 + kx * p->dil_w) * (size_t)C), zp);
            const int16x8_t wl = vmovl_s8(vld1_s8(wr + (size_t)kx * (size_t)C));
            a0 = vmlal_s16(a0, vget_low_s16(xl), vget_low_s16(wl));
            a1 = vmlal_high_s16(a1, xl, wl);
        }
    }
    vst1_s8(o + c, ec_out8(p, a0, a1, c));
}

/* depth_mult >= 8: output channels [oc, oc + 8), all reading input channel ic */
EC_INLINE void ec_dw_block_mult8(const ec_conv_s8_params_t *p, const ec_dw_pixel_t *t, const int8_t *in,
                                 const int8_t *w, const int32_t *bias, int8_t *o, int32_t ic, int32_t oc) {
    const int32_t C = p->out_c, in_c = p->in_c, in_zp = p->in_zp;
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0;
    if (bias) {
        a0 = vld1q_s32(bias + oc);
        a1 = vld1q_s32(bias + oc + 4);
    }
    for (int32_t ky = t->ky_lo; ky < t->ky_hi; ky++) {
        const int8_t *xr = in + (size_t)(t->iy0 + ky * p->dil_h) * (size_t)p->in_w * (size_t)in_c + (size_t)ic;
        const int8_t *wr = w + (size_t)ky * (size_t)p->k_w * (size_t)C + (size_t)oc;
        for (int32_t kx = t->kx_lo; kx < t->kx_hi; kx++) {
            const int16_t xv = (int16_t)((int32_t)xr[(size_t)(t->ix0 + kx * p->dil_w) * (size_t)in_c] - in_zp);
            const int16x8_t wl = vmovl_s8(vld1_s8(wr + (size_t)kx * (size_t)C));
            a0 = vmlal_n_s16(a0, vget_low_s16(wl), xv);
            a1 = vmlal_high_n_s16(a1, wl, xv);
        }
    }
    vst1_s8(o + oc, ec_out8(p, a0, a1, oc));
}

static void ec_depthwise_conv2d_s8_neon(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *w,
                                        const int32_t *bias, int8_t *out) {
    const int32_t C = p->out_c, dm = p->depth_mult;
    for (int32_t oy = 0; oy < p->out_h; oy++) {
        ec_dw_pixel_t t;
        t.iy0 = oy * p->stride_h - p->pad_h;
        ec_tap_range(t.iy0, p->dil_h, p->in_h, p->k_h, &t.ky_lo, &t.ky_hi);
        for (int32_t ox = 0; ox < p->out_w; ox++) {
            t.ix0 = ox * p->stride_w - p->pad_w;
            ec_tap_range(t.ix0, p->dil_w, p->in_w, p->k_w, &t.kx_lo, &t.kx_hi);
            int8_t *o = out + ((size_t)oy * (size_t)p->out_w + (size_t)ox) * (size_t)C;
            if (dm == 1) {
                int32_t c = 0;
                for (; c + 16 <= C; c += 16) ec_dw_block16(p, &t, in, w, bias, o, c);
                if (c + 8 <= C) {
                    ec_dw_block8(p, &t, in, w, bias, o, c);
                    c += 8;
                }
                if (c < C) {
                    if (C >= 8) ec_dw_block8(p, &t, in, w, bias, o, C - 8);
                    else ec_dw_scalar(p, &t, in, w, bias, o, c, C);
                }
            } else if (dm >= 8) {
                for (int32_t ic = 0; ic < p->in_c; ic++) {
                    const int32_t base = ic * dm;
                    int32_t j = 0;
                    for (; j + 8 <= dm; j += 8) ec_dw_block_mult8(p, &t, in, w, bias, o, ic, base + j);
                    if (j < dm) ec_dw_block_mult8(p, &t, in, w, bias, o, ic, base + dm - 8);
                }
            } else {
                ec_dw_scalar(p, &t, in, w, bias, o, 0, C);
            }
        }
    }
}

#endif /* EC_DW_NEON */

void ec_depthwise_conv2d_s8(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *w,
                            const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
#if EC_DW_NEON
    ec_depthwise_conv2d_s8_neon(p, in, w, bias, out);
#else
    for (int32_t oy = 0; oy < p->out_h; oy++) {
        ec_dw_pixel_t t;
        t.iy0 = oy * p->stride_h - p->pad_h;
        ec_tap_range(t.iy0, p->dil_h, p->in_h, p->k_h, &t.ky_lo, &t.ky_hi);
        for (int32_t ox = 0; ox < p->out_w; ox++) {
            t.ix0 = ox * p->stride_w - p->pad_w;
            ec_tap_range(t.ix0, p->dil_w, p->in_w, p->k_w, &t.kx_lo, &t.kx_hi);
            ec_dw_scalar(p, &t, in, w, bias, out + ((size_t)oy * (size_t)p->out_w + (size_t)ox) * (size_t)p->out_c,
                         0, p->out_c);
        }
    }
#endif
}
