/* edgec kernels: the portable loops of CONV_2D and DEPTHWISE_CONV_2D with packed low-bit weights
 * (ec_lowbit.h), shared by kernels/ref/ec_conv2d_s8wN.c / ec_depthwise_conv2d_s8wN.c and the ISA
 * variants' fallback paths, and the table decode of one weight. Included only by those files. */
#ifndef EC_LOWBIT_CONV_H
#define EC_LOWBIT_CONV_H

#include "ec_lowbit.h"

/* w[oc][ky][kx][i] = lut[oc * lut_stride + code]; otherwise TFLite Micro's ConvPerChannel bit for bit */
EC_NOINLINE void ec_conv_wN_generic(const ec_conv_s8wN_params_t *p, const int8_t *in,
                                           const uint8_t *w, const int32_t *bias, int8_t *out) {
    const ec_conv_s8_params_t *c = &p->conv;
    const int32_t in_c = c->in_c, out_c = c->out_c, in_zp = c->in_zp;
    const uint32_t bits = (uint32_t)p->bits;
    const size_t row_bytes = ((size_t)c->k_h * (size_t)c->k_w * (size_t)in_c * bits + 7u) / 8u;
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
                const uint8_t *row = w + (size_t)oc * row_bytes;
                const int8_t *lut = p->lut + (size_t)oc * (size_t)p->lut_stride;
                int32_t acc = 0;
                for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
                    const int32_t iy = iy0 + ky * c->dil_h;
                    for (int32_t kx = kx_lo; kx < kx_hi; kx++) {
                        const int32_t ix = ix0 + kx * c->dil_w;
                        const int8_t *x = in + ((size_t)iy * (size_t)c->in_w + (size_t)ix) * (size_t)in_c;
                        const uint32_t j0 = ((uint32_t)ky * (uint32_t)c->k_w + (uint32_t)kx) * (uint32_t)in_c;
                        for (int32_t i = 0; i < in_c; i++)
                            acc += (int32_t)lut[ec_lowbit_code(row, j0 + (uint32_t)i, bits)] * ((int32_t)x[i] - in_zp);
                    }
                }
                if (bias) acc += bias[oc];
                acc = ec_requantize(acc, c->mult[oc], c->shift[oc]) + c->out_zp;
                o[oc] = (int8_t)ec_clamp_i32(acc, c->act_min, c->act_max);
            }
        }
    }
}

/* The int8 weight of tap j of depthwise output channel oc (codes contiguous, `taps` per channel, no
 * row padding): lut[oc * lut_stride + code] */
EC_INLINE int32_t ec_lowbit_weight(const ec_conv_s8wN_params_t *p, const uint8_t *w, uint32_t taps, int32_t oc,
                                   uint32_t j) {
    const uint32_t code = ec_lowbit_code(w, (uint32_t)oc * taps + j, (uint32_t)p->bits);
    return (int32_t)p->lut[(size_t)oc * (size_t)p->lut_stride + code];
}

/* DEPTHWISE_CONV_2D: output channel oc (= ic * depth_mult + m) has k_h * k_w codes, stored one channel
 * after the other with no padding between channels (rows of 9 codes would waste up to 7 bits each),
 * w[ky][kx][oc] = lut[oc * lut_stride + code(oc * k_h * k_w + ky * k_w + kx)]; otherwise TFLite Micro's
 * DepthwiseConvPerChannel bit for bit */
EC_NOINLINE void ec_depthwise_wN_generic(const ec_conv_s8wN_params_t *p, const int8_t *in, const uint8_t *w,
                                         const int32_t *bias, int8_t *out) {
    const ec_conv_s8_params_t *c = &p->conv;
    const int32_t in_c = c->in_c, out_c = c->out_c, dm = c->depth_mult, in_zp = c->in_zp;
    const uint32_t bits = (uint32_t)p->bits;
    const uint32_t taps = (uint32_t)c->k_h * (uint32_t)c->k_w;
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
                const uint32_t j0 = (uint32_t)oc * taps;
                const int8_t *lut = p->lut + (size_t)oc * (size_t)p->lut_stride;
                int32_t acc = 0;
                for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
                    const int32_t iy = iy0 + ky * c->dil_h;
                    const int8_t *xrow = in + (size_t)iy * (size_t)c->in_w * (size_t)in_c + (size_t)ic;
                    for (int32_t kx = kx_lo; kx < kx_hi; kx++) {
                        const int32_t ix = ix0 + kx * c->dil_w;
                        const uint32_t j = (uint32_t)ky * (uint32_t)c->k_w + (uint32_t)kx;
                        acc += (int32_t)lut[ec_lowbit_code(w, j0 + j, bits)] * ((int32_t)xrow[(size_t)ix * (size_t)in_c] - in_zp);
                    }
                }
                if (bias) acc += bias[oc];
                acc = ec_requantize(acc, c->mult[oc], c->shift[oc]) + c->out_zp;
                o[oc] = (int8_t)ec_clamp_i32(acc, c->act_min, c->act_max);
            }
        }
    }
}

#endif /* EC_LOWBIT_CONV_H */
