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

#endif /* EC_ELEMENTWISE_H */
