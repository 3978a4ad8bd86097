#include "ec_activation.h"

/* PRELU int8 (TFLite Micro's BroadcastPrelu4DSlow): v = x - in_zp;
 * out = clamp(out_zp + (v >= 0 ? v * M_pos : v * (alpha - alpha_zp) * M_neg)).
 * Walks the collapsed output shape: an odometer over the outer axes, a strided inner loop.
 * In-place safe when the output has the input's shape (each x is read before its out is written). */
void ec_prelu_s8(const ec_prelu_s8_params_t *p, const int8_t *in, const int8_t *alpha, int8_t *out) {
    const int32_t rank = p->rank;
    const int32_t inner = p->dims[rank - 1];
    const int32_t xs = p->in_stride[rank - 1], as = p->alpha_stride[rank - 1];
    const int32_t in_zp = p->in_zp, alpha_zp = p->alpha_zp, out_zp = p->out_zp;
    const int32_t pos_mult = p->pos_mult, pos_shift = p->pos_shift;
    const int32_t neg_mult = p->neg_mult, neg_shift = p->neg_shift;
    int32_t outer = 1;
    for (int32_t d = 0; d < rank - 1; d++) outer *= p->dims[d];
    int32_t idx[EC_PRELU_MAX_DIMS] = {0};
    size_t xo = 0, ao = 0;
    for (int32_t o = 0; o < outer; o++) {
        const int8_t *x = in + xo;
        const int8_t *a = alpha + ao;
        for (int32_t i = 0; i < inner; i++) {
            const int32_t v = (int32_t)x[(size_t)i * (size_t)xs] - in_zp;
            int32_t r;
            if (v >= 0) r = ec_requantize(v, pos_mult, pos_shift);
            else r = ec_requantize(v * ((int32_t)a[(size_t)i * (size_t)as] - alpha_zp), neg_mult, neg_shift);
            out[i] = ec_sat_s8(r + out_zp);
        }
        out += inner;
        for (int32_t d = rank - 2; d >= 0; d--) {   /* next outer index */
            xo += (size_t)p->in_stride[d];
            ao += (size_t)p->alpha_stride[d];
            if (++idx[d] < p->dims[d]) break;
            xo -= (size_t)p->in_stride[d] * (size_t)p->dims[d];
            ao -= (size_t)p->alpha_stride[d] * (size_t)p->dims[d];
            idx[d] = 0;
        }
    }
}
