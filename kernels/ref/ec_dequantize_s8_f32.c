#include "ec_shape.h"

void ec_dequantize_s8_f32(const ec_dequantize_s8_f32_params_t *p, const int8_t *in, float *out) {
    for (int32_t i = 0; i < p->size; i++) out[i] = p->scale * (float)((int32_t)in[i] - p->zero_point);
}
