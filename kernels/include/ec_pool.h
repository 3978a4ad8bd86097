/* edgec kernels: pooling and reductions (AVERAGE_POOL_2D, MAX_POOL_2D, MEAN).
 * Pools: NHWC, in-image taps only (padding never contributes), input and output quantization equal
 * (the integer kernels never rescale). MEAN: any axes, as a sum over "reduced" dims per output
 * element; the compiler collapses the input shape into kept/reduced dims with element strides.
 */
#ifndef EC_POOL_H
#define EC_POOL_H

#include "ec_common.h"

typedef struct {
    int32_t batches;
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;            /* leading (top, left) padding */
    int32_t act_min, act_max;        /* fused activation clamp, in output integers */
} ec_pool_s8_params_t;

typedef struct {
    int32_t batches;
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t pad_h, pad_w;
    float act_min, act_max;
} ec_pool_f32_params_t;

/* MEAN. Output element (o0..o4) (row-major over out_dims, i.e. written sequentially) is the mean of
 * in[sum_k o_k * out_stride[k] + sum_k r_k * red_stride[k]] over r in red_dims. Unused dims are 1
 * (stride 0). count = prod(red_dims). */
#define EC_REDUCE_DIMS 5

typedef struct {
    int32_t out_dims[EC_REDUCE_DIMS];
    int32_t out_stride[EC_REDUCE_DIMS];  /* input element strides of the kept dims */
    int32_t red_dims[EC_REDUCE_DIMS];
    int32_t red_stride[EC_REDUCE_DIMS];  /* input element strides of the reduced dims */
    int32_t count;                       /* elements averaged per output (0: outputs are 0) */
    int32_t in_zp, out_zp;
    int32_t mult, shift;                 /* input_scale / output_scale with 1/count folded in */
} ec_mean_s8_params_t;

typedef struct {
    int32_t out_dims[EC_REDUCE_DIMS];
    int32_t out_stride[EC_REDUCE_DIMS];
    int32_t red_dims[EC_REDUCE_DIMS];
    int32_t red_stride[EC_REDUCE_DIMS];
    int32_t count;
} ec_mean_f32_params_t;

void ec_avgpool_s8(const ec_pool_s8_params_t *p, const int8_t *in, int8_t *out);
void ec_avgpool_f32(const ec_pool_f32_params_t *p, const float *in, float *out);
void ec_maxpool_s8(const ec_pool_s8_params_t *p, const int8_t *in, int8_t *out);
void ec_maxpool_f32(const ec_pool_f32_params_t *p, const float *in, float *out);
void ec_mean_s8(const ec_mean_s8_params_t *p, const int8_t *in, int8_t *out);
void ec_mean_f32(const ec_mean_f32_params_t *p, const float *in, float *out);

#endif /* EC_POOL_H */
