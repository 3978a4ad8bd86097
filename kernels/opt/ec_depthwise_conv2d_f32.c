#include "ec_conv.h"
#include "ec_opt.h"

/* DEPTHWISE_CONV_2D float32, portable optimized (auto-vectorized C99); the same sums in the same order as
 * kernels/ref/ec_depthwise_conv2d_f32.c (TFLite Micro reference_ops::DepthwiseConv), hence the same
 * results.
 *
 * Layouts (ec_opt.h): per depth multiplier m, the input channels in blocks of 16 (a last block of <= 8:
 * 8 wide), w[m][block][k_h][k_w][width] zero padded; bias NULL or bias[m * in_c_pad + ic] for output
 * channel ic * depth_mult + m (in_c_pad = ec_opt_padded(in_c)). Per multiplier, block and output pixel:
 * acc[j] = sum over the in-image taps of x[ic0 + j] * w[tap][j] (the innermost loop over the block's
 * contiguous channels; a partial last block reads through a zero-filled copy), + bias, activation
 * clamp. No scratch. */

/* One multiplier, one block of W (16 or 8, a constant after inlining) input channels starting at ic0, n
 * of them valid, over all output pixels; out points at output channel ic0 * depth_mult + m. */
EC_INLINE void ec_dw_block_f32(const ec_conv_f32_params_t *p, const float *in, const float *wb, const float *bias,
                               int32_t ic0, int32_t n, float *out, const int32_t W) {
    const size_t dm = (size_t)p->depth_mult;
    float xb[EC_OPT_BLOCK];
    for (int32_t j = 0; j < W; j++) xb[j] = 0.0f;
    for (int32_t oy = 0; oy < p->out_h; oy++) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        int32_t ky_lo, ky_hi;
        ec_opt_tap_range(iy0, p->dil_h, p->in_h, p->k_h, &ky_lo, &ky_hi);
        for (int32_t ox = 0; ox < p->out_w; ox++) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            int32_t kx_lo, kx_hi;
            ec_opt_tap_range(ix0, p->dil_w, p->in_w, p->k_w, &kx_lo, &kx_hi);
            float acc[EC_OPT_BLOCK];
            for (int32_t j = 0; j < W; j++) acc[j] = 0.0f;
            for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
                const int32_t iy = iy0 + ky * p->dil_h;
                for (int32_t kx = kx_lo; kx < kx_hi; kx++) {
                    const int32_t ix = ix0 + kx * p->dil_w;
                    const float *x = in + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)p->in_c + (size_t)ic0;
                    const float *wt = wb + ((size_t)ky * (size_t)p->k_w + (size_t)kx) * (size_t)W;
                    if (n < W) {   /* partial block: do not read past the pixel's channels */
                        for (int32_t j = 0; j < n; j++) xb[j] = x[j];
                        x = xb;
                    }
                    EC_OPT_CHANNEL_LOOP
                    for (int32_t j = 0; j < W; j++) acc[j] += x[j] * wt[j];
                }
            }
            float *o = out + ((size_t)oy * (size_t)p->out_w + (size_t)ox) * (size_t)p->out_c;
            for (int32_t j = 0; j < n; j++) {
                const float y = bias ? acc[j] + bias[j] : acc[j];
                o[(size_t)j * dm] = y < p->act_min ? p->act_min : (y > p->act_max ? p->act_max : y);
            }
        }
    }
}

void ec_depthwise_conv2d_f32(const ec_conv_f32_params_t *p, const float *in, const float *w,
                             const float *bias, float *out, void *scratch) {
    (void)scratch;
    const int32_t in_c = p->in_c, dm = p->depth_mult;
    const int32_t full = in_c / EC_OPT_BLOCK * EC_OPT_BLOCK, in_c_pad = ec_opt_padded(in_c);
    const size_t taps = (size_t)p->k_h * (size_t)p->k_w;
    for (int32_t m = 0; m < dm; m++) {
        const float *wm = w + (size_t)m * (size_t)in_c_pad * taps;
        const float *bm = bias ? bias + (size_t)m * (size_t)in_c_pad : NULL;
        for (int32_t ic = 0; ic < in_c; ic += EC_OPT_BLOCK) {
            const size_t oc = (size_t)ic * (size_t)dm + (size_t)m;
            const float *bb = bm ? bm + ic : NULL;
            if (ic < full)
                ec_dw_block_f32(p, in, wm + (size_t)ic * taps, bb, ic, EC_OPT_BLOCK, out + oc, EC_OPT_BLOCK);
            else if (ec_opt_block_width(in_c, ic) == 8)
                ec_dw_block_f32(p, in, wm + (size_t)ic * taps, bb, ic, in_c - ic, out + oc, 8);
            else
                ec_dw_block_f32(p, in, wm + (size_t)ic * taps, bb, ic, in_c - ic, out + oc, EC_OPT_BLOCK);
        }
    }
}
