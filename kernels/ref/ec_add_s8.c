#include "ec_elementwise.h"

/* TFLM reference add.h (int8): each input rescaled to a common 2^-left_shift grid, summed, rescaled
 * to the output. */
static inline int32_t ec_add_in1(const ec_add_s8_params_t *p, int32_t x) {
    return ec_requantize((x - p->in1_zp) * ((int32_t)1 << p->left_shift), p->mult1, p->shift1);
}

static inline int32_t ec_add_in2(const ec_add_s8_params_t *p, int32_t x) {
    return ec_requantize((x - p->in2_zp) * ((int32_t)1 << p->left_shift), p->mult2, p->shift2);
}

static inline int8_t ec_add_out(const ec_add_s8_params_t *p, int32_t raw) {
    return (int8_t)ec_clamp_i32(ec_requantize(raw, p->out_mult, p->out_shift) + p->out_zp, p->act_min, p->act_max);
}

void ec_add_s8(const ec_add_s8_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out) {
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
            for (int32_t j = 0; j < n; j++) y[j] = ec_add_out(p, ec_add_in1(p, a[j]) + ec_add_in2(p, b[j]));
        } else if (sa == 0 && sb == 1) {
            const int32_t va = ec_add_in1(p, a[0]);
            for (int32_t j = 0; j < n; j++) y[j] = ec_add_out(p, va + ec_add_in2(p, b[j]));
        } else if (sa == 1 && sb == 0) {
            const int32_t vb = ec_add_in2(p, b[0]);
            for (int32_t j = 0; j < n; j++) y[j] = ec_add_out(p, ec_add_in1(p, a[j]) + vb);
        } else {
            for (int32_t j = 0; j < n; j++)
                y[j] = ec_add_out(p, ec_add_in1(p, a[(size_t)j * (size_t)sa]) + ec_add_in2(p, b[(size_t)j * (size_t)sb]));
        }
    }
}
