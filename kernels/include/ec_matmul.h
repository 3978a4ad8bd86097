/* edgec kernels: word vectors and matmul weights (GATHER, BATCH_MATMUL).
 *
 * GATHER moves elements of `elem_size` bytes and never looks at values (one kernel for every dtype).
 * BATCH_MATMUL walks three broadcast batch dims and arbitrary element strides, so adj_x / adj_y and
 * broadcasting are only numbers the compiler computes (ir/ops/matmul.py); tensors are dense row-major.
 */
#ifndef EC_MATMUL_H
#define EC_MATMUL_H

#include "ec_common.h"

/* GATHER, batch_dims 0: params viewed as [outer][axis_size][inner_bytes], output as
 * [outer][num_indices][inner_bytes]. An index outside [0, axis_size) (LiteRT and TFLM return an
 * error) gives elements equal to `zero` (0.0f, or the output zero point) instead of reading out of bounds. */
typedef struct {
    int32_t outer;
    int32_t axis_size;
    int32_t num_indices;
    int32_t inner_bytes;
    int32_t elem_size;
    uint8_t zero[8];                 /* the zero element's bytes (elem_size of them) */
} ec_gather_params_t;

void ec_gather_x(const ec_gather_params_t *p, const void *params, const int32_t *indices, void *out);

/* out[b][m][n] = sum_k lhs[b][m*lhs_stride_m + k*lhs_stride_k] * rhs[b][k*rhs_stride_k + n*rhs_stride_n],
 * b over batch[0..2]; an operand's batch offset is sum_i b_i * its batch_stride[i] (0 where broadcast). */
typedef struct {
    int32_t batch[3];
    int32_t lhs_batch_stride[3];
    int32_t rhs_batch_stride[3];
    int32_t m, k, n;
    int32_t lhs_stride_m, lhs_stride_k;
    int32_t rhs_stride_k, rhs_stride_n;
} ec_matmul_dims_t;

typedef struct {
    ec_matmul_dims_t dims;
} ec_batch_matmul_f32_params_t;

void ec_batch_matmul_f32(const ec_batch_matmul_f32_params_t *p, const float *lhs, const float *rhs, float *out);

/* int8: acc = sum (lhs - lhs_zp) * (rhs - rhs_zp) (int32), out = clamp(out_zp + requant(acc), -128, 127). */
typedef struct {
    ec_matmul_dims_t dims;
    int32_t lhs_zp, rhs_zp, out_zp;
    int32_t mult, shift;
} ec_batch_matmul_s8_params_t;

void ec_batch_matmul_s8(const ec_batch_matmul_s8_params_t *p, const int8_t *lhs, const int8_t *rhs, int8_t *out);

#endif /* EC_MATMUL_H */
