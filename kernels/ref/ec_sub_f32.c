#include "ec_elementwise.h"

static inline float ec_sub_f32_one(const ec_binary_f32_params_t *p, float x, float w) {
    const float v = x - w;
    return v < p->act_min ? p->act_min : (v > p->act_max ? p->act_max : v);
}

void ec_sub_f32(const ec_binary_f32_params_t *p, const float *in1, const float *in2, float *out) {
    EC_BINARY_F32_LOOP(ec_sub_f32_one);
}
