#include "ec_activation.h"

void ec_leaky_relu_f32(const ec_leaky_relu_f32_params_t *p, const float *in, float *out) {
    const float alpha = p->alpha;
    for (int32_t i = 0; i < p->size; i++) {
        float x = in[i];
        out[i] = x > 0.0f ? x : x * alpha;
    }
}
