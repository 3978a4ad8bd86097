#include "ec_matmul.h"

void ec_batch_matmul_s8(const ec_batch_matmul_s8_params_t *p, const int8_t *lhs, const int8_t *rhs, int8_t *out) {
    const ec_matmul_dims_t *d = &p->dims;
    for (int32_t b0 = 0; b0 < d->batch[0]; b0++)
        for (int32_t b1 = 0; b1 < d->batch[1]; b1++)
            for (int32_t b2 = 0; b2 < d->batch[2]; b2++) {
                const int8_t *a = lhs + (size_t)b0 * d->lhs_batch_stride[0] + (size_t)b1 * d->lhs_batch_stride[1]
                                  + (size_t)b2 * d->lhs_batch_stride[2];
                const int8_t *w = rhs + (size_t)b0 * d->rhs_batch_stride[0] + (size_t)b1 * d->rhs_batch_stride[1]
                                  + (size_t)b2 * d->rhs_batch_stride[2];
                for (int32_t m = 0; m < d->m; m++)
                    for (int32_t n = 0; n < d->n; n++) {
                        int32_t acc = 0;
                        for (int32_t k = 0; k < d->k; k++)
                            acc += ((int32_t)a[(size_t)m * d->lhs_stride_m + (size_t)k * d->lhs_stride_k] - p->lhs_zp)
                                   * ((int32_t)w[(size_t)k * d->rhs_stride_k + (size_t)n * d->rhs_stride_n] - p->rhs_zp);
                        acc = ec_requantize(acc, p->mult, p->shift) + p->out_zp;
                        *out++ = (int8_t)ec_clamp_i32(acc, -128, 127);
                    }
            }
}
