#include "ec_lowbit_matmul.h"

/* BATCH_MATMUL, int8 lhs x packed low-bit constant rhs (ec_lowbit_matmul.h): rhs row r (output column n of
 * its batch matrix) holds K codes, q = lut[r * lut_stride + code], summed per group and scaled by the
 * group's multiplier. acc equals ec_batch_matmul_s8's sum over the int8 container values exactly
 * (integer arithmetic; rhs_zp is 0), requantized the same way: TFLite Micro's BatchMatMul bit for bit. */
void ec_batch_matmul_s8wN(const ec_batch_matmul_s8wN_params_t *p, const int8_t *lhs, const uint8_t *rhs,
                          int8_t *out) {
    const ec_batch_matmul_s8_params_t *q = &p->mm;
    const ec_matmul_dims_t *d = &q->dims;
    const uint32_t bits = (uint32_t)p->bits, k = (uint32_t)d->k;
    const size_t row_bytes = ((size_t)k * bits + 7u) / 8u;
    const uint32_t gs = p->group_size > 0 ? (uint32_t)p->group_size : (k ? k : 1u);
    const size_t groups = ((size_t)k + gs - 1u) / gs;
    for (int32_t b0 = 0; b0 < d->batch[0]; b0++)
        for (int32_t b1 = 0; b1 < d->batch[1]; b1++)
            for (int32_t b2 = 0; b2 < d->batch[2]; b2++) {
                const int8_t *a = lhs + (size_t)b0 * d->lhs_batch_stride[0] + (size_t)b1 * d->lhs_batch_stride[1]
                                  + (size_t)b2 * d->lhs_batch_stride[2];
                const size_t r0 = (size_t)b0 * d->rhs_batch_stride[0] + (size_t)b1 * d->rhs_batch_stride[1]
                                  + (size_t)b2 * d->rhs_batch_stride[2];
                for (int32_t m = 0; m < d->m; m++) {
                    const int8_t *x = a + (size_t)m * d->lhs_stride_m;
                    for (int32_t n = 0; n < d->n; n++) {
                        const size_t r = r0 + (size_t)n;
                        const uint8_t *row = rhs + r * row_bytes;
                        const int8_t *lut = p->lut + r * (size_t)p->lut_stride;
                        const uint8_t *mult = p->group_mult ? p->group_mult + r * groups : NULL;
                        int32_t acc = 0;
                        for (uint32_t j0 = 0, g = 0; j0 < k; j0 += gs, g++) {
                            const uint32_t j1 = j0 + gs < k ? j0 + gs : k;
                            int32_t s = 0;
                            for (uint32_t j = j0; j < j1; j++)
                                s += (int32_t)lut[ec_lowbit_code(row, j, bits)]
                                     * ((int32_t)x[(size_t)j * d->lhs_stride_k] - q->lhs_zp);
                            acc += mult ? (int32_t)mult[g] * s : s;
                        }
                        acc = ec_requantize(acc, q->mult, q->shift) + q->out_zp;
                        *out++ = (int8_t)ec_clamp_i32(acc, -128, 127);
                    }
                }
            }
}
