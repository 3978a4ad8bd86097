#include "ec_shape.h"

/* n elements of the pad value; `uniform` when all its bytes are equal (0.0f, any int8). */
static uint8_t *ec_pad_fill(uint8_t *dst, int32_t n, const uint8_t *v, size_t es, int uniform) {
    if (n <= 0) return dst;
    if (uniform) {
        memset(dst, v[0], (size_t)n * es);
        return dst + (size_t)n * es;
    }
    for (int32_t i = 0; i < n; i++, dst += es) memcpy(dst, v, es);
    return dst;
}

/* The output in order: rows (innermost dim) outside the input region are all padding; the others
 * are pad_before[4] pad values, an input row, pad_after[4] pad values. */
void ec_pad_x(const ec_pad_params_t *p, const void *in, void *out) {
    const size_t es = (size_t)p->elem_size;
    const uint8_t *v = (const uint8_t *)p->pad_value;
    const uint8_t *src = (const uint8_t *)in;
    uint8_t *dst = (uint8_t *)out;
    int uniform = 1;
    for (size_t b = 1; b < es; b++) uniform &= v[b] == v[0];
    int32_t od[EC_SHAPE_MAX_DIMS];
    for (int i = 0; i < EC_SHAPE_MAX_DIMS; i++) od[i] = p->pad_before[i] + p->in_dims[i] + p->pad_after[i];
    const size_t row = (size_t)p->in_dims[4] * es;
    for (int32_t i0 = 0; i0 < od[0]; i0++) {
        int in0 = i0 >= p->pad_before[0] && i0 < p->pad_before[0] + p->in_dims[0];
        for (int32_t i1 = 0; i1 < od[1]; i1++) {
            int in1 = in0 && i1 >= p->pad_before[1] && i1 < p->pad_before[1] + p->in_dims[1];
            for (int32_t i2 = 0; i2 < od[2]; i2++) {
                int in2 = in1 && i2 >= p->pad_before[2] && i2 < p->pad_before[2] + p->in_dims[2];
                for (int32_t i3 = 0; i3 < od[3]; i3++) {
                    int in3 = in2 && i3 >= p->pad_before[3] && i3 < p->pad_before[3] + p->in_dims[3];
                    if (!in3) {
                        dst = ec_pad_fill(dst, od[4], v, es, uniform);
                        continue;
                    }
                    dst = ec_pad_fill(dst, p->pad_before[4], v, es, uniform);
                    memcpy(dst, src, row);
                    dst += row;
                    src += row;
                    dst = ec_pad_fill(dst, p->pad_after[4], v, es, uniform);
                }
            }
        }
    }
}
