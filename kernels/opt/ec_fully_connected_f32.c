#include "ec_conv.h"
#include "ec_opt.h"

/* FULLY_CONNECTED float32, portable optimized (auto-vectorized C99); the same sums in the same order as
 * kernels/ref/ec_fully_connected_f32.c, hence the same results.
 *
 * Layouts (ec_opt.h): w[block][in_features][width] over blocks of 16 output features (a last block of
 * <= 8: 8 wide), zero padded; bias NULL or padded likewise. Per block and input row:
 * acc[j] = sum_i x[i] * w[i][j] (the innermost loop over the block's contiguous features), + bias,
 * activation clamp. No scratch. */

/* One block of W (16 or 8, a constant after inlining) output features, n of them valid, over all rows. */
EC_INLINE void ec_fc_block_f32(const ec_fc_f32_params_t *p, const float *in, const float *wb, const float *bias,
                               int32_t n, float *out, const int32_t W) {
    for (int32_t b = 0; b < p->batches; b++) {
        const float *x = in + (size_t)b * (size_t)p->in_features;
        float acc[EC_OPT_BLOCK];
        for (int32_t j = 0; j < W; j++) acc[j] = 0.0f;
        for (int32_t i = 0; i < p->in_features; i++) {
            const float xv = x[i];
            const float *wr = wb + (size_t)i * (size_t)W;
            EC_OPT_CHANNEL_LOOP
            for (int32_t j = 0; j < W; j++) acc[j] += xv * wr[j];
        }
        float *o = out + (size_t)b * (size_t)p->out_features;
        for (int32_t j = 0; j < n; j++) {
            const float y = bias ? acc[j] + bias[j] : acc[j];
            o[j] = y < p->act_min ? p->act_min : (y > p->act_max ? p->act_max : y);
        }
    }
}

void ec_fully_connected_f32(const ec_fc_f32_params_t *p, const float *in, const float *w,
                            const float *bias, float *out, void *scratch) {
    (void)scratch;
    const int32_t out_f = p->out_features, full = out_f / EC_OPT_BLOCK * EC_OPT_BLOCK;
    const size_t in_f = (size_t)p->in_features;
    for (int32_t oc = 0; oc < out_f; oc += EC_OPT_BLOCK) {
        const float *wb = w + (size_t)oc * in_f, *bb = bias ? bias + oc : NULL;
        if (oc < full)
            ec_fc_block_f32(p, in, wb, bb, EC_OPT_BLOCK, out + oc, EC_OPT_BLOCK);
        else if (ec_opt_block_width(out_f, oc) == 8)
            ec_fc_block_f32(p, in, wb, bb, out_f - oc, out + oc, 8);
        else
            ec_fc_block_f32(p, in, wb, bb, out_f - oc, out + oc, EC_OPT_BLOCK);
    }
}
