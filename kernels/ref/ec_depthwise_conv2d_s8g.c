#include "ec_lowbit.h"

/* DEPTHWISE_CONV_2D, int8 activations, group-quantized weights (ec_lowbit.h): row oc (output channel
 * oc = ic * depth_mult + m) holds its k_h * k_w codes of q, w[ky][kx][oc] = q * mult[oc * groups + j /
 * group_size] with j = ky * k_w + kx. Each kernel row's in-image taps are summed per group piece and
 * multiplied by its group's multiplier; otherwise ec_depthwise_conv2d_s8 (TFLite Micro
 * DepthwiseConvPerChannel) bit for bit on the effective weights. No scratch. */
void ec_depthwise_conv2d_s8g(const ec_conv_s8g_params_t *p, const int8_t *in, const uint8_t *w,
                             const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    const ec_conv_s8_params_t *c = &p->conv;
    const int32_t in_c = c->in_c, out_c = c->out_c, dm = c->depth_mult, in_zp = c->in_zp;
    const uint32_t bits = (uint32_t)p->bits, gs = (uint32_t)p->group_size;
    const size_t row_bytes = ((size_t)c->k_h * (size_t)c->k_w * bits + 7u) / 8u;
    const size_t x_step = (size_t)c->dil_w * (size_t)in_c;
    for (int32_t oy = 0; oy < c->out_h; oy++) {
        const int32_t iy0 = oy * c->stride_h - c->pad_h;
        int32_t ky_lo, ky_hi;
        ec_tap_range(iy0, c->dil_h, c->in_h, c->k_h, &ky_lo, &ky_hi);
        for (int32_t ox = 0; ox < c->out_w; ox++) {
            const int32_t ix0 = ox * c->stride_w - c->pad_w;
            int32_t kx_lo, kx_hi;
            ec_tap_range(ix0, c->dil_w, c->in_w, c->k_w, &kx_lo, &kx_hi);
            int8_t *o = out + ((size_t)oy * (size_t)c->out_w + (size_t)ox) * (size_t)out_c;
            for (int32_t oc = 0; oc < out_c; oc++) {
                const int32_t ic = oc / dm;
                const uint8_t *row = w + (size_t)oc * row_bytes;
                const uint8_t *mult = p->mult + (size_t)oc * (size_t)p->groups;
                int32_t acc = 0;
                if (kx_lo < kx_hi) {
                    for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
                        const int32_t iy = iy0 + ky * c->dil_h, ix = ix0 + kx_lo * c->dil_w;
                        const int8_t *x = in + ((size_t)iy * (size_t)c->in_w + (size_t)ix) * (size_t)in_c + (size_t)ic;
                        const uint32_t j0 = (uint32_t)ky * (uint32_t)c->k_w + (uint32_t)kx_lo;
                        acc += ec_group_run(row, mult, bits, gs, j0, (uint32_t)(kx_hi - kx_lo), x, x_step, in_zp);
                    }
                }
                if (bias) acc += bias[oc];
                acc = ec_requantize(acc, c->mult[oc], c->shift[oc]) + c->out_zp;
                o[oc] = (int8_t)ec_clamp_i32(acc, c->act_min, c->act_max);
            }
        }
    }
}
