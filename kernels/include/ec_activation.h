/* edgec kernels: activation ops (RELU, RELU6, LOGISTIC, TANH, HARD_SWISH, SOFTMAX, PRELU, LEAKY_RELU).
 *
 * int8 element-wise activations are 256-entry look-up tables computed by the compiler from the
 * reference semantics (TFLite Micro's fixed-point recipes, evaluated on every int8 input), so they
 * are exact by construction; the LUT is indexed by the input's bit pattern, lut[(uint8_t)x].
 * SOFTMAX int8 depends on its whole row and ports TFLite Micro's gemmlowp fixed point; PRELU int8
 * requantizes per element (alpha is a broadcast tensor).
 *
 * Every kernel here reads each element before writing the same index and never reads an index it
 * has already written, so the output may share the input's memory (SOFTMAX: row by row).
 */
#ifndef EC_ACTIVATION_H
#define EC_ACTIVATION_H

#include "ec_common.h"

/* RELU / RELU6 int8: out = lut ? lut[(uint8_t)x] : clamp(x, act_min, act_max). */
typedef struct {
    int32_t size;
    int32_t act_min, act_max;
    const int8_t *lut;               /* 256 entries, or NULL for the pure clamp */
} ec_relu_s8_params_t;

/* LOGISTIC / TANH / HARD_SWISH / LEAKY_RELU int8: out = lut[(uint8_t)x]. */
typedef struct {
    int32_t size;
    const int8_t *lut;               /* 256 entries */
} ec_lut_s8_params_t;

/* RELU / RELU6 / LOGISTIC / TANH / HARD_SWISH float32. */
typedef struct {
    int32_t size;
} ec_act_f32_params_t;

typedef struct {
    int32_t size;
    float alpha;                     /* out = x > 0 ? x : x * alpha */
} ec_leaky_relu_f32_params_t;

/* SOFTMAX over the last axis: `outer` rows of `depth` values. */
typedef struct {
    int32_t outer, depth;
    int32_t mult, shift;             /* beta * s_in * 2^26 as a Q31 multiplier (shift >= 0) */
    int32_t diff_min;                /* x - row max below this contributes nothing */
} ec_softmax_s8_params_t;

typedef struct {
    int32_t outer, depth;
    float beta;
} ec_softmax_f32_params_t;

/* PRELU: out = x >= 0 ? x : x * alpha with x and alpha broadcast to the output shape. The shape is
 * collapsed by the compiler (size-1 axes dropped, runs of axes with the same broadcast pattern
 * merged) to `rank` <= EC_PRELU_MAX_DIMS axes; strides are in elements, 0 on broadcast axes. */
#define EC_PRELU_MAX_DIMS 6

typedef struct {
    int32_t rank;
    int32_t dims[EC_PRELU_MAX_DIMS];
    int32_t in_stride[EC_PRELU_MAX_DIMS];
    int32_t alpha_stride[EC_PRELU_MAX_DIMS];
    int32_t in_zp, alpha_zp, out_zp;
    int32_t pos_mult, pos_shift;     /* s_in / s_out */
    int32_t neg_mult, neg_shift;     /* s_in * s_alpha / s_out */
} ec_prelu_s8_params_t;

typedef struct {
    int32_t rank;
    int32_t dims[EC_PRELU_MAX_DIMS];
    int32_t in_stride[EC_PRELU_MAX_DIMS];
    int32_t alpha_stride[EC_PRELU_MAX_DIMS];
} ec_prelu_f32_params_t;

void ec_relu_s8(const ec_relu_s8_params_t *p, const int8_t *in, int8_t *out);
void ec_relu_f32(const ec_act_f32_params_t *p, const float *in, float *out);
void ec_relu6_s8(const ec_relu_s8_params_t *p, const int8_t *in, int8_t *out);
void ec_relu6_f32(const ec_act_f32_params_t *p, const float *in, float *out);
void ec_logistic_s8(const ec_lut_s8_params_t *p, const int8_t *in, int8_t *out);
void ec_logistic_f32(const ec_act_f32_params_t *p, const float *in, float *out);
void ec_tanh_s8(const ec_lut_s8_params_t *p, const int8_t *in, int8_t *out);
void ec_tanh_f32(const ec_act_f32_params_t *p, const float *in, float *out);
void ec_hard_swish_s8(const ec_lut_s8_params_t *p, const int8_t *in, int8_t *out);
void ec_hard_swish_f32(const ec_act_f32_params_t *p, const float *in, float *out);
void ec_leaky_relu_s8(const ec_lut_s8_params_t *p, const int8_t *in, int8_t *out);
void ec_leaky_relu_f32(const ec_leaky_relu_f32_params_t *p, const float *in, float *out);
void ec_softmax_s8(const ec_softmax_s8_params_t *p, const int8_t *in, int8_t *out);
void ec_softmax_f32(const ec_softmax_f32_params_t *p, const float *in, float *out);
void ec_prelu_s8(const ec_prelu_s8_params_t *p, const int8_t *in, const int8_t *alpha, int8_t *out);
void ec_prelu_f32(const ec_prelu_f32_params_t *p, const float *in, const float *alpha, float *out);

/* The table look-up every int8 LUT kernel runs (inline so each kernel file stays standalone). */
EC_INLINE void ec_lut_apply_s8(const int8_t *lut, const int8_t *in, int8_t *out, int32_t size) {
    for (int32_t i = 0; i < size; i++) out[i] = lut[(uint8_t)in[i]];
}

#endif /* EC_ACTIVATION_H */
