#include "ec_shape.h"

/* Row by row: for each outer index, each input's next row in turn (TFLite's Concatenation). */
void ec_concatenation_x(const ec_concatenation_params_t *p, const void *const *inputs, void *out) {
    uint8_t *dst = (uint8_t *)out;
    for (int32_t o = 0; o < p->outer; o++) {
        for (int32_t k = 0; k < p->num_inputs; k++) {
            size_t n = (size_t)p->row_bytes[k];
            memcpy(dst, (const uint8_t *)inputs[k] + (size_t)o * n, n);
            dst += n;
        }
    }
}
