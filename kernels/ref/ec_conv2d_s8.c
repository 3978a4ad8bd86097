#include "ec_conv.h"

/* CONV_2D int8 (TFLite Micro reference_integer_ops::ConvPerChannel):
 * out[oy][ox][oc] = clamp(out_zp + requant_oc(bias[oc] + sum w[oc][ky][kx][i] * (in[iy][ix][i] - in_zp)))
 * with iy = oy * stride_h - pad_h + ky * dil_h (likewise x); taps outside the image are skipped. */

/* The taps k in [*lo, *hi) whose position start + k * dil lies in [0, size). */
static void ec_tap_range(int32_t start, int32_t dil, int32_t size, int32_t k, int32_t *lo, int32_t *hi) {
    int32_t a = start < 0 ? (-start + dil - 1) / dil : 0;
    int32_t b = size - start > 0 ? (size - start + dil - 1) / dil : 0;
    *lo = a;
    *hi = b < k ? b : k;
}

void ec_conv2d_s8(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                  int8_t *out, void *scratch) {
    (void)scratch;
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
