#include "ec_conv.h"

/* TRANSPOSE_CONV float32 (TFLite Micro reference_ops::TransposeConv), as a gather: input pixel
 * (iy, ix) adds in * w[oc][ky][kx][:] to output (iy * stride_h - pad_h + ky, ...); taps landing
 * outside the output are dropped. Then + bias and the activation clamp. No scratch. */

/* The taps k = *first, *first + stride, ... <= *last with (t - k) / stride an input index in [0, size). */
static void ec_tap_set(int32_t t, int32_t stride, int32_t size, int32_t k, int32_t *first, int32_t *last) {
    int32_t lo = t - (size - 1) * stride;
    if (lo < 0) lo = 0;
    *last = t < k - 1 ? t : k - 1;
    *first = lo > t ? *last + 1 : lo + (t - lo) % stride;
}

void ec_transpose_conv_f32(const ec_conv_f32_params_t *p, const float *in, const float *w, const float *bias,
                           float *out, void *scratch) {
    (void)scratch;
    const int32_t in_c = p->in_c, out_c = p->out_c, sh = p->stride_h, sw = p->stride_w;
    const size_t filter_size = (size_t)p->k_h * (size_t)p->k_w * (size_t)in_c;
    for (int32_t oy = 0; oy < p->out_h; oy++) {
        const int32_t ty = oy + p->pad_h;
        int32_t ky0, ky1;
        ec_tap_set(ty, sh, p->in_h, p->k_h, &ky0, &ky1);
        for (int32_t ox = 0; ox < p->out_w; ox++) {
            const int32_t tx = ox + p->pad_w;
            int32_t kx0, kx1;
            ec_tap_set(tx, sw, p->in_w, p->k_w, &kx0, &kx1);
            float *o = out + ((size_t)oy * (size_t)p->out_w + (size_t)ox) * (size_t)out_c;
            for (int32_t oc = 0; oc < out_c; oc++) {
                const float *wf = w + (size_t)oc * filter_size;
                float acc = 0.0f;
                for (int32_t ky = ky0; ky <= ky1; ky += sh) {
                    const int32_t iy = (ty - ky) / sh;
                    for (int32_t kx = kx0; kx <= kx1; kx += sw) {
                        const int32_t ix = (tx - kx) / sw;
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
