#include "ec_activation.h"

void ec_relu_f32(const ec_act_f32_params_t *p, const float *in, float *out) {
    for (int32_t i = 0; i < p->size; i++) {
        float x = in[i];
        out[i] = x > 0.0f ? x : 0.0f;
    }
}
