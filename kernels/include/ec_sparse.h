/* edgec kernels: int8 FULLY_CONNECTED and CONV_2D with compressed sparse weights that skip the zeros.
 *
 * Storage (compiler/edgec/backends/c/sparse_weights.py, which chooses it per tensor and says why): the
 * weight as a matrix of `rows` output channels by K (FC: in_features; CONV_2D: k_h * k_w * in_c in
 * (ky, kx, ic) order), one kernel per format:
 *   ..._s8spc  CSR: counts[r] entries per row, index[] their absolute columns (uint8 / uint16 by
 *              index_bits 8 / 16), w[] their values.
 *   ..._s8spd  delta: counts[r] entries per row; entry e of a row sits at column
 *              pos(e) = pos(e - 1) + 1 + field(e) (pos(-1) = -1), fields of index_bits bits packed
 *              32 / index_bits per uint32 word from bit 0 up, every row starting a new word; fillers
 *              (value 0) bridge long gaps, so every entry is one multiply-add.
 *   ..._s8spb  block CSR: block_r x block_c blocks (both <= 16, block_c divides K); counts[R] blocks
 *              per block row R (rows R * block_r ...), index[] each block's column in blocks
 *              (uint8 / uint16), w[] block_r * block_c values per block, row by row; a partial last
 *              block row stores zeros for its missing rows.
 *   ..._s8spn  N:4: every group of 4 row elements keeps block_r = N (1 or 2) values; index[] holds their
 *              2-bit in-group positions, 4 per byte from bit 0 up, each row padded to a whole byte;
 *              counts unused (NULL).
 * counts[] are uint8 or uint16 (count_bytes 1 / 2).
 *
 * Arithmetic: exactly ec_fully_connected_s8 / ec_conv2d_s8 (TFLite Micro) -- the int32 sum of
 * w * (x - in_zp) plus bias, ec_requantize, + out_zp, clamp -- computed as bias' + sum w * x, where the
 * compiler folded bias' = bias - in_zp * sum(w) (mod 2^32); the kernels' `bias` argument is bias' (NULL
 * when it is all zero). Conv taps in the padding read x = in_zp, whose term bias' already cancels
 * (TFLite skips them). CONV_2D scratch: k_h * k_w * in_c bytes (rounded up to 4) for the input patch of
 * one output pixel; 1x1 filters read the input in place (none). FC: no scratch.
 *
 * Variants: kernels/ref/ (portable, every format), kernels/cmsis/ (Cortex-M DSP: dual 16-bit MACs on
 * pairs of gathered inputs, whole-word block loads; ec_sparse_cmsis.h), kernels/neon/ (arm64: inputs
 * gathered into vector lanes, SDOT / SMLAL; ec_sparse_neon.h), kernels/opt/ (hosts: CSR and block
 * only, SSE2 gathers on x86-64; ec_sparse_opt.h). */
#ifndef EC_SPARSE_H
#define EC_SPARSE_H

#include "ec_conv.h"

typedef struct {
    int32_t count_bytes;             /* width of counts[]: 1 (uint8) or 2 (uint16); 0 for N:M */
    const void *counts;              /* entries per row (c, d), blocks per block row (b); NULL for n */
    const void *index;               /* c, b: uint8 / uint16; d: uint32 words; n: uint8 */
    int32_t index_bits;              /* c, b: 8 | 16; d: 2, 3, 4, 5, 6 or 8; n: 2 */
    int32_t block_r, block_c;        /* b: block shape; n: N and M (= 4); else 1, 1 */
} ec_sparse_t;

typedef struct {
    ec_fc_s8_params_t fc;            /* in_zp is folded into the bias: unused */
    ec_sparse_t sp;
} ec_fc_s8sp_params_t;

typedef struct {
    ec_conv_s8_params_t conv;        /* in_zp fills the padding taps of the patch */
    ec_sparse_t sp;
} ec_conv_s8sp_params_t;

/* the output stage of one matrix-vector product: y[r] = clamp(requant_r(acc_r) + out_zp) */
typedef struct {
    const int32_t *bias;             /* folded bias' (may be NULL) */
    const int32_t *mult, *shift;
    int32_t out_zp, act_min, act_max;
} ec_sparse_rq_t;

EC_INLINE ec_sparse_rq_t ec_sparse_fc_rq(const ec_fc_s8_params_t *p, const int32_t *bias) {
    ec_sparse_rq_t q = {bias, p->mult, p->shift, p->out_zp, p->act_min, p->act_max};
    return q;
}

EC_INLINE ec_sparse_rq_t ec_sparse_conv_rq(const ec_conv_s8_params_t *p, const int32_t *bias) {
    ec_sparse_rq_t q = {bias, p->mult, p->shift, p->out_zp, p->act_min, p->act_max};
    return q;
}

EC_INLINE int32_t ec_sparse_count(const ec_sparse_t *sp, int32_t r) {
    return sp->count_bytes == 1 ? (int32_t)((const uint8_t *)sp->counts)[r] : (int32_t)((const uint16_t *)sp->counts)[r];
}

EC_INLINE int32_t ec_sparse_bias(const ec_sparse_rq_t *q, int32_t r) { return q->bias ? q->bias[r] : 0; }

EC_INLINE int8_t ec_sparse_out(const ec_sparse_rq_t *q, int32_t r, int32_t acc) {
    return (int8_t)ec_clamp_i32(ec_requantize(acc, q->mult[r], q->shift[r]) + q->out_zp, q->act_min, q->act_max);
}

/* The K = k_h * k_w * in_c inputs of output pixel (oy, ox) in (ky, kx, ic) order: a pointer into `in`
 * for 1x1 filters (never padded), else copied into buf with taps outside the image set to in_zp. */
EC_INLINE const int8_t *ec_sparse_patch(const ec_conv_s8_params_t *p, const int8_t *in, int32_t oy, int32_t ox,
                                        int8_t *buf) {
    const int32_t in_c = p->in_c, iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
    if (p->k_h == 1 && p->k_w == 1) return in + ((size_t)iy0 * (size_t)p->in_w + (size_t)ix0) * (size_t)in_c;
    int32_t kx_lo, kx_hi;
    ec_tap_range(ix0, p->dil_w, p->in_w, p->k_w, &kx_lo, &kx_hi);
    const size_t tap = (size_t)in_c;
    for (int32_t ky = 0; ky < p->k_h; ky++) {
        const int32_t iy = iy0 + ky * p->dil_h;
        int8_t *dst = buf + (size_t)ky * (size_t)p->k_w * tap;
        if (iy < 0 || iy >= p->in_h || kx_hi <= kx_lo) {
            memset(dst, (uint8_t)p->in_zp, (size_t)p->k_w * tap);
            continue;
        }
        const int8_t *row = in + (size_t)iy * (size_t)p->in_w * tap;
        if (kx_lo > 0) memset(dst, (uint8_t)p->in_zp, (size_t)kx_lo * tap);
        if (p->dil_w == 1) {
            memcpy(dst + (size_t)kx_lo * tap, row + (size_t)(ix0 + kx_lo) * tap, (size_t)(kx_hi - kx_lo) * tap);
        } else {
            for (int32_t kx = kx_lo; kx < kx_hi; kx++)
                memcpy(dst + (size_t)kx * tap, row + (size_t)(ix0 + kx * p->dil_w) * tap, tap);
        }
        if (kx_hi < p->k_w) memset(dst + (size_t)kx_hi * tap, (uint8_t)p->in_zp, (size_t)(p->k_w - kx_hi) * tap);
    }
    return buf;
}

/* ------------------------------------------------------------------------------------------------
 * Reference cores: y[r] for the `rows` output channels of one input vector x (K raw int8 values).
 * kernels/ref/ uses them; the ISA variants fall back to them where they have no fast path. */

EC_NOINLINE void ec_sparse_rows_c(const ec_sparse_t *sp, int32_t rows, int32_t k, const int8_t *v, const int8_t *x,
                                  const ec_sparse_rq_t *q, int8_t *y) {
    const uint8_t *i8 = (const uint8_t *)sp->index;
    const uint16_t *i16 = (const uint16_t *)sp->index;
    (void)k;
    for (int32_t r = 0; r < rows; r++) {
        const int32_t n = ec_sparse_count(sp, r);
        int32_t acc = ec_sparse_bias(q, r);
        if (sp->index_bits == 8) {
            for (int32_t j = 0; j < n; j++) acc += (int32_t)v[j] * x[i8[j]];
            i8 += n;
        } else {
            for (int32_t j = 0; j < n; j++) acc += (int32_t)v[j] * x[i16[j]];
            i16 += n;
        }
        v += n;
        y[r] = ec_sparse_out(q, r, acc);
    }
}

EC_NOINLINE void ec_sparse_rows_d(const ec_sparse_t *sp, int32_t rows, int32_t k, const int8_t *v, const int8_t *x,
                                  const ec_sparse_rq_t *q, int8_t *y) {
    const uint32_t *wd = (const uint32_t *)sp->index;
    const uint32_t bits = (uint32_t)sp->index_bits, mask = (1u << bits) - 1u;
    const int32_t per_word = 32 / (int32_t)bits;
    (void)k;
    for (int32_t r = 0; r < rows; r++) {
        int32_t n = ec_sparse_count(sp, r);
        int32_t acc = ec_sparse_bias(q, r);
        const int8_t *xp = x;   /* the column after the previous entry */
        while (n > 0) {
            uint32_t word = *wd++;
            const int32_t m = n < per_word ? n : per_word;
            n -= m;
            for (int32_t f = 0; f < m; f++) {
                xp += word & mask;
                word >>= bits;
                acc += (int32_t)*v++ * *xp++;
            }
        }
        y[r] = ec_sparse_out(q, r, acc);
    }
}

EC_NOINLINE void ec_sparse_rows_b(const ec_sparse_t *sp, int32_t rows, int32_t k, const int8_t *v, const int8_t *x,
                                  const ec_sparse_rq_t *q, int8_t *y) {
    const int32_t R = sp->block_r, C = sp->block_c, RC = R * C;
    const uint8_t *i8 = (const uint8_t *)sp->index;
    const uint16_t *i16 = (const uint16_t *)sp->index;
    (void)k;
    for (int32_t r0 = 0, br = 0; r0 < rows; r0 += R, br++) {
        const int32_t n = ec_sparse_count(sp, br), rr = rows - r0 < R ? rows - r0 : R;
        int32_t acc[16];
        for (int32_t r = 0; r < rr; r++) acc[r] = ec_sparse_bias(q, r0 + r);
        for (int32_t j = 0; j < n; j++) {
            const int8_t *xb = x + (size_t)(sp->index_bits == 8 ? i8[j] : i16[j]) * (size_t)C;
            for (int32_t r = 0; r < rr; r++) {
                const int8_t *vb = v + (size_t)r * (size_t)C;
                for (int32_t c = 0; c < C; c++) acc[r] += (int32_t)vb[c] * xb[c];
            }
            v += RC;
        }
        i8 += n;
        i16 += n;
        for (int32_t r = 0; r < rr; r++) y[r0 + r] = ec_sparse_out(q, r0 + r, acc[r]);
    }
}

EC_NOINLINE void ec_sparse_rows_n(const ec_sparse_t *sp, int32_t rows, int32_t k, const int8_t *v, const int8_t *x,
                                  const ec_sparse_rq_t *q, int8_t *y) {
    const int32_t N = sp->block_r, groups = (k + 3) / 4, per_row = groups * N, row_bytes = (per_row + 3) / 4;
    const uint8_t *pos = (const uint8_t *)sp->index;
    for (int32_t r = 0; r < rows; r++) {
        int32_t acc = ec_sparse_bias(q, r);
        for (int32_t g = 0, e = 0; g < groups; g++) {
            for (int32_t j = 0; j < N; j++, e++) {
                const int32_t p = (pos[e >> 2] >> ((e & 3) * 2)) & 3;
                acc += (int32_t)v[e] * x[4 * g + p];
            }
        }
        v += per_row;
        pos += row_bytes;
        y[r] = ec_sparse_out(q, r, acc);
    }
}

/* fully unroll the next loop (a constant trip count): gcc -O2 does not by itself */
#if defined(__GNUC__) && (__GNUC__ >= 8 || defined(__clang__))
#define EC_SPARSE_UNROLL _Pragma("GCC unroll 16")
#else
#define EC_SPARSE_UNROLL
#endif

/* Delta rows with a constant field width and output stage (each call site passes literals, for the ISA
 * variants): a word's fields unroll, each one shift-and-mask (UBFX); entry f of a word sits at
 * xp + (fields 0..f summed) + f, the + f folded into the load's offset. */
EC_INLINE void ec_sparse_d_rows_fixed(const ec_sparse_t *sp, int32_t rows, const int8_t *v, const int8_t *x,
                                      const ec_sparse_rq_t *q, int8_t *y, const uint32_t bits,
                                      int8_t (*out)(const ec_sparse_rq_t *, int32_t, int32_t)) {
    const uint32_t mask = (1u << bits) - 1u;
    const int32_t per_word = (int32_t)(32u / bits);
    const uint32_t *wd = (const uint32_t *)sp->index;
    for (int32_t r = 0; r < rows; r++) {
        int32_t n = ec_sparse_count(sp, r);
        int32_t acc = ec_sparse_bias(q, r);
        const int8_t *xp = x;
        for (; n >= per_word; n -= per_word, v += per_word, xp += per_word) {
            const uint32_t word = *wd++;
            EC_SPARSE_UNROLL
            for (int32_t f = 0; f < per_word; f++) {
                xp += (word >> ((uint32_t)f * bits)) & mask;
                acc += (int32_t)v[f] * xp[f];
            }
        }
        if (n > 0) {
            uint32_t word = *wd++;
            for (; n > 0; n--) {
                xp += word & mask;
                word >>= bits;
                acc += (int32_t)*v++ * *xp++;
            }
        }
        y[r] = out(q, r, acc);
    }
}

void ec_fully_connected_s8spc(const ec_fc_s8sp_params_t *p, const int8_t *in, const int8_t *w,
                              const int32_t *bias, int8_t *out, void *scratch);
void ec_fully_connected_s8spd(const ec_fc_s8sp_params_t *p, const int8_t *in, const int8_t *w,
                              const int32_t *bias, int8_t *out, void *scratch);
void ec_fully_connected_s8spb(const ec_fc_s8sp_params_t *p, const int8_t *in, const int8_t *w,
                              const int32_t *bias, int8_t *out, void *scratch);
void ec_fully_connected_s8spn(const ec_fc_s8sp_params_t *p, const int8_t *in, const int8_t *w,
                              const int32_t *bias, int8_t *out, void *scratch);
void ec_conv2d_s8spc(const ec_conv_s8sp_params_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                     int8_t *out, void *scratch);
void ec_conv2d_s8spd(const ec_conv_s8sp_params_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                     int8_t *out, void *scratch);
void ec_conv2d_s8spb(const ec_conv_s8sp_params_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                     int8_t *out, void *scratch);
void ec_conv2d_s8spn(const ec_conv_s8sp_params_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                     int8_t *out, void *scratch);

/* The kernels' loops over batch rows (FC) and output pixels (conv), around a rows core of the
 * signature above. */
#define EC_SPARSE_FC(core, p, in, w, bias, out)                                                         \
    do {                                                                                                \
        const ec_sparse_rq_t q_ = ec_sparse_fc_rq(&(p)->fc, bias);                                      \
        const int32_t k_ = (p)->fc.in_features, o_ = (p)->fc.out_features;                              \
        for (int32_t b_ = 0; b_ < (p)->fc.batches; b_++)                                                \
            core(&(p)->sp, o_, k_, w, (in) + (size_t)b_ * (size_t)k_, &q_, (out) + (size_t)b_ * (size_t)o_); \
    } while (0)

#define EC_SPARSE_CONV(core, p, in, w, bias, out, scratch)                                               \
    do {                                                                                                \
        const ec_conv_s8_params_t *c_ = &(p)->conv;                                                     \
        const ec_sparse_rq_t q_ = ec_sparse_conv_rq(c_, bias);                                          \
        const int32_t k_ = c_->k_h * c_->k_w * c_->in_c;                                                \
        int8_t *o_ = (out);                                                                             \
        for (int32_t oy_ = 0; oy_ < c_->out_h; oy_++)                                                   \
            for (int32_t ox_ = 0; ox_ < c_->out_w; ox_++, o_ += c_->out_c)                              \
                core(&(p)->sp, c_->out_c, k_, w, ec_sparse_patch(c_, in, oy_, ox_, (int8_t *)(scratch)), &q_, o_); \
    } while (0)

#endif /* EC_SPARSE_H */
