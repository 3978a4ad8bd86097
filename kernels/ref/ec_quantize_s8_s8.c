#include "ec_shape.h"

/* TFLite's Requantize: clamp(MultiplyByQuantizedMultiplier(x - in_zp) + out_zp). */
void ec_quantize_s8_s8(const ec_quantize_s8_s8_params_t *p, const int8_t *in, int8_t *out) {
    for (int32_t i = 0; i < p->size; i++)
        out[i] = ec_sat_s8(ec_requantize((int32_t)in[i] - p->in_zp, p->mult, p->shift) + p->out_zp);
}
