/* edgec kernels: the host cores of the sparse kernels (kernels/opt/ec_*_s8sp{c,b}.c; formats in
 * ec_sparse.h). Same arguments and results as ec_sparse.h's reference cores, bit for bit.
 *
 * The dense opt kernels run ~12 int8 MACs per cycle on SSE2 hosts, so at 90 % sparsity a sparse kernel
 * must retire a non-zero in well under a cycle: a scalar gather-multiply-add (three loads per entry)
 * does not (measured ~1.3 cycles per non-zero, slower than dense). On x86-64 (SSE2 is baseline) the
 * CSR core gathers eight inputs into int16 lanes (a 16-bit load + PINSRW each) and multiplies them with
 * the eight widened values in one PMADDWD; the block core loads a block's 4 / 8 / 16 inputs and values
 * at once (narrower blocks are slower than the dense kernel here: the compiler does not pick them for
 * this variant, sparse_weights.BLOCK_COLUMNS). The delta and N:M formats have no opt kernel (a delta decode is a serial prefix sum, slower than the dense SIMD
 * kernel), so the compiler does not use them on targets whose sparse variant is opt. Without SSE2 the
 * reference cores run. */
#ifndef EC_SPARSE_OPT_H
#define EC_SPARSE_OPT_H

#include "ec_sparse.h"

#if defined(__SSE2__)
#include <emmintrin.h>

EC_INLINE int32_t ec_sparse_hsum(__m128i a) {
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0x4E));
    a = _mm_add_epi32(a, _mm_shuffle_epi32(a, 0xB1));
    return _mm_cvtsi128_si32(a);
}

/* 8 int8 values at v sign-extended to int16 lanes */
EC_INLINE __m128i ec_sparse_widen8(const int8_t *v) {
    const __m128i w = _mm_loadl_epi64((const __m128i *)(const void *)v);
    return _mm_srai_epi16(_mm_unpacklo_epi8(w, w), 8);
}

/* 4 int8 values at v in int16 lanes 0-3 (lanes 4-7 zero) */
EC_INLINE __m128i ec_sparse_widen4(const int8_t *v) {
    int32_t t;
    memcpy(&t, v, 4);
    const __m128i w = _mm_cvtsi32_si128(t);
    return _mm_srai_epi16(_mm_unpacklo_epi8(w, w), 8);
}

EC_INLINE int16_t ec_sparse_rd16(const int8_t *p) {
    int16_t t;
    memcpy(&t, p, 2);
    return t;
}

/* x[ix[0..7]] as int16 lanes, every ix >= 1: the 16-bit word ending at x[i] holds it in its high byte
 * (one load + PINSRW per input, no read outside x), and an arithmetic shift right by 8 sign-extends. */
/* ec_sparse_out with ec_requantize as one 64-bit multiply-add-shift (ec_opt.h's ec_opt_requant1, the
 * constants derived per row: ~3x fewer instructions, which matters at a few dozen entries per row). */
EC_INLINE int8_t ec_sparse_opt_out(const ec_sparse_rq_t *q, int32_t r, int32_t acc) {
    const int32_t m = q->mult[r], sh = q->shift[r];
    if (m == INT32_MIN) return ec_sparse_out(q, r, acc);
    const int32_t e = sh > 0 ? 0 : -sh;
    int64_t v = (int64_t)(int32_t)((uint32_t)acc << (sh > 0 ? sh : 0)) * m + ((int64_t)1 << 30);
    if (e > 0) v += ((int64_t)1 << (30 + e)) - (int64_t)(((uint64_t)v >> 32) & ((uint64_t)1 << 31));
    const int32_t y = (int32_t)(v >> (31 + e)) + q->out_zp;
    return (int8_t)ec_min_i32(ec_max_i32(y, q->act_min), q->act_max);
}

#define EC_SPARSE_GATHER8(x, ix)                                                                      \
    _mm_srai_epi16(_mm_insert_epi16(_mm_insert_epi16(_mm_insert_epi16(_mm_insert_epi16(               \
    _mm_insert_epi16(_mm_insert_epi16(_mm_insert_epi16(                                               \
    _mm_cvtsi32_si128((uint16_t)ec_sparse_rd16((x) + ((ix)[0] - 1))), ec_sparse_rd16((x) + ((ix)[1] - 1)), 1), \
    ec_sparse_rd16((x) + ((ix)[2] - 1)), 2), ec_sparse_rd16((x) + ((ix)[3] - 1)), 3),                 \
    ec_sparse_rd16((x) + ((ix)[4] - 1)), 4), ec_sparse_rd16((x) + ((ix)[5] - 1)), 5),                 \
    ec_sparse_rd16((x) + ((ix)[6] - 1)), 6), ec_sparse_rd16((x) + ((ix)[7] - 1)), 7), 8)

/* the same for ix[0..3], lanes 4-7 zero */
#define EC_SPARSE_GATHER4(x, ix)                                                                      \
    _mm_srai_epi16(_mm_insert_epi16(_mm_insert_epi16(_mm_insert_epi16(                                \
    _mm_cvtsi32_si128((uint16_t)ec_sparse_rd16((x) + ((ix)[0] - 1))), ec_sparse_rd16((x) + ((ix)[1] - 1)), 1), \
    ec_sparse_rd16((x) + ((ix)[2] - 1)), 2), ec_sparse_rd16((x) + ((ix)[3] - 1)), 3), 8)

/* Columns ascend within a row, so only a row's first entry can be column 0: it is added on its own. */
EC_NOINLINE void ec_sparse_opt_rows_c(const ec_sparse_t *sp, int32_t rows, int32_t k, const int8_t *v,
                                      const int8_t *x, const ec_sparse_rq_t *q, int8_t *y) {
    const uint8_t *i8 = (const uint8_t *)sp->index;
    const uint16_t *i16 = (const uint16_t *)sp->index;
    const int narrow = sp->index_bits == 8;
    (void)k;
    for (int32_t r = 0; r < rows; r++) {
        const int32_t n = ec_sparse_count(sp, r);
        __m128i acc = _mm_setzero_si128();
        int32_t j = 0, s = ec_sparse_bias(q, r);
        if (n > 0 && (narrow ? i8[0] : i16[0]) == 0) s += (int32_t)v[j++] * x[0];
        if (narrow) {
            for (; j + 8 <= n; j += 8)
                acc = _mm_add_epi32(acc, _mm_madd_epi16(EC_SPARSE_GATHER8(x, i8 + j), ec_sparse_widen8(v + j)));
            if (j + 4 <= n) {
                acc = _mm_add_epi32(acc, _mm_madd_epi16(EC_SPARSE_GATHER4(x, i8 + j), ec_sparse_widen4(v + j)));
                j += 4;
            }
            for (; j < n; j++) s += (int32_t)v[j] * x[i8[j]];
            i8 += n;
        } else {
            for (; j + 8 <= n; j += 8)
                acc = _mm_add_epi32(acc, _mm_madd_epi16(EC_SPARSE_GATHER8(x, i16 + j), ec_sparse_widen8(v + j)));
            if (j + 4 <= n) {
                acc = _mm_add_epi32(acc, _mm_madd_epi16(EC_SPARSE_GATHER4(x, i16 + j), ec_sparse_widen4(v + j)));
                j += 4;
            }
            for (; j < n; j++) s += (int32_t)v[j] * x[i16[j]];
            i16 += n;
        }
        v += n;
        y[r] = ec_sparse_opt_out(q, r, (int32_t)((uint32_t)s + (uint32_t)ec_sparse_hsum(acc)));
    }
}

/* The column (in blocks) of block j: uint8 or uint16 indices (narrow a literal at the call sites). */
EC_INLINE int32_t ec_sparse_col(const void *index, int32_t j, const int narrow) {
    return narrow ? (int32_t)((const uint8_t *)index)[j] : (int32_t)((const uint16_t *)index)[j];
}

/* One row of a block row with C (a literal: 4, 8 or 16) columns, its blocks' values `stride` bytes
 * apart: all C inputs and values of a block per load (C = 4: two blocks per PMADDWD). */
EC_INLINE int32_t ec_sparse_opt_b_row(const void *index, int32_t n, const int8_t *vb, int32_t stride,
                                      const int8_t *x, int32_t s, const int32_t C, const int narrow) {
    __m128i acc = _mm_setzero_si128();
    int32_t j = 0;
    if (C == 4) {   /* two blocks per PMADDWD */
        for (; j + 2 <= n; j += 2, vb += 2 * stride) {
            const int8_t *x0 = x + 4 * ec_sparse_col(index, j, narrow), *x1 = x + 4 * ec_sparse_col(index, j + 1, narrow);
            int32_t a, b, c, d;
            memcpy(&a, x0, 4);
            memcpy(&b, x1, 4);
            memcpy(&c, vb, 4);
            memcpy(&d, vb + stride, 4);
            const __m128i xv = _mm_unpacklo_epi32(_mm_cvtsi32_si128(a), _mm_cvtsi32_si128(b));
            const __m128i vv = _mm_unpacklo_epi32(_mm_cvtsi32_si128(c), _mm_cvtsi32_si128(d));
            acc = _mm_add_epi32(acc, _mm_madd_epi16(_mm_srai_epi16(_mm_unpacklo_epi8(xv, xv), 8),
                                                    _mm_srai_epi16(_mm_unpacklo_epi8(vv, vv), 8)));
        }
    }
    for (; j < n; j++, vb += stride) {
        const int8_t *xb = x + (size_t)ec_sparse_col(index, j, narrow) * (size_t)C;
        if (C == 4) {
            acc = _mm_add_epi32(acc, _mm_madd_epi16(ec_sparse_widen4(xb), ec_sparse_widen4(vb)));
        } else {
            for (int32_t c = 0; c < C; c += 8)
                acc = _mm_add_epi32(acc, _mm_madd_epi16(ec_sparse_widen8(xb + c), ec_sparse_widen8(vb + c)));
        }
    }
    return (int32_t)((uint32_t)s + (uint32_t)ec_sparse_hsum(acc));
}

EC_INLINE void ec_sparse_opt_b_rows(const ec_sparse_t *sp, int32_t rows, const int8_t *v, const int8_t *x,
                                    const ec_sparse_rq_t *q, int8_t *y, const int32_t C, const int narrow) {
    const int32_t R = sp->block_r, RC = R * C;
    const uint8_t *index = (const uint8_t *)sp->index;
    for (int32_t r0 = 0, br = 0; r0 < rows; r0 += R, br++) {
        const int32_t n = ec_sparse_count(sp, br), rr = rows - r0 < R ? rows - r0 : R;
        for (int32_t r = 0; r < rr; r++) {
            const int32_t s = ec_sparse_opt_b_row(index, n, v + (size_t)r * (size_t)C, RC, x,
                                                  ec_sparse_bias(q, r0 + r), C, narrow);
            y[r0 + r] = ec_sparse_opt_out(q, r0 + r, s);
        }
        v += (size_t)n * (size_t)RC;
        index += (size_t)n * (narrow ? 1u : 2u);
    }
}

/* Block columns of 4, 8 or 16 (the compiler uses no other width with this variant: BLOCK_COLUMNS in
 * sparse_weights.py; the reference core covers them all the same). */
EC_NOINLINE void ec_sparse_opt_rows_b(const ec_sparse_t *sp, int32_t rows, int32_t k, const int8_t *v,
                                      const int8_t *x, const ec_sparse_rq_t *q, int8_t *y) {
    const int narrow = sp->index_bits == 8;
    switch (sp->block_c) {
    case 4:
        if (narrow) ec_sparse_opt_b_rows(sp, rows, v, x, q, y, 4, 1);
        else ec_sparse_opt_b_rows(sp, rows, v, x, q, y, 4, 0);
        break;
    case 8:
        if (narrow) ec_sparse_opt_b_rows(sp, rows, v, x, q, y, 8, 1);
        else ec_sparse_opt_b_rows(sp, rows, v, x, q, y, 8, 0);
        break;
    case 16:
        if (narrow) ec_sparse_opt_b_rows(sp, rows, v, x, q, y, 16, 1);
        else ec_sparse_opt_b_rows(sp, rows, v, x, q, y, 16, 0);
        break;
    default: ec_sparse_rows_b(sp, rows, k, v, x, q, y); break;
    }
}
#define EC_SPARSE_OPT_ROWS_C ec_sparse_opt_rows_c
#define EC_SPARSE_OPT_ROWS_B ec_sparse_opt_rows_b
#else   /* no SSE2: the reference cores */
#define EC_SPARSE_OPT_ROWS_C ec_sparse_rows_c
#define EC_SPARSE_OPT_ROWS_B ec_sparse_rows_b
#endif

#endif /* EC_SPARSE_OPT_H */
