#include "ec_matmul.h"

void ec_gather_x(const ec_gather_params_t *p, const void *params, const int32_t *indices, void *out) {
    const uint8_t *src = (const uint8_t *)params;
    uint8_t *dst = (uint8_t *)out;
    const size_t row = (size_t)p->inner_bytes;
    const size_t es = (size_t)p->elem_size;
    for (int32_t o = 0; o < p->outer; o++) {
        const uint8_t *table = src + (size_t)o * (size_t)p->axis_size * row;
        for (int32_t i = 0; i < p->num_indices; i++, dst += row) {
            const int32_t idx = indices[i];
            if (idx >= 0 && idx < p->axis_size) {
                memcpy(dst, table + (size_t)idx * row, row);
            } else {
                for (size_t b = 0; b < row; b += es) memcpy(dst + b, p->zero, es);
            }
        }
    }
}
