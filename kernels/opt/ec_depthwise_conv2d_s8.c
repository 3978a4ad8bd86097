#include "ec_conv.h"
#include "ec_opt.h"

/* DEPTHWISE_CONV_2D int8, portable optimized (auto-vectorized C99), bit-exact with
 * kernels/ref/ec_depthwise_conv2d_s8.c (TFLite Micro reference_integer_ops::DepthwiseConvPerChannel).
 *
 * Layouts (ec_opt.h): per depth multiplier m, the input channels in blocks of 16 (a last block of <= 8:
 * 8), w[m][block][k_h][k_w][width] zero padded; bias[m * in_c_pad + ic] = bias - in_zp * sum(w) of
 * output channel ic * depth_mult + m (never NULL). Per output pixel, multiplier and block:
 * acc[j] = bias[j] + sum over the taps of x[ic0 + j] * w[tap][j], the innermost loop over the block's
 * contiguous channels, raw int8 inputs (gcc: 16-bit products, PMULLW); taps in the padding use x = in_zp
 * (cancelling the fold), a partial last block reads its input through a zero-filled copy; pixels whose
 * window lies inside the image take a path without per-tap tests. Then per-channel requantization
 * (constants prepared once per block). Sums wrap modulo 2^32 (uint32_t), like the ref kernel's int32
 * accumulator. No scratch. */

/* One multiplier, one block of W (16 or 8, a constant after inlining) input channels starting at ic0, n of
 * them valid, over all output pixels; mult, shift and out point at output channel ic0 * depth_mult + m. */
EC_INLINE void ec_dw_block(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *wb,
                           const int32_t *bias, const int32_t *mult, const int32_t *shift, int32_t ic0,
                           int32_t n, int8_t *out, const int32_t W) {
    const int32_t zp = (int8_t)p->in_zp;
    ec_opt_requant_t q;
    ec_opt_requant_init(&q, mult, shift, p->depth_mult, n);
    int8_t xb[EC_OPT_BLOCK];
    for (int32_t j = 0; j < W; j++) xb[j] = 0;
    for (int32_t oy = 0; oy < p->out_h; oy++) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        int32_t ky_lo, ky_hi;
        ec_opt_tap_range(iy0, p->dil_h, p->in_h, p->k_h, &ky_lo, &ky_hi);
        for (int32_t ox = 0; ox < p->out_w; ox++) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            int32_t kx_lo, kx_hi;
            ec_opt_tap_range(ix0, p->dil_w, p->in_w, p->k_w, &kx_lo, &kx_hi);
            uint32_t acc[EC_OPT_BLOCK];
            for (int32_t j = 0; j < W; j++) acc[j] = (uint32_t)bias[j];
            const int8_t *wt = wb;
            if (n == W && ky_lo == 0 && ky_hi == p->k_h && kx_lo == 0 && kx_hi == p->k_w) {   /* all taps inside */
                const size_t col = (size_t)p->dil_w * (size_t)p->in_c;
                for (int32_t ky = 0; ky < p->k_h; ky++) {
                    const int8_t *x = in + ((size_t)(iy0 + ky * p->dil_h) * (size_t)p->in_w + (size_t)ix0)
                                      * (size_t)p->in_c + (size_t)ic0;
                    for (int32_t kx = 0; kx < p->k_w; kx++, wt += W, x += col) {
                        EC_OPT_CHANNEL_LOOP
                        for (int32_t j = 0; j < W; j++) acc[j] += (uint32_t)(x[j] * wt[j]);
                    }
                }
            } else {
                for (int32_t ky = 0; ky < p->k_h; ky++) {
                    const int32_t iy = iy0 + ky * p->dil_h;
                    for (int32_t kx = 0; kx < p->k_w; kx++, wt += W) {
                        if (ky >= ky_lo && ky < ky_hi && kx >= kx_lo && kx < kx_hi) {
                            const int32_t ix = ix0 + kx * p->dil_w;
                            const int8_t *x = in + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)p->in_c
                                              + (size_t)ic0;
                            if (n < W) {   /* partial block: do not read past the pixel's channels */
                                for (int32_t j = 0; j < n; j++) xb[j] = x[j];
                                x = xb;
                            }
                            EC_OPT_CHANNEL_LOOP
                            for (int32_t j = 0; j < W; j++) acc[j] += (uint32_t)(x[j] * wt[j]);
                        } else {   /* a tap in the padding: x = in_zp */
                            EC_OPT_CHANNEL_LOOP
                            for (int32_t j = 0; j < W; j++) acc[j] += (uint32_t)(zp * wt[j]);
                        }
                    }
                }
            }
            int8_t *o = out + ((size_t)oy * (size_t)p->out_w + (size_t)ox) * (size_t)p->out_c;
            ec_opt_requant_s8(&q, (const int32_t *)acc, n, p->out_zp, p->act_min, p->act_max, o);
        }
    }
}

void ec_depthwise_conv2d_s8(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *w,
                            const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    const int32_t in_c = p->in_c, dm = p->depth_mult;
    const int32_t full = in_c / EC_OPT_BLOCK * EC_OPT_BLOCK, in_c_pad = ec_opt_padded(in_c);
    const size_t taps = (size_t)p->k_h * (size_t)p->k_w;
    for (int32_t m = 0; m < dm; m++) {
        const int8_t *wm = w + (size_t)m * (size_t)in_c_pad * taps;
        const int32_t *bm = bias + (size_t)m * (size_t)in_c_pad;
        for (int32_t ic = 0; ic < in_c; ic += EC_OPT_BLOCK) {
            const size_t oc = (size_t)ic * (size_t)dm + (size_t)m;
            const int8_t *wb = wm + (size_t)ic * taps;
            if (ic < full)
                ec_dw_block(p, in, wb, bm + ic, p->mult + oc, p->shift + oc, ic, EC_OPT_BLOCK, out + oc, EC_OPT_BLOCK);
            else if (ec_opt_block_width(in_c, ic) == 8)
                ec_dw_block(p, in, wb, bm + ic, p->mult + oc, p->shift + oc, ic, in_c - ic, out + oc, 8);
            else
                ec_dw_block(p, in, wb, bm + ic, p->mult + oc, p->shift + oc, ic, in_c - ic, out + oc, EC_OPT_BLOCK);
        }
    }
}
