/* edgec kernels: the arm64 NEON cores of the sparse kernels (kernels/neon/ec_*_s8sp?.c; formats in
 * ec_sparse.h). Same arguments and results as ec_sparse.h's reference cores, bit for bit:
 *   c  eight inputs per step gathered into vector lanes (LD1 {v.b}[lane]) against eight contiguous
 *      values: one widening multiply (SMULL) and pairwise accumulate (SADALP);
 *   n  the same with the lane addresses from the 2-bit positions (8 entries: 4 groups of 2:4, 8 of 1:4);
 *   b  blocks 8 or 16 wide: a block's inputs and values loaded whole; 4 wide: two blocks per 8 lanes;
 *   d  scalar with the field width a compile-time constant (ec_sparse_d_rows_fixed): the entries'
 *      positions form a serial prefix sum, which lanes do not speed up.
 * Row tails and other block widths take the scalar reference loops. */
#ifndef EC_SPARSE_NEON_H
#define EC_SPARSE_NEON_H

#include "ec_sparse.h"

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>

/* x[c[0..7]] in the lanes of one vector */
#define EC_SPARSE_LANES8(x, c)                                                                          \
    vld1_lane_s8((x) + (c)[7], vld1_lane_s8((x) + (c)[6], vld1_lane_s8((x) + (c)[5],                     \
    vld1_lane_s8((x) + (c)[4], vld1_lane_s8((x) + (c)[3], vld1_lane_s8((x) + (c)[2],                     \
    vld1_lane_s8((x) + (c)[1], vld1_dup_s8((x) + (c)[0]), 1), 2), 3), 4), 5), 6), 7)

EC_INLINE int32x4_t ec_sparse_mac8(int32x4_t acc, int8x8_t xg, const int8_t *v) {
    return vpadalq_s16(acc, vmull_s8(xg, vld1_s8(v)));
}

EC_NOINLINE void ec_sparse_neon_rows_c(const ec_sparse_t *sp, int32_t rows, int32_t k, const int8_t *v,
                                       const int8_t *x, const ec_sparse_rq_t *q, int8_t *y) {
    const uint8_t *i8 = (const uint8_t *)sp->index;
    const uint16_t *i16 = (const uint16_t *)sp->index;
    const int narrow = sp->index_bits == 8;
    (void)k;
    for (int32_t r = 0; r < rows; r++) {
        const int32_t n = ec_sparse_count(sp, r);
        int32x4_t acc = vdupq_n_s32(0);
        int32_t j = 0, s = ec_sparse_bias(q, r);
        if (narrow) {
            for (; j + 8 <= n; j += 8) acc = ec_sparse_mac8(acc, EC_SPARSE_LANES8(x, i8 + j), v + j);
            for (; j < n; j++) s += (int32_t)v[j] * x[i8[j]];
            i8 += n;
        } else {
            for (; j + 8 <= n; j += 8) acc = ec_sparse_mac8(acc, EC_SPARSE_LANES8(x, i16 + j), v + j);
            for (; j < n; j++) s += (int32_t)v[j] * x[i16[j]];
            i16 += n;
        }
        v += n;
        y[r] = ec_sparse_out(q, r, (int32_t)((uint32_t)s + (uint32_t)vaddvq_s32(acc)));
    }
}

EC_NOINLINE void ec_sparse_neon_rows_d(const ec_sparse_t *sp, int32_t rows, int32_t k, const int8_t *v,
                                       const int8_t *x, const ec_sparse_rq_t *q, int8_t *y) {
    switch (sp->index_bits) {
    case 2: ec_sparse_d_rows_fixed(sp, rows, v, x, q, y, 2u, ec_sparse_out); break;
    case 3: ec_sparse_d_rows_fixed(sp, rows, v, x, q, y, 3u, ec_sparse_out); break;
    case 4: ec_sparse_d_rows_fixed(sp, rows, v, x, q, y, 4u, ec_sparse_out); break;
    case 5: ec_sparse_d_rows_fixed(sp, rows, v, x, q, y, 5u, ec_sparse_out); break;
    case 6: ec_sparse_d_rows_fixed(sp, rows, v, x, q, y, 6u, ec_sparse_out); break;
    case 8: ec_sparse_d_rows_fixed(sp, rows, v, x, q, y, 8u, ec_sparse_out); break;
    default: ec_sparse_rows_d(sp, rows, k, v, x, q, y); break;
    }
}

/* One row of a block row, C (a literal: 4, 8 or 16) columns, blocks' values `stride` bytes apart. */
EC_INLINE int32_t ec_sparse_neon_b_row(const uint8_t *i8, const uint16_t *i16, int32_t n, const int8_t *vb,
                                       int32_t stride, const int8_t *x, int32_t s, const int32_t C) {
    int32x4_t acc = vdupq_n_s32(0);
    int32_t j = 0;
    if (C == 4) {   /* two blocks per 8 lanes */
        for (; j + 2 <= n; j += 2, vb += 2 * stride) {
            const int8_t *x0 = x + 4 * (i8 ? i8[j] : i16[j]), *x1 = x + 4 * (i8 ? i8[j + 1] : i16[j + 1]);
            int32_t a, b, c, d;
            memcpy(&a, x0, 4);
            memcpy(&b, x1, 4);
            memcpy(&c, vb, 4);
            memcpy(&d, vb + stride, 4);
            const int8x8_t xv = vreinterpret_s8_s32(vset_lane_s32(b, vdup_n_s32(a), 1));
            const int8x8_t wv = vreinterpret_s8_s32(vset_lane_s32(d, vdup_n_s32(c), 1));
            acc = vpadalq_s16(acc, vmull_s8(xv, wv));
        }
        for (; j < n; j++, vb += stride) {
            const int8_t *xb = x + 4 * (i8 ? i8[j] : i16[j]);
            for (int32_t c = 0; c < 4; c++) s += (int32_t)vb[c] * xb[c];
        }
    } else {
        for (; j < n; j++, vb += stride) {
            const int8_t *xb = x + (size_t)(i8 ? i8[j] : i16[j]) * (size_t)C;
            for (int32_t c = 0; c < C; c += 8) acc = vpadalq_s16(acc, vmull_s8(vld1_s8(xb + c), vld1_s8(vb + c)));
        }
    }
    return (int32_t)((uint32_t)s + (uint32_t)vaddvq_s32(acc));
}

EC_INLINE void ec_sparse_neon_b_rows(const ec_sparse_t *sp, int32_t rows, const int8_t *v, const int8_t *x,
                                     const ec_sparse_rq_t *q, int8_t *y, const int32_t C) {
    const int32_t R = sp->block_r, RC = R * C;
    const uint8_t *i8 = sp->index_bits == 8 ? (const uint8_t *)sp->index : NULL;
    const uint16_t *i16 = sp->index_bits == 8 ? NULL : (const uint16_t *)sp->index;
    for (int32_t r0 = 0, br = 0; r0 < rows; r0 += R, br++) {
        const int32_t n = ec_sparse_count(sp, br), rr = rows - r0 < R ? rows - r0 : R;
        for (int32_t r = 0; r < rr; r++) {
            const int32_t s = ec_sparse_neon_b_row(i8, i16, n, v + (size_t)r * (size_t)C, RC, x,
                                                   ec_sparse_bias(q, r0 + r), C);
            y[r0 + r] = ec_sparse_out(q, r0 + r, s);
        }
        v += (size_t)n * (size_t)RC;
        if (i8) i8 += n;
        else i16 += n;
    }
}

EC_NOINLINE void ec_sparse_neon_rows_b(const ec_sparse_t *sp, int32_t rows, int32_t k, const int8_t *v,
                                       const int8_t *x, const ec_sparse_rq_t *q, int8_t *y) {
    switch (sp->block_c) {
    case 4: ec_sparse_neon_b_rows(sp, rows, v, x, q, y, 4); break;
    case 8: ec_sparse_neon_b_rows(sp, rows, v, x, q, y, 8); break;
    case 16: ec_sparse_neon_b_rows(sp, rows, v, x, q, y, 16); break;
    default: ec_sparse_rows_b(sp, rows, k, v, x, q, y); break;
    }
}

/* N:4, 8 entries per step: 2 position bytes; entry e of the step reads x[4 * group(e) + position(e)]. */
EC_NOINLINE void ec_sparse_neon_rows_n(const ec_sparse_t *sp, int32_t rows, int32_t k, const int8_t *v,
                                       const int8_t *x, const ec_sparse_rq_t *q, int8_t *y) {
    const int32_t N = sp->block_r, groups = (k + 3) / 4, per_row = groups * N, row_bytes = (per_row + 3) / 4;
    const uint8_t *pos = (const uint8_t *)sp->index;
    if (N != 1 && N != 2) {
        ec_sparse_rows_n(sp, rows, k, v, x, q, y);
        return;
    }
    const int32_t shift = N == 2 ? 1 : 0;   /* group(e) = e >> shift */
    for (int32_t r = 0; r < rows; r++) {
        int32x4_t acc = vdupq_n_s32(0);
        int32_t e = 0, s = ec_sparse_bias(q, r);
        for (; e + 8 <= per_row; e += 8, v += 8) {
            const uint32_t pb = (uint32_t)pos[e >> 2] | (uint32_t)pos[(e >> 2) + 1] << 8;
            int32_t c[8];
            for (int32_t t = 0; t < 8; t++) c[t] = 4 * ((e + t) >> shift) + (int32_t)((pb >> (2 * t)) & 3u);
            acc = ec_sparse_mac8(acc, EC_SPARSE_LANES8(x, c), v);
        }
        for (; e < per_row; e++) {
            const int32_t p = (pos[e >> 2] >> ((e & 3) * 2)) & 3;
            s += (int32_t)*v++ * x[4 * (e >> shift) + p];
        }
        pos += row_bytes;
        y[r] = ec_sparse_out(q, r, (int32_t)((uint32_t)s + (uint32_t)vaddvq_s32(acc)));
    }
}

#define EC_SPARSE_NEON_ROWS_C ec_sparse_neon_rows_c
#define EC_SPARSE_NEON_ROWS_D ec_sparse_neon_rows_d
#define EC_SPARSE_NEON_ROWS_B ec_sparse_neon_rows_b
#define EC_SPARSE_NEON_ROWS_N ec_sparse_neon_rows_n
#else   /* not arm64: the reference cores */
#define EC_SPARSE_NEON_ROWS_C ec_sparse_rows_c
#define EC_SPARSE_NEON_ROWS_D ec_sparse_rows_d
#define EC_SPARSE_NEON_ROWS_B ec_sparse_rows_b
#define EC_SPARSE_NEON_ROWS_N ec_sparse_rows_n
#endif

#endif /* EC_SPARSE_NEON_H */
