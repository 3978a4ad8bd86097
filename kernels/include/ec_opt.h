/* edgec kernels: the portable optimized variant (kernels/opt/) -- weight layouts and shared helpers.
 *
 * The opt kernels keep the ref kernels' names, prototypes and parameter structs (ec_conv.h), but the
 * compiler stores their weights (and the depthwise / float biases) re-laid out at compile time
 * (compiler/edgec/ir/ops/conv.py, when cx.variant(kernel) == "opt") so that every hot loop is a
 * fixed-shape loop that gcc and clang auto-vectorize at -O2 and -O3: plain C99, no intrinsics.
 *
 *   int8 CONV_2D, FULLY_CONNECTED  int16 rows w[ceil4(out_c)][ceil16(K)], K = k_h * k_w * in_c in (ky, kx,
 *                    ic) order (FC: in_features), the padding zero; bias (may be NULL) and mult/shift as
 *                    for ref. Each output is an int16 dot product of a row with the gathered patch
 *                    x - in_zp (taps in the padding: 0, the terms the ref kernel skips): ec_opt_dot4_s16.
 *   int8 DEPTHWISE   per depth multiplier m, the input channels in blocks of 16 (a last block of <= 8
 *                    channels: 8 wide, ec_opt_block_width), w[m][block][k_h][k_w][width] int8, zero
 *                    padded; bias[m * in_c_pad + ic] = bias - in_zp * sum(w) of output channel
 *                    ic * depth_mult + m (never NULL; in_c_pad = ec_opt_padded(in_c)). The innermost loop
 *                    runs over a block's contiguous channels on raw int8 inputs; taps in the padding use
 *                    x = in_zp, cancelling their share of the folded zero point.
 *   float32          blocks of 16 / 8 output channels as above, w[block][K][width] (conv, FC) or
 *                    w[m][block][k_h][k_w][width] (depthwise); bias NULL or padded likewise. Each output
 *                    sums the same products in the same order as the ref kernel.
 *
 * int8 results equal the ref kernels' (and TFLite Micro's) bit for bit: the same int32 sums (wrapping
 * modulo 2^32 like the ref kernels' accumulators), then ec_requantize's arithmetic rewritten as one
 * 64-bit multiply-add-shift with per-channel constants (ec_opt_requant_t). int16 weights double the
 * flash of int8 conv / FC weights: the variant is meant for application cores and hosts (targets list
 * it after their hand-written SIMD variants). No kernel needs scratch; conv / FC use ~6 KB of stack
 * (EC_OPT_PATCH int16 + one requantization table), the others < 1 KB. */
#ifndef EC_OPT_H
#define EC_OPT_H

#include "ec_common.h"

#define EC_OPT_BLOCK 16

/* Width of the channel block starting at channel `start` of `n`: 16, or 8 for a last block of <= 8. */
EC_INLINE int32_t ec_opt_block_width(int32_t n, int32_t start) {
    return n - start > 8 ? EC_OPT_BLOCK : 8;
}

/* Channels after padding the last block to its width. */
EC_INLINE int32_t ec_opt_padded(int32_t n) {
    int32_t full = n / EC_OPT_BLOCK * EC_OPT_BLOCK;
    return n == full ? n : full + ec_opt_block_width(n, full);
}

EC_INLINE int32_t ec_opt_ceil16(int32_t n) { return (n + 15) & ~15; }

/* A fixed 16- or 8-iteration loop over a block's channels. gcc -O3 and clang fully unroll such loops
 * before their loop vectorizers run; gcc -O3 then vectorizes the enclosing loop instead (16 separate
 * reductions, ~1.4x slower than -O2) and clang leaves the unrolled code scalar (~1.4x slower): keep it
 * a loop for the vectorizer. */
#if defined(__clang__)
#define EC_OPT_CHANNEL_LOOP _Pragma("clang loop vectorize(enable) unroll(disable)")
#elif defined(__GNUC__) && __GNUC__ >= 8
#define EC_OPT_CHANNEL_LOOP _Pragma("GCC unroll 1")
#else
#define EC_OPT_CHANNEL_LOOP
#endif

/* The taps k in [*lo, *hi) whose position start + k * dil lies in [0, size) (ref's ec_tap_range). */
EC_INLINE void ec_opt_tap_range(int32_t start, int32_t dil, int32_t size, int32_t k, int32_t *lo, int32_t *hi) {
    int32_t a, b;
    if (dil == 1) {
        a = start < 0 ? -start : 0;
        b = size - start;
    } else {
        a = start < 0 ? (-start + dil - 1) / dil : 0;
        b = size - start > 0 ? (size - start + dil - 1) / dil : 0;
    }
    *lo = a < k ? a : k;
    *hi = b < k ? (b > *lo ? b : *lo) : k;
}

/* clang's cost model picks 4 lanes for the int16 dot product (half-empty PMADDWDs, ~2x slower than gcc);
 * 16 lanes and no interleaving match gcc's code. */
#if defined(__clang__)
#define EC_OPT_DOT_LOOP _Pragma("clang loop vectorize_width(16) interleave_count(1)")
#else
#define EC_OPT_DOT_LOOP
#endif

/* int16 elements of the conv / FC kernels' stack patch buffer (a multiple of 16); longer patches are
 * processed in chunks of this many. */
#ifndef EC_OPT_PATCH
#define EC_OPT_PATCH 2048
#endif

/* d[i] = x[i] - zp, i < n: 16 at a time (a fixed-length loop vectorizes at -O2), then the rest. */
EC_INLINE void ec_opt_widen_s8(const int8_t *x, int32_t zp, int32_t n, int16_t *d) {
    int32_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int32_t j = 0; j < 16; j++) d[i + j] = (int16_t)(x[i + j] - zp);
    for (; i < n; i++) d[i] = (int16_t)(x[i] - zp);
}

/* acc[r] += sum_k x[k] * w[r * stride + k], r < 4, k < n (n a multiple of 16): int16 x int16 products
 * summed in int32, the reduction gcc vectorizes as a widening dot product (x86 PMADDWD). The trip
 * count written as (n >> 4) * 16 lets gcc -O2 (very-cheap cost model) vectorize with no epilogue. */
EC_INLINE void ec_opt_dot4_s16(const int16_t *x, const int16_t *w, size_t stride, int32_t n, int32_t *acc) {
    const int16_t *w0 = w, *w1 = w + stride, *w2 = w + 2 * stride, *w3 = w + 3 * stride;
    int32_t s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3];
    const int32_t n16 = (n >> 4) * 16;
    EC_OPT_DOT_LOOP
    for (int32_t k = 0; k < n16; k++) {
        const int32_t xv = x[k];
        s0 += xv * w0[k];
        s1 += xv * w1[k];
        s2 += xv * w2[k];
        s3 += xv * w3[k];
    }
    acc[0] = s0;
    acc[1] = s1;
    acc[2] = s2;
    acc[3] = s3;
}

/* Requantization with per-channel constants prepared once per call or block, equal to ec_requantize for
 * every input. With a = x << left, v = a * mult + 2^30 and e = right shift (-shift when shift <= 0):
 *   SaturatingRoundingDoublingHighMul(a, mult) = floor(v / 2^31) unless a == mult == INT32_MIN,
 *   RoundingDivideByPOT(r, e) = floor((r + 2^(e-1) - (r < 0)) / 2^e) for e > 0 (r for e = 0),
 *   floor((floor(v / 2^31) + c) / 2^e) = floor((v + c * 2^31) / 2^(31 + e)), and r < 0 <=> v < 0,
 * so out = (v + add - (v < 0 ? sub : 0)) >> (31 + e), the select written as bit arithmetic on v's sign
 * ((v >> 32) & sub, sub = 2^31 or 0) so that neither compiler turns it into a data-dependent branch. A channel with an INT32_MIN multiplier (never
 * produced by QuantizeMultiplier for a positive scale) sends its whole table to ec_requantize. */
#define EC_OPT_RQ 64   /* channels per table */

typedef struct {
    int64_t add[EC_OPT_RQ];                /* 2^(30+e) for e > 0, else 0 */
    uint64_t sub[EC_OPT_RQ];               /* 2^31 for e > 0, else 0 */
    int32_t mult[EC_OPT_RQ], left[EC_OPT_RQ], right[EC_OPT_RQ];
    int32_t general;                       /* 1: use ec_requantize on mult_src / shift_src */
    const int32_t *mult_src, *shift_src;
    int32_t stride;
} ec_opt_requant_t;

/* The constants of the n <= EC_OPT_RQ channels mult[j * stride], shift[j * stride]. */
EC_INLINE void ec_opt_requant_init(ec_opt_requant_t *q, const int32_t *mult, const int32_t *shift, int32_t stride,
                                   int32_t n) {
    q->general = 0;
    q->mult_src = mult;
    q->shift_src = shift;
    q->stride = stride;
    for (int32_t j = 0; j < n; j++) {
        const size_t k = (size_t)j * (size_t)stride;
        const int32_t e = shift[k] > 0 ? 0 : -shift[k];
        const int64_t half = e > 0 ? (int64_t)1 << (30 + e) : 0;
        q->mult[j] = mult[k];
        q->left[j] = shift[k] > 0 ? shift[k] : 0;
        q->right[j] = 31 + e;
        q->add[j] = half;
        q->sub[j] = e > 0 ? (uint64_t)1 << 31 : 0;
        if (mult[k] == INT32_MIN) q->general = 1;
    }
}

/* ec_requantize(x, mult[j], shift[j]) through channel j's constants (tables without INT32_MIN). */
EC_INLINE int32_t ec_opt_requant1(const ec_opt_requant_t *q, int32_t j, int32_t x) {
    const int32_t a = (int32_t)((uint32_t)x << q->left[j]);
    int64_t v = (int64_t)a * (int64_t)q->mult[j] + ((int64_t)1 << 30);
    v += q->add[j] - (int64_t)(((uint64_t)v >> 32) & q->sub[j]);
    return (int32_t)(v >> q->right[j]);
}

/* out[j * stride] = clamp(out_zp + requant(acc[j])), j < n. */
EC_INLINE void ec_opt_requant_s8(const ec_opt_requant_t *q, const int32_t *acc, int32_t n, int32_t out_zp,
                                 int32_t act_min, int32_t act_max, int8_t *out) {
    const size_t stride = (size_t)q->stride;
    if (q->general) {
        for (int32_t j = 0; j < n; j++) {
            const int32_t y = ec_requantize(acc[j], q->mult_src[(size_t)j * stride], q->shift_src[(size_t)j * stride]);
            out[(size_t)j * stride] = (int8_t)ec_clamp_i32(y + out_zp, act_min, act_max);
        }
        return;
    }
    /* The clamp in a loop of its own: vectorized (compare / select) where the compilers vectorize it, and
     * max-then-min (act_min <= act_max) as MAX/MIN_EXPRs otherwise -- never a data-dependent branch,
     * which ReLU outputs (half of them clamped) would mispredict. */
    int32_t y[EC_OPT_RQ];
    for (int32_t j = 0; j < n; j++) y[j] = ec_opt_requant1(q, j, acc[j]) + out_zp;
    for (int32_t j = 0; j < n; j++) out[(size_t)j * stride] = (int8_t)ec_min_i32(ec_max_i32(y[j], act_min), act_max);
}

#endif /* EC_OPT_H */
