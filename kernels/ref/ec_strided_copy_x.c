#include "ec_shape.h"

/* One output row: n elements `step` bytes apart in the input. */
static void ec_gather_row(uint8_t *dst, const uint8_t *src, int32_t n, ptrdiff_t step, size_t es) {
    if (step == (ptrdiff_t)es) {
        memcpy(dst, src, (size_t)n * es);
        return;
    }
    switch (es) {   /* constant-size memcpy compiles to one load and store */
    case 1:
        for (int32_t i = 0; i < n; i++, src += step) dst[i] = *src;
        break;
    case 2:
        for (int32_t i = 0; i < n; i++, src += step, dst += 2) memcpy(dst, src, 2);
        break;
    case 4:
        for (int32_t i = 0; i < n; i++, src += step, dst += 4) memcpy(dst, src, 4);
        break;
    default:
        for (int32_t i = 0; i < n; i++, src += step, dst += es) memcpy(dst, src, es);
        break;
    }
}

void ec_strided_copy_x(const ec_strided_copy_params_t *p, const void *in, void *out) {
    const size_t es = (size_t)p->elem_size;
    const int32_t *c = p->count;
    const ptrdiff_t s0 = p->step[0], s1 = p->step[1], s2 = p->step[2], s3 = p->step[3], s4 = p->step[4];
    const ptrdiff_t s5 = p->step[5];
    const size_t row = (size_t)c[5] * es;
    uint8_t *dst = (uint8_t *)out;
    const uint8_t *base = (const uint8_t *)in + p->offset;
    for (int32_t i0 = 0; i0 < c[0]; i0++) {
        const uint8_t *a0 = base + i0 * s0;
        for (int32_t i1 = 0; i1 < c[1]; i1++) {
            const uint8_t *a1 = a0 + i1 * s1;
            for (int32_t i2 = 0; i2 < c[2]; i2++) {
                const uint8_t *a2 = a1 + i2 * s2;
                for (int32_t i3 = 0; i3 < c[3]; i3++) {
                    const uint8_t *a3 = a2 + i3 * s3;
                    for (int32_t i4 = 0; i4 < c[4]; i4++) {
                        ec_gather_row(dst, a3 + i4 * s4, c[5], s5, es);
                        dst += row;
                    }
                }
            }
        }
    }
}
