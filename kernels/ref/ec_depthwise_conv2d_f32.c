#include "ec_conv.h"

/* DEPTHWISE_CONV_2D float32 (TFLite Micro reference_ops::DepthwiseConv): output channel
 * oc = ic * depth_mult + m reads input channel ic with filter column oc; + bias, activation clamp. */

void ec_depthwise_conv2d_f32(const ec_conv_f32_params_t *p, const float *in, const float *w,
                             const float *bias, float *out, void *scratch) {
    (void)scratch;
    const int32_t in_c = p->in_c, out_c = p->out_c, dm = p->depth_mult;
    for (int32_t oy = 0; oy < p->out_h; oy++) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        int32_t ky_lo, ky_hi;
        ec_tap_range(iy0, p->dil_h, p->in_h, p->k_h, &ky_lo, &ky_hi);
        for (int32_t ox = 0; ox < p->out_w; ox++) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            int32_t kx_lo, kx_hi;
            ec_tap_range(ix0, p->dil_w, p->in_w, p->k_w, &kx_lo, &kx_hi);
            float *o = out + ((size_t)oy * (size_t)p->out_w + (size_t)ox) * (size_t)out_c;
            for (int32_t oc = 0; oc < out_c; oc++) {
                const int32_t ic = oc / dm;
                float acc = 0.0f;
                for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
                    const int32_t iy = iy0 + ky * p->dil_h;
                    const float *xrow = in + (size_t)iy * (size_t)p->in_w * (size_t)in_c + (size_t)ic;
                    const float *wrow = w + (size_t)ky * (size_t)p->k_w * (size_t)out_c + (size_t)oc;
                    for (int32_t kx = kx_lo; kx < kx_hi; kx++) {
                        const int32_t ix = ix0 + kx * p->dil_w;
                        acc += xrow[(size_t)ix * (size_t)in_c] * wrow[(size_t)kx * (size_t)out_c];
                    }
                }
                if (bias) acc += bias[oc];
                o[oc] = acc < p->act_min ? p->act_min : (acc > p->act_max ? p->act_max : acc);
            }
        }
    }
}
