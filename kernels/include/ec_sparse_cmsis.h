/* edgec kernels: the Cortex-M DSP-extension cores of the sparse kernels (kernels/cmsis/ec_*_s8sp?.c;
 * formats in ec_sparse.h). Same arguments and results as ec_sparse.h's reference cores, bit for bit:
 *   c  four entries per step: the gathered inputs packed in pairs (PKHBT) against a word of four values
 *      (SXTB16 / SXTB16 ror 8), two dual 16-bit MACs (SMLAD);
 *   d  one word of fields per step with the field width a compile-time constant (ec_sparse.h's
 *      ec_sparse_d_rows_fixed: UBFX, an add and a load per entry);
 *   b  block columns a multiple of 4: whole input and value words, SMLAD;
 *   n  2:4 / 1:4: one position byte (2 / 4 groups) per step, pairs as for c.
 * Requantization uses ec_cm_requantize (mult >= 0, as QuantizeMultiplier produces). Without the DSP
 * extension (Cortex-M0+, hosts) the kernels use the reference cores. */
#ifndef EC_SPARSE_CMSIS_H
#define EC_SPARSE_CMSIS_H

#include "ec_sparse.h"
#include "ec_cmsis.h"

#ifdef EC_CMSIS_DSP

EC_INLINE int8_t ec_sparse_cm_out(const ec_sparse_rq_t *q, int32_t r, int32_t acc) {
    return (int8_t)ec_clamp_i32(ec_cm_requantize(acc, q->mult[r], q->shift[r]) + q->out_zp, q->act_min, q->act_max);
}

/* (a & 0xFFFF) | b << 16: one PKHBT */
EC_INLINE uint32_t ec_sparse_pack(int32_t a, int32_t b) {
    return ((uint32_t)a & 0xFFFFu) | ((uint32_t)b << 16);
}

/* acc + w0 * x0 + w1 * x1 + w2 * x2 + w3 * x3 for the four int8 values of word w4 */
EC_INLINE int32_t ec_sparse_mac4(int32_t acc, uint32_t w4, int32_t x0, int32_t x1, int32_t x2, int32_t x3) {
    acc = __smlad(__sxtb16(w4), ec_sparse_pack(x0, x2), acc);
    return __smlad(ec_sxtb16_ror8(w4), ec_sparse_pack(x1, x3), acc);
}

EC_INLINE int32_t ec_sparse_cm_c_row8(const uint8_t *ix, const int8_t *v, const int8_t *x, int32_t n, int32_t acc) {
    int32_t j = 0;
    for (; j + 4 <= n; j += 4)
        acc = ec_sparse_mac4(acc, (uint32_t)ec_rd32(v + j), x[ix[j]], x[ix[j + 1]], x[ix[j + 2]], x[ix[j + 3]]);
    for (; j < n; j++) acc += (int32_t)v[j] * x[ix[j]];
    return acc;
}

EC_INLINE int32_t ec_sparse_cm_c_row16(const uint16_t *ix, const int8_t *v, const int8_t *x, int32_t n, int32_t acc) {
    int32_t j = 0;
    for (; j + 4 <= n; j += 4)
        acc = ec_sparse_mac4(acc, (uint32_t)ec_rd32(v + j), x[ix[j]], x[ix[j + 1]], x[ix[j + 2]], x[ix[j + 3]]);
    for (; j < n; j++) acc += (int32_t)v[j] * x[ix[j]];
    return acc;
}

EC_NOINLINE void ec_sparse_cm_rows_c(const ec_sparse_t *sp, int32_t rows, int32_t k, const int8_t *v,
                                     const int8_t *x, const ec_sparse_rq_t *q, int8_t *y) {
    const uint8_t *i8 = (const uint8_t *)sp->index;
    const uint16_t *i16 = (const uint16_t *)sp->index;
    (void)k;
    for (int32_t r = 0; r < rows; r++) {
        const int32_t n = ec_sparse_count(sp, r), b = ec_sparse_bias(q, r);
        int32_t acc;
        if (sp->index_bits == 8) {
            acc = ec_sparse_cm_c_row8(i8, v, x, n, b);
            i8 += n;
        } else {
            acc = ec_sparse_cm_c_row16(i16, v, x, n, b);
            i16 += n;
        }
        v += n;
        y[r] = ec_sparse_cm_out(q, r, acc);
    }
}

EC_NOINLINE void ec_sparse_cm_rows_d(const ec_sparse_t *sp, int32_t rows, int32_t k, const int8_t *v,
                                     const int8_t *x, const ec_sparse_rq_t *q, int8_t *y) {
    switch (sp->index_bits) {
    case 2: ec_sparse_d_rows_fixed(sp, rows, v, x, q, y, 2u, ec_sparse_cm_out); break;
    case 3: ec_sparse_d_rows_fixed(sp, rows, v, x, q, y, 3u, ec_sparse_cm_out); break;
    case 4: ec_sparse_d_rows_fixed(sp, rows, v, x, q, y, 4u, ec_sparse_cm_out); break;
    case 5: ec_sparse_d_rows_fixed(sp, rows, v, x, q, y, 5u, ec_sparse_cm_out); break;
    case 6: ec_sparse_d_rows_fixed(sp, rows, v, x, q, y, 6u, ec_sparse_cm_out); break;
    case 8: ec_sparse_d_rows_fixed(sp, rows, v, x, q, y, 8u, ec_sparse_cm_out); break;
    default: ec_sparse_rows_d(sp, rows, k, v, x, q, y); break;
    }
}

/* One row of a block row: its blocks' values sit block_r * C apart; C a multiple of 4 (a literal at
 * the call sites below, so the column loop unrolls), inputs and values read a word at a time. */
EC_INLINE int32_t ec_sparse_cm_b_row(const uint8_t *i8, const uint16_t *i16, int32_t n, const int8_t *vb,
                                     int32_t stride, const int8_t *x, int32_t acc, const int32_t C) {
    for (int32_t j = 0; j < n; j++, vb += stride) {
        const int8_t *xb = x + (size_t)(i8 ? i8[j] : i16[j]) * (size_t)C;
        EC_SPARSE_UNROLL
        for (int32_t c = 0; c < C; c += 4) {
            const uint32_t xw = (uint32_t)ec_rd32(xb + c), vw = (uint32_t)ec_rd32(vb + c);
            acc = __smlad(__sxtb16(vw), __sxtb16(xw), acc);
            acc = __smlad(ec_sxtb16_ror8(vw), ec_sxtb16_ror8(xw), acc);
        }
    }
    return acc;
}

EC_INLINE void ec_sparse_cm_b_rows(const ec_sparse_t *sp, int32_t rows, const int8_t *v, const int8_t *x,
                                   const ec_sparse_rq_t *q, int8_t *y, const int32_t C) {
    const int32_t R = sp->block_r, RC = R * C;
    const uint8_t *i8 = sp->index_bits == 8 ? (const uint8_t *)sp->index : NULL;
    const uint16_t *i16 = sp->index_bits == 8 ? NULL : (const uint16_t *)sp->index;
    for (int32_t r0 = 0, br = 0; r0 < rows; r0 += R, br++) {
        const int32_t n = ec_sparse_count(sp, br), rr = rows - r0 < R ? rows - r0 : R;
        for (int32_t r = 0; r < rr; r++) {
            const int32_t acc = ec_sparse_cm_b_row(i8, i16, n, v + (size_t)r * (size_t)C, RC, x,
                                                   ec_sparse_bias(q, r0 + r), C);
            y[r0 + r] = ec_sparse_cm_out(q, r0 + r, acc);
        }
        v += (size_t)n * (size_t)RC;
        if (i8) i8 += n;
        else i16 += n;
    }
}

/* Blocks: row by row, each row walking its block row's blocks (the input words are reloaded per row:
 * registers, not a stack array, hold the sum); block columns of 4, 8, 12 or 16, else the reference. */
EC_NOINLINE void ec_sparse_cm_rows_b(const ec_sparse_t *sp, int32_t rows, int32_t k, const int8_t *v,
                                     const int8_t *x, const ec_sparse_rq_t *q, int8_t *y) {
    switch (sp->block_c) {
    case 4: ec_sparse_cm_b_rows(sp, rows, v, x, q, y, 4); break;
    case 8: ec_sparse_cm_b_rows(sp, rows, v, x, q, y, 8); break;
    case 12: ec_sparse_cm_b_rows(sp, rows, v, x, q, y, 12); break;
    case 16: ec_sparse_cm_b_rows(sp, rows, v, x, q, y, 16); break;
    default: ec_sparse_rows_b(sp, rows, k, v, x, q, y); break;
    }
}

/* N:4: a position byte covers 4 entries (2 groups for 2:4, 4 groups for 1:4); whole bytes first, then
 * the row's last entries one by one. */
EC_NOINLINE void ec_sparse_cm_rows_n(const ec_sparse_t *sp, int32_t rows, int32_t k, const int8_t *v,
                                     const int8_t *x, const ec_sparse_rq_t *q, int8_t *y) {
    const int32_t N = sp->block_r, groups = (k + 3) / 4, per_row = groups * N, row_bytes = (per_row + 3) / 4;
    const int32_t full = per_row >> 2;
    const uint8_t *pos = (const uint8_t *)sp->index;
    if (N != 1 && N != 2) {
        ec_sparse_rows_n(sp, rows, k, v, x, q, y);
        return;
    }
    for (int32_t r = 0; r < rows; r++) {
        int32_t acc = ec_sparse_bias(q, r);
        const int8_t *xg = x;
        if (N == 2) {
            for (int32_t b = 0; b < full; b++, xg += 8, v += 4) {
                const uint32_t pb = pos[b];
                acc = ec_sparse_mac4(acc, (uint32_t)ec_rd32(v), xg[pb & 3u], xg[(pb >> 2) & 3u],
                                     xg[4u + ((pb >> 4) & 3u)], xg[4u + (pb >> 6)]);
            }
        } else {
            for (int32_t b = 0; b < full; b++, xg += 16, v += 4) {
                const uint32_t pb = pos[b];
                acc = ec_sparse_mac4(acc, (uint32_t)ec_rd32(v), xg[pb & 3u], xg[4u + ((pb >> 2) & 3u)],
                                     xg[8u + ((pb >> 4) & 3u)], xg[12u + (pb >> 6)]);
            }
        }
        for (int32_t e = full * 4; e < per_row; e++) {
            const int32_t p = (pos[e >> 2] >> ((e & 3) * 2)) & 3;
            acc += (int32_t)*v++ * x[(e / N) * 4 + p];
        }
        pos += row_bytes;
        y[r] = ec_sparse_cm_out(q, r, acc);
    }
}

#define EC_SPARSE_CM_ROWS_C ec_sparse_cm_rows_c
#define EC_SPARSE_CM_ROWS_D ec_sparse_cm_rows_d
#define EC_SPARSE_CM_ROWS_B ec_sparse_cm_rows_b
#define EC_SPARSE_CM_ROWS_N ec_sparse_cm_rows_n
#else   /* no DSP extension: the reference cores */
#define EC_SPARSE_CM_ROWS_C ec_sparse_rows_c
#define EC_SPARSE_CM_ROWS_D ec_sparse_rows_d
#define EC_SPARSE_CM_ROWS_B ec_sparse_rows_b
#define EC_SPARSE_CM_ROWS_N ec_sparse_rows_n
#endif

#endif /* EC_SPARSE_CMSIS_H */
