#include "ec_conv.h"

/* Grouped CONV_2D int8 (TFLite Micro reference_integer_ops::ConvPerChannel with groups > 1): as
 * ec_conv2d_s8, but output channel oc of group g = oc / (out_c / groups) reads only the filter
 * depth fc = in_c / groups input channels starting at g * fc. */

void ec_conv2d_grouped_s8(const ec_conv_grouped_s8_params_t *gp, const int8_t *in, const int8_t *w,
                          const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    const ec_conv_s8_params_t *p = &gp->conv;
    const int32_t in_c = p->in_c, out_c = p->out_c, in_zp = p->in_zp;
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
            int8_t *o = out + ((size_t)oy * (size_t)p->out_w + (size_t)ox) * (size_t)out_c;
            for (int32_t oc = 0; oc < out_c; oc++) {
                const int8_t *wf = w + (size_t)oc * filter_size;
                const int32_t c0 = (oc / per_group) * fc;
                int32_t acc = 0;
                for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
                    const int32_t iy = iy0 + ky * p->dil_h;
                    for (int32_t kx = kx_lo; kx < kx_hi; kx++) {
                        const int32_t ix = ix0 + kx * p->dil_w;
                        const int8_t *x = in + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)in_c + c0;
                        const int8_t *wk = wf + ((size_t)ky * (size_t)p->k_w + (size_t)kx) * (size_t)fc;
                        for (int32_t i = 0; i < fc; i++) acc += (int32_t)wk[i] * ((int32_t)x[i] - in_zp);
                    }
                }
                if (bias) acc += bias[oc];
                acc = ec_requantize(acc, p->mult[oc], p->shift[oc]) + p->out_zp;
                o[oc] = (int8_t)ec_clamp_i32(acc, p->act_min, p->act_max);
            }
        }
    }
}
