/* edgec kernels: GATHER (embedding lookup) and BATCH_MATMUL with a packed low-bit constant table / rhs.
 *
 * Storage (compiler/edgec/backends/c/pack_weights.py, docs/quantization.md): the tensor is cut
 * into rows of K elements, each row a run of `bits`-bit codes, little-endian within a byte (element j
 * occupies bits [j * bits, (j + 1) * bits) of its row; fields may straddle bytes), padded to
 * row_bytes = (K * bits + 7) / 8 whole bytes (ec_lowbit_code reads one field). A code decodes to
 *   q = lut[r * lut_stride + code]            (lut_stride 0: one table for every row)
 * and, with per-group multipliers (group_size > 0), the element's value is v = q * mult[r * G + j / group_size],
 * G = ceil(K / group_size); without them v = q. v is the int8 container value the IR holds, so both
 * kernels equal their int8 counterparts (ec_gather_x / ec_batch_matmul_s8, ec_matmul.h) bit for bit.
 *
 * Rows: GATHER (axis 0) table [rows][K = the rest], a lookup fetching one row; BATCH_MATMUL constant rhs:
 * one row per output column n, K the contraction ([n][k], the IR's [..., K, N] transposed unless adj_y),
 * N rows per batch matrix, the matrices in the rhs's own row-major batch order. */
#ifndef EC_LOWBIT_MATMUL_H
#define EC_LOWBIT_MATMUL_H

#include "ec_lowbit.h"
#include "ec_matmul.h"

/* GATHER, batch_dims 0, axis 0, int8 output [num_indices][row_len]; an index outside [0, num_rows)
 * (LiteRT and TFLM return an error) gives row_len copies of `zero` (the output zero point). */
typedef struct {
    int32_t num_rows;
    int32_t row_len;                 /* K */
    int32_t num_indices;
    int32_t bits;                    /* code width, 1..8 */
    int32_t lut_stride;
    int32_t group_size;              /* 0: no multipliers */
    int32_t zero;
    const int8_t *lut;
    const uint8_t *group_mult;       /* [num_rows * G] or NULL */
} ec_gather_s8wN_params_t;

void ec_gather_s8wN(const ec_gather_s8wN_params_t *p, const uint8_t *table, const int32_t *indices, int8_t *out);

/* BATCH_MATMUL, int8 lhs x packed constant rhs: mm as for ec_batch_matmul_s8, except that
 * mm.dims.rhs_batch_stride counts packed rows (N per matrix; 0 where the rhs broadcasts),
 * mm.dims.rhs_stride_k / rhs_stride_n are unused and mm.rhs_zp is 0 (symmetric weights). Per output
 * element, acc = sum_g mult[r, g] * sum_{k in g} q[r][k] * (lhs[m][k] - lhs_zp) == sum_k v * (lhs - lhs_zp). */
typedef struct {
    ec_batch_matmul_s8_params_t mm;
    int32_t bits;
    int32_t lut_stride;
    int32_t group_size;
    const int8_t *lut;
    const uint8_t *group_mult;
} ec_batch_matmul_s8wN_params_t;

void ec_batch_matmul_s8wN(const ec_batch_matmul_s8wN_params_t *p, const int8_t *lhs, const uint8_t *rhs,
                          int8_t *out);

#endif /* EC_LOWBIT_MATMUL_H */
