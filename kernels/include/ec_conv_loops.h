/* edgec kernels: the portable loops of CONV_2D and DEPTHWISE_CONV_2D (TFLite Micro's reference
 * kernels, bit for bit), shared by kernels/ref/ and the ISA variants' fallbacks (no DSP extension,
 * no scratch, shapes the fast paths do not cover). Included only by those kernel files. */
#ifndef EC_CONV_LOOPS_H
#define EC_CONV_LOOPS_H

#include "ec_conv.h"

EC_NOINLINE void ec_conv2d_s8_loop(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *w, const int32_t *bias, int8_t *out) {
    const int32_t in_c = p->in_c, out_c = p->out_c, in_zp = p->in_zp;
    const size_t filter_size = (size_t)p->k_h * (size_t)p->k_w * (size_t)in_c;
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
                int32_t acc = 0;
                for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
                    const int32_t iy = iy0 + ky * p->dil_h;
                    for (int32_t kx = kx_lo; kx < kx_hi; kx++) {
                        const int32_t ix = ix0 + kx * p->dil_w;
                        const int8_t *x = in + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)in_c;
                        const int8_t *wk = wf + ((size_t)ky * (size_t)p->k_w + (size_t)kx) * (size_t)in_c;
                        for (int32_t i = 0; i < in_c; i++) acc += (int32_t)wk[i] * ((int32_t)x[i] - in_zp);
                    }
                }
                if (bias) acc += bias[oc];
                acc = ec_requantize(acc, p->mult[oc], p->shift[oc]) + p->out_zp;
                o[oc] = (int8_t)ec_clamp_i32(acc, p->act_min, p->act_max);
            }
        }
    }
}

EC_NOINLINE void ec_depthwise_conv2d_s8_loop(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *w, const int32_t *bias, int8_t *out) {
    const int32_t in_c = p->in_c, out_c = p->out_c, dm = p->depth_mult, in_zp = p->in_zp;
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
                const int32_t ic = oc / dm;
                int32_t acc = 0;
                for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
                    const int32_t iy = iy0 + ky * p->dil_h;
                    const int8_t *xrow = in + (size_t)iy * (size_t)p->in_w * (size_t)in_c + (size_t)ic;
                    const int8_t *wrow = w + (size_t)ky * (size_t)p->k_w * (size_t)out_c + (size_t)oc;
                    for (int32_t kx = kx_lo; kx < kx_hi; kx++) {
                        const int32_t ix = ix0 + kx * p->dil_w;
                        acc += (int32_t)wrow[(size_t)kx * (size_t)out_c] * ((int32_t)xrow[(size_t)ix * (size_t)in_c] - in_zp);
                    }
                }
                if (bias) acc += bias[oc];
                acc = ec_requantize(acc, p->mult[oc], p->shift[oc]) + p->out_zp;
                o[oc] = (int8_t)ec_clamp_i32(acc, p->act_min, p->act_max);
            }
        }
    }
}

EC_NOINLINE void ec_conv2d_f32_loop(const ec_conv_f32_params_t *p, const float *in, const float *w, const float *bias, float *out) {
    const int32_t in_c = p->in_c, out_c = p->out_c;
    const size_t filter_size = (size_t)p->k_h * (size_t)p->k_w * (size_t)in_c;
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
                float acc = 0.0f;
                for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
                    const int32_t iy = iy0 + ky * p->dil_h;
                    for (int32_t kx = kx_lo; kx < kx_hi; kx++) {
                        const int32_t ix = ix0 + kx * p->dil_w;
                        const float *x = in + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)in_c;
                        const float *wk = wf + ((size_t)ky * (size_t)p->k_w + (size_t)kx) * (size_t)in_c;
                        for (int32_t i = 0; i < in_c; i++) acc += x[i] * wk[i];
                    }
                }
                if (bias) acc += bias[oc];
                o[oc] = acc < p->act_min ? p->act_min : (acc > p->act_max ? p->act_max : acc);
            }
        }
    }
}

#endif /* EC_CONV_LOOPS_H */
