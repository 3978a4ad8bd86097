#include "ec_conv.h"

/* Grouped CONV_2D float32 (TFLite Micro reference_ops::Conv with groups > 1): output channel oc of
 * group g = oc / (out_c / groups) reads the fc = in_c / groups input channels starting at g * fc. */

void ec_conv2d_grouped_f32(const ec_conv_grouped_f32_params_t *gp, const float *in, const float *w,
                           const float *bias, float *out, void *scratch) {
    (void)scratch;
    const ec_conv_f32_params_t *p = &gp->conv;
    const int32_t in_c = p->in_c, out_c = p->out_c;
    const int32_t fc = in_c / gp->groups, per_group = out_c / gp->groups;
    const size_t filter_size = (size_t)p->k_h * (size_t)p->k_w * (size_t)fc;
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
                const float *wf = w + (size_t)oc * filter_size;
                const int32_t c0 = (oc / per_group) * fc;
                float acc = 0.0f;
                for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
                    const int32_t iy = iy0 + ky * p->dil_h;
                    for (int32_t kx = kx_lo; kx < kx_hi; kx++) {
                        const int32_t ix = ix0 + kx * p->dil_w;
                        const float *x = in + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)in_c + c0;
                        const float *wk = wf + ((size_t)ky * (size_t)p->k_w + (size_t)kx) * (size_t)fc;
                        for (int32_t i = 0; i < fc; i++) acc += x[i] * wk[i];
                    }
                }
                if (bias) acc += bias[oc];
                o[oc] = acc < p->act_min ? p->act_min : (acc > p->act_max ? p->act_max : acc);
            }
        }
    }
}
