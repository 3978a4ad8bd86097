#include "ec_conv.h"
#include "ec_opt.h"

/* CONV_2D float32, portable optimized (auto-vectorized C99); the same sums in the same order as
 * kernels/ref/ec_conv2d_f32.c (TFLite Micro reference_ops::Conv), hence the same results.
 *
 * Layouts (ec_opt.h): w[block][k_h][k_w][in_c][width] over blocks of 16 output channels (a last block of
 * <= 8: 8 wide), zero padded; bias NULL or padded likewise. Per block and output pixel:
 * acc[j] = sum over the in-image taps and input channels of x * w[tap][i][j] (the innermost loop over
 * the block's contiguous output channels), + bias, activation clamp. No scratch. */

/* One block of W (16 or 8, a constant after inlining) output channels, n of them valid, over all output
 * pixels; wb, bias (NULL or the block's) and out point at the block's first channel. */
EC_INLINE void ec_conv_block_f32(const ec_conv_f32_params_t *p, const float *in, const float *wb, const float *bias,
                                 int32_t n, float *out, const int32_t W) {
    const int32_t in_c = p->in_c;
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
                    const float *x = in + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)in_c;
                    const float *wt = wb + ((size_t)ky * (size_t)p->k_w + (size_t)kx) * (size_t)in_c * (size_t)W;
                    for (int32_t i = 0; i < in_c; i++) {
                        const float xv = x[i];
                        const float *wr = wt + (size_t)i * (size_t)W;
                        EC_OPT_CHANNEL_LOOP
                        for (int32_t j = 0; j < W; j++) acc[j] += xv * wr[j];
                    }
                }
            }
            float *o = out + ((size_t)oy * (size_t)p->out_w + (size_t)ox) * (size_t)p->out_c;
            for (int32_t j = 0; j < n; j++) {
                const float y = bias ? acc[j] + bias[j] : acc[j];
                o[j] = y < p->act_min ? p->act_min : (y > p->act_max ? p->act_max : y);
            }
        }
    }
}

void ec_conv2d_f32(const ec_conv_f32_params_t *p, const float *in, const float *w, const float *bias,
                   float *out, void *scratch) {
    (void)scratch;
    const int32_t out_c = p->out_c, full = out_c / EC_OPT_BLOCK * EC_OPT_BLOCK;
    const size_t taps = (size_t)p->k_h * (size_t)p->k_w * (size_t)p->in_c;
    for (int32_t oc = 0; oc < out_c; oc += EC_OPT_BLOCK) {
        const float *wb = w + (size_t)oc * taps, *bb = bias ? bias + oc : NULL;
        if (oc < full)
            ec_conv_block_f32(p, in, wb, bb, EC_OPT_BLOCK, out + oc, EC_OPT_BLOCK);
        else if (ec_opt_block_width(out_c, oc) == 8)
            ec_conv_block_f32(p, in, wb, bb, out_c - oc, out + oc, 8);
        else
            ec_conv_block_f32(p, in, wb, bb, out_c - oc, out + oc, EC_OPT_BLOCK);
    }
}
