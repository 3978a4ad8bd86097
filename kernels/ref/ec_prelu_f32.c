#include "ec_activation.h"

/* PRELU float: out = x >= 0 ? x : x * alpha over the collapsed, broadcast output shape (see
 * ec_prelu_s8). In-place safe when the output has the input's shape. */
void ec_prelu_f32(const ec_prelu_f32_params_t *p, const float *in, const float *alpha, float *out) {
    const int32_t rank = p->rank;
    const int32_t inner = p->dims[rank - 1];
    const int32_t xs = p->in_stride[rank - 1], as = p->alpha_stride[rank - 1];
    int32_t outer = 1;
    for (int32_t d = 0; d < rank - 1; d++) outer *= p->dims[d];
    int32_t idx[EC_PRELU_MAX_DIMS] = {0};
    size_t xo = 0, ao = 0;
    for (int32_t o = 0; o < outer; o++) {
        const float *x = in + xo;
        const float *a = alpha + ao;
        for (int32_t i = 0; i < inner; i++) {
            const float v = x[(size_t)i * (size_t)xs];
            out[i] = v >= 0.0f ? v : v * a[(size_t)i * (size_t)as];
        }
        out += inner;
        for (int32_t d = rank - 2; d >= 0; d--) {
            xo += (size_t)p->in_stride[d];
            ao += (size_t)p->alpha_stride[d];
            if (++idx[d] < p->dims[d]) break;
            xo -= (size_t)p->in_stride[d] * (size_t)p->dims[d];
            ao -= (size_t)p->alpha_stride[d] * (size_t)p->dims[d];
            idx[d] = 0;
        }
    }
}
