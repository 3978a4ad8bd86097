#include "ec_activation.h"

/* RELU int8: a clamp when the op does not rescale (act_min/act_max in raw integers), else a 256-entry
 * table the compiler evaluated from the reference on every input value. In-place safe. */
void ec_relu_s8(const ec_relu_s8_params_t *p, const int8_t *in, int8_t *out) {
    if (p->lut) {
        ec_lut_apply_s8(p->lut, in, out, p->size);
        return;
    }
    const int8_t lo = (int8_t)p->act_min, hi = (int8_t)p->act_max;
    const int32_t size = p->size;
    for (int32_t i = 0; i < size; i++) {
        int8_t x = in[i];
        out[i] = x < lo ? lo : (x > hi ? hi : x);
    }
}
