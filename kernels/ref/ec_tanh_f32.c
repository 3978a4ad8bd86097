#include "ec_activation.h"

void ec_tanh_f32(const ec_act_f32_params_t *p, const float *in, float *out) {
    for (int32_t i = 0; i < p->size; i++) out[i] = tanhf(in[i]);
}
