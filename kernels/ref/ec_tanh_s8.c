#include "ec_activation.h"

/* TANH int8: a 256-entry table the compiler evaluated from the reference (TFLite Micro's integer
 * recipe) on every input value. In-place safe. */
void ec_tanh_s8(const ec_lut_s8_params_t *p, const int8_t *in, int8_t *out) {
    ec_lut_apply_s8(p->lut, in, out, p->size);
}
