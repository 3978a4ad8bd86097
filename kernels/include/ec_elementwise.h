/* edgec kernels: binary element-wise arithmetic (ADD, SUB, MUL) with numpy broadcasting.
 *
 * The compiler collapses the broadcast into at most EC_BCAST_DIMS output dims (leading unused dims
 * are 1) and gives each input's element stride per output dim (0 where that input is broadcast).
 * Kernels walk the output sequentially; equal shapes collapse to one contiguous dim. Every output
 * element is written after both of its inputs are read, so the output may alias input 1 when they
 * have the same shape.
 */
#ifndef EC_ELEMENTWISE_H
#define EC_ELEMENTWISE_H

#include "ec_common.h"

#define EC_BCAST_DIMS 5

/* ADD and SUB, int8 (TFLM reference add.h / sub.h):
 *   a = (in1 - in1_zp) << left_shift, b = (in2 - in2_zp) << left_shift
 *   raw = requant(a, m1, s1) +/- requant(b, m2, s2)
 *   out = clamp(requant(raw, mo, so) + out_zp, act_min, act_max) */
typedef struct {
    int32_t dims[EC_BCAST_DIMS];
    int32_t str1[EC_BCAST_DIMS];     /* element strides of input 1 per output dim (0: broadcast) */
    int32_t str2[EC_BCAST_DIMS];
    int32_t in1_zp, in2_zp, out_zp;
    int32_t left_shift;
    int32_t mult1, shift1;
    int32_t mult2, shift2;
    int32_t out_mult, out_shift;
    int32_t act_min, act_max;
} ec_add_s8_params_t;

/* MUL, int8 (TFLM reference integer_ops/mul.h):
 *   out = clamp(requant((in1 - in1_zp) * (in2 - in2_zp), mult, shift) + out_zp, act_min, act_max) */
typedef struct {
    int32_t dims[EC_BCAST_DIMS];
    int32_t str1[EC_BCAST_DIMS];
    int32_t str2[EC_BCAST_DIMS];
    int32_t in1_zp, in2_zp, out_zp;
    int32_t mult, shift;
    int32_t act_min, act_max;
} ec_mul_s8_params_t;

/* ADD, SUB, MUL, float32: out = clamp(in1 op in2, act_min, act_max). */
typedef struct {
    int32_t dims[EC_BCAST_DIMS];
    int32_t str1[EC_BCAST_DIMS];
    int32_t str2[EC_BCAST_DIMS];
    float act_min, act_max;
} ec_binary_f32_params_t;

void ec_add_s8(const ec_add_s8_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void ec_sub_s8(const ec_add_s8_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void ec_mul_s8(const ec_mul_s8_params_t *p, const int8_t *in1, const int8_t *in2, int8_t *out);
void ec_add_f32(const ec_binary_f32_params_t *p, const float *in1, const float *in2, float *out);
void ec_sub_f32(const ec_binary_f32_params_t *p, const float *in1, const float *in2, float *out);
void ec_mul_f32(const ec_binary_f32_params_t *p, const float *in1, const float *in2, float *out);

/* The 5-D strided broadcast loop of the float binary kernels (ADD, SUB, MUL): out[i] = ONE(p, a, b) with
 * per-input element strides (0 where an input is broadcast); the innermost dimension takes a fast path
 * when both inputs are contiguous or one is a scalar there. Expects p, in1, in2, out in scope. */
#define EC_BINARY_F32_LOOP(ONE)                                                                         \
    do {                                                                                                \
        const int32_t *d_ = p->dims, *s1_ = p->str1, *s2_ = p->str2;                                    \
        const int32_t n_ = d_[4], sa_ = s1_[4], sb_ = s2_[4];                                           \
        size_t o_ = 0;                                                                                  \
        for (int32_t i0 = 0; i0 < d_[0]; i0++)                                                          \
        for (int32_t i1 = 0; i1 < d_[1]; i1++)                                                          \
        for (int32_t i2 = 0; i2 < d_[2]; i2++)                                                          \
        for (int32_t i3 = 0; i3 < d_[3]; i3++, o_ += (size_t)n_) {                                      \
            const float *a_ = in1 + ((size_t)i0 * (size_t)s1_[0] + (size_t)i1 * (size_t)s1_[1]          \
                                     + (size_t)i2 * (size_t)s1_[2] + (size_t)i3 * (size_t)s1_[3]);      \
            const float *b_ = in2 + ((size_t)i0 * (size_t)s2_[0] + (size_t)i1 * (size_t)s2_[1]          \
                                     + (size_t)i2 * (size_t)s2_[2] + (size_t)i3 * (size_t)s2_[3]);      \
            float *y_ = out + o_;                                                                       \
            if (sa_ == 1 && sb_ == 1) {                                                                 \
                for (int32_t j = 0; j < n_; j++) y_[j] = ONE(p, a_[j], b_[j]);                          \
            } else if (sa_ == 0 && sb_ == 1) {                                                          \
                const float va_ = a_[0];                                                                \
                for (int32_t j = 0; j < n_; j++) y_[j] = ONE(p, va_, b_[j]);                            \
            } else if (sa_ == 1 && sb_ == 0) {                                                          \
                const float vb_ = b_[0];                                                                \
                for (int32_t j = 0; j < n_; j++) y_[j] = ONE(p, a_[j], vb_);                            \
            } else {                                                                                    \
                for (int32_t j = 0; j < n_; j++)                                                        \
                    y_[j] = ONE(p, a_[(size_t)j * (size_t)sa_], b_[(size_t)j * (size_t)sb_]);           \
            }                                                                                           \
        }                                                                                               \
    } while (0)

#endif /* EC_ELEMENTWISE_H */
