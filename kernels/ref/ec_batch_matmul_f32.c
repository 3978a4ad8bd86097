#include "ec_matmul.h"

void ec_batch_matmul_f32(const ec_batch_matmul_f32_params_t *p, const float *lhs, const float *rhs, float *out) {
    const ec_matmul_dims_t *d = &p->dims;
    for (int32_t b0 = 0; b0 < d->batch[0]; b0++)
        for (int32_t b1 = 0; b1 < d->batch[1]; b1++)
            for (int32_t b2 = 0; b2 < d->batch[2]; b2++) {
                const float *a = lhs + (size_t)b0 * d->lhs_batch_stride[0] + (size_t)b1 * d->lhs_batch_stride[1]
                                 + (size_t)b2 * d->lhs_batch_stride[2];
                const float *w = rhs + (size_t)b0 * d->rhs_batch_stride[0] + (size_t)b1 * d->rhs_batch_stride[1]
                                 + (size_t)b2 * d->rhs_batch_stride[2];
                for (int32_t m = 0; m < d->m; m++)
                    for (int32_t n = 0; n < d->n; n++) {
                        float acc = 0.0f;
                        for (int32_t k = 0; k < d->k; k++)
                            acc += a[(size_t)m * d->lhs_stride_m + (size_t)k * d->lhs_stride_k]
                                   * w[(size_t)k * d->rhs_stride_k + (size_t)n * d->rhs_stride_n];
                        *out++ = acc;
                    }
            }
}
