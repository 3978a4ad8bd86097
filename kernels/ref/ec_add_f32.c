#include "ec_elementwise.h"

static inline float ec_add_f32_one(const ec_binary_f32_params_t *p, float x, float w) {
    const float v = x + w;
    return v < p->act_min ? p->act_min : (v > p->act_max ? p->act_max : v);
}

void ec_add_f32(const ec_binary_f32_params_t *p, const float *in1, const float *in2, float *out) {
    const int32_t *d = p->dims, *s1 = p->str1, *s2 = p->str2;
    const int32_t n = d[4], sa = s1[4], sb = s2[4];
    size_t o = 0;
    for (int32_t i0 = 0; i0 < d[0]; i0++)
    for (int32_t i1 = 0; i1 < d[1]; i1++)
    for (int32_t i2 = 0; i2 < d[2]; i2++)
    for (int32_t i3 = 0; i3 < d[3]; i3++, o += (size_t)n) {
        const float *a = in1 + ((size_t)i0 * (size_t)s1[0] + (size_t)i1 * (size_t)s1[1]
                                + (size_t)i2 * (size_t)s1[2] + (size_t)i3 * (size_t)s1[3]);
        const float *b = in2 + ((size_t)i0 * (size_t)s2[0] + (size_t)i1 * (size_t)s2[1]
                                + (size_t)i2 * (size_t)s2[2] + (size_t)i3 * (size_t)s2[3]);
        float *y = out + o;
        if (sa == 1 && sb == 1) {
            for (int32_t j = 0; j < n; j++) y[j] = ec_add_f32_one(p, a[j], b[j]);
        } else if (sa == 0 && sb == 1) {
            const float va = a[0];
            for (int32_t j = 0; j < n; j++) y[j] = ec_add_f32_one(p, va, b[j]);
        } else if (sa == 1 && sb == 0) {
            const float vb = b[0];
            for (int32_t j = 0; j < n; j++) y[j] = ec_add_f32_one(p, a[j], vb);
        } else {
            for (int32_t j = 0; j < n; j++) y[j] = ec_add_f32_one(p, a[(size_t)j * (size_t)sa], b[(size_t)j * (size_t)sb]);
        }
    }
}
