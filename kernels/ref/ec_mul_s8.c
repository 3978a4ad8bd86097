#include "ec_elementwise.h"

/* TFLM reference integer_ops/mul.h (int8). */
static inline int8_t ec_mul_one(const ec_mul_s8_params_t *p, int32_t x, int32_t w) {
    const int32_t prod = (x - p->in1_zp) * (w - p->in2_zp);
    return (int8_t)ec_clamp_i32(ec_requantize(prod, p->mult, p->shift) + p->out_zp, p->act_min, p->act_max);
}

void ec_mul_s8(const ec_mul_s8_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
    const int32_t *d = p->dims, *s1 = p->str1, *s2 = p->str2;
    const int32_t n = d[4], sa = s1[4], sb = s2[4];
    size_t o = 0;
    for (int32_t i0 = 0; i0 < d[0]; i0++)
    for (int32_t i1 = 0; i1 < d[1]; i1++)
    for (int32_t i2 = 0; i2 < d[2]; i2++)
    for (int32_t i3 = 0; i3 < d[3]; i3++, o += (size_t)n) {
        const int8_t *a = in1 + ((size_t)i0 * (size_t)s1[0] + (size_t)i1 * (size_t)s1[1]
                                 + (size_t)i2 * (size_t)s1[2] + (size_t)i3 * (size_t)s1[3]);
        const int8_t *b = in2 + ((size_t)i0 * (size_t)s2[0] + (size_t)i1 * (size_t)s2[1]
                                 + (size_t)i2 * (size_t)s2[2] + (size_t)i3 * (size_t)s2[3]);
        int8_t *y = out + o;
        if (sa == 1 && sb == 1) {
            for (int32_t j = 0; j < n; j++) y[j] = ec_mul_one(p, a[j], b[j]);
        } else if (sa == 0 && sb == 1) {
            const int32_t va = a[0];
            for (int32_t j = 0; j < n; j++) y[j] = ec_mul_one(p, va, b[j]);
        } else if (sa == 1 && sb == 0) {
            const int32_t vb = b[0];
            for (int32_t j = 0; j < n; j++) y[j] = ec_mul_one(p, a[j], vb);
        } else {
            for (int32_t j = 0; j < n; j++) y[j] = ec_mul_one(p, a[(size_t)j * (size_t)sa], b[(size_t)j * (size_t)sb]);
        }
    }
}
