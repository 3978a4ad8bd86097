#include "ec_lowbit_conv.h"

/* DEPTHWISE_CONV_2D, int8 activations, packed low-bit weights (ec_lowbit.h), arm64 NEON.
 *
 * A depthwise row holds only k_h * k_w codes, and the channels a vector holds sit in different rows,
 * so the weights are not used packed: the output channels run in blocks of 8, and each block's
 * k_h * k_w x 8 weights are decoded once per call (through the table, so every scheme and width --
 * int4, int2, ternary, binary, pow2, codebooks -- takes this path) into int16 vectors on the stack,
 * then swept over all output pixels: per tap 8 inputs widened exactly with the zero point applied
 * (vsubl_s8), int16 x int16 -> int32 MACs (vmlal_s16) into two accumulators that start at the bias;
 * requantization is vectorised as in kernels/neon/ec_depthwise_conv2d_s8.c (vqrdmulhq_s32 =
 * SaturatingRoundingDoublingHighMul, vrshlq_s32 after a saturating -1 on negative values =
 * RoundingDivideByPOT). The decode costs C * k_h * k_w table reads per call instead of one per tap per
 * pixel, as the reference loop pays.
 *   depth_mult 1, C >= 8: the block's inputs are 8 contiguous bytes of the pixel; a last partial block
 *                         is recomputed overlapping its neighbour (rewriting identical bytes).
 *   otherwise (depth_mult > 1, or C < 8): 8 consecutive output channels (overlapping as above; with
 *                         C < 8 the last one repeated) read input channels oc / depth_mult, which lie
 *                         in 8 bytes from the block's first one: those 8 bytes are loaded (copied
 *                         when they would run past the end of the input tensor) and permuted into
 *                         lanes with vtbl1_s8.
 * (Measured in the emulator on Cortex-A53, tests/c/test_lowbit_isa.py's depthwise chains: 4.3-4.7x fewer
 * instructions than ref; 13.6x on a 3x3, 32-channel layer.)
 * Kernels of more than EC_DW_TAPS taps (the stack buffer: EC_DW_TAPS * 16 bytes), and non-NEON builds,
 * run the portable loop (ec_depthwise_wN_generic). Bit-exact with kernels/ref/ec_depthwise_conv2d_s8wN.c;
 * no scratch. */

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define EC_DWN_NEON 1
#else
#define EC_DWN_NEON 0
#endif

#define EC_DW_TAPS 64

#if EC_DWN_NEON
/* One block: its 8 output channels (lanes) and their per-lane constants. */
typedef struct {
    int32_t oc[8];
    int32_t bias[8], mult[8], shift[8];
    int8_t idx[8];                   /* gather: lane k reads byte idx[k] of the 8 loaded */
    int16_t w[EC_DW_TAPS][8];        /* w[t][k]: weight of tap t, lane k */
} ec_dw_block_t;

static void ec_dw_setup(const ec_conv_s8wN_params_t *p, const uint8_t *w, const int32_t *bias, ec_dw_block_t *b) {
    const ec_conv_s8_params_t *c = &p->conv;
    const uint32_t taps = (uint32_t)c->k_h * (uint32_t)c->k_w;
    const int32_t ic0 = b->oc[0] / c->depth_mult;
    for (int32_t k = 0; k < 8; k++) {
        const int32_t oc = b->oc[k];
        b->bias[k] = bias ? bias[oc] : 0;
        b->mult[k] = c->mult[oc];
        b->shift[k] = c->shift[oc];
        b->idx[k] = (int8_t)(oc / c->depth_mult - ic0);
        for (uint32_t t = 0; t < taps; t++) b->w[t][k] = (int16_t)ec_lowbit_weight(p, w, taps, oc, t);
    }
}

/* requantize 4 lanes: ec_requantize exactly, with left = max(shift, 0), right = min(shift, 0) */
static inline int32x4_t ec_requant4(int32x4_t acc, int32x4_t mult, int32x4_t left, int32x4_t right) {
    int32x4_t x = vqrdmulhq_s32(vshlq_s32(acc, left), mult);
    x = vqaddq_s32(x, vshrq_n_s32(vandq_s32(x, right), 31)); /* -1 for x < 0 when right < 0 */
    return vrshlq_s32(x, right);
}

/* The block's lanes of every output pixel. contig: lane k reads input channel oc[0] + k; else
 * oc[k] / depth_mult, gathered through idx. */
static inline __attribute__((always_inline)) void ec_dw_block8(const ec_conv_s8_params_t *c, const int8_t *in,
                                                               const ec_dw_block_t *b, int8_t *out, int contig) {
    const int32_t in_c = c->in_c, C = c->out_c, k_w = c->k_w;
    const size_t in_size = (size_t)c->in_h * (size_t)c->in_w * (size_t)in_c;
    const int32_t ic0 = b->oc[0] / c->depth_mult;
    const int8x8_t zp = vdup_n_s8((int8_t)c->in_zp), idx = vld1_s8(b->idx);
    const int32x4_t bias0 = vld1q_s32(b->bias), bias1 = vld1q_s32(b->bias + 4);
    const int32x4_t m0 = vld1q_s32(b->mult), m1 = vld1q_s32(b->mult + 4), zero = vdupq_n_s32(0);
    const int32x4_t sh0 = vld1q_s32(b->shift), sh1 = vld1q_s32(b->shift + 4);
    const int32x4_t l0 = vmaxq_s32(sh0, zero), l1 = vmaxq_s32(sh1, zero);
    const int32x4_t r0 = vminq_s32(sh0, zero), r1 = vminq_s32(sh1, zero);
    const int16x8_t out_zp = vdupq_n_s16((int16_t)c->out_zp);
    const int16x8_t act_min = vdupq_n_s16((int16_t)c->act_min), act_max = vdupq_n_s16((int16_t)c->act_max);
    const int32_t x_step = c->dil_w * in_c, row = c->in_w * in_c;
    const int distinct = C >= 8;     /* lanes are 8 different, consecutive output channels */
    for (int32_t oy = 0; oy < c->out_h; oy++) {
        const int32_t iy0 = oy * c->stride_h - c->pad_h;
        int32_t ky_lo, ky_hi;
        ec_tap_range(iy0, c->dil_h, c->in_h, c->k_h, &ky_lo, &ky_hi);
        for (int32_t ox = 0; ox < c->out_w; ox++) {
            const int32_t ix0 = ox * c->stride_w - c->pad_w;
            int32_t kx_lo, kx_hi;
            ec_tap_range(ix0, c->dil_w, c->in_w, c->k_w, &kx_lo, &kx_hi);
            const int32_t nky = ky_hi - ky_lo, nkx = kx_hi - kx_lo;
            int32x4_t a0 = bias0, a1 = bias1;
            if (nky > 0 && nkx > 0) {
                const int8_t *xp = in + (ptrdiff_t)(iy0 + ky_lo * c->dil_h) * row +
                                   (ptrdiff_t)(ix0 + kx_lo * c->dil_w) * in_c + ic0;
                const int16_t *wp = b->w[ky_lo * k_w + kx_lo];
                const ptrdiff_t x_skip = (ptrdiff_t)c->dil_h * row - (ptrdiff_t)nkx * x_step;
                const ptrdiff_t w_skip = 8 * (ptrdiff_t)(k_w - nkx);
                for (int32_t ky = nky; ky > 0; ky--) {
                    for (int32_t n = nkx; n > 0; n--) {
                        int8x8_t xv;
                        if (contig) {
                            xv = vld1_s8(xp);
                        } else {
                            const size_t at = (size_t)(xp - in);
                            if (at + 8u <= in_size) {
                                xv = vld1_s8(xp);
                            } else {   /* the last pixels of the input: copy what is there */
                                int8_t tmp[8] = {0};
                                for (size_t i = 0; at + i < in_size; i++) tmp[i] = xp[i];
                                xv = vld1_s8(tmp);
                            }
                            xv = vtbl1_s8(xv, idx);
                        }
                        const int16x8_t x16 = vsubl_s8(xv, zp), w16 = vld1q_s16(wp);
                        a0 = vmlal_s16(a0, vget_low_s16(x16), vget_low_s16(w16));
                        a1 = vmlal_high_s16(a1, x16, w16);
                        xp += x_step;
                        wp += 8;
                    }
                    xp += x_skip;
                    wp += w_skip;
                }
            }
            /* saturating to int16 before adding out_zp and clamping changes no result */
            int16x8_t y = vcombine_s16(vqmovn_s32(ec_requant4(a0, m0, l0, r0)), vqmovn_s32(ec_requant4(a1, m1, l1, r1)));
            y = vminq_s16(vmaxq_s16(vqaddq_s16(y, out_zp), act_min), act_max);
            const int8x8_t r = vqmovn_s16(y);
            int8_t *o = out + ((size_t)oy * (size_t)c->out_w + (size_t)ox) * (size_t)C;
            if (distinct) {
                vst1_s8(o + b->oc[0], r);
            } else {   /* C < 8: repeated lanes rewrite the same byte */
                int8_t tmp[8];
                vst1_s8(tmp, r);
                for (int32_t k = 0; k < 8; k++) o[b->oc[k]] = tmp[k];
            }
        }
    }
}

static __attribute__((noinline)) void ec_dw_contig8(const ec_conv_s8_params_t *c, const int8_t *in,
                                                    const ec_dw_block_t *b, int8_t *out) {
    ec_dw_block8(c, in, b, out, 1);
}

static __attribute__((noinline)) void ec_dw_gather8(const ec_conv_s8_params_t *c, const int8_t *in,
                                                    const ec_dw_block_t *b, int8_t *out) {
    ec_dw_block8(c, in, b, out, 0);
}
#endif

void ec_depthwise_conv2d_s8wN(const ec_conv_s8wN_params_t *p, const int8_t *in, const uint8_t *w,
                              const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
#if EC_DWN_NEON
    const ec_conv_s8_params_t *c = &p->conv;
    if ((int64_t)c->k_h * c->k_w <= EC_DW_TAPS) {
        ec_dw_block_t b;
        const int32_t C = c->out_c;
        const int contig = c->depth_mult == 1 && C >= 8;
        for (int32_t oc0 = 0; oc0 < C; oc0 += 8) {
            const int32_t first = C >= 8 ? ec_min_i32(oc0, C - 8) : 0;
            for (int32_t k = 0; k < 8; k++) b.oc[k] = ec_min_i32(first + k, C - 1);
            ec_dw_setup(p, w, bias, &b);
            if (contig) ec_dw_contig8(c, in, &b, out);
            else ec_dw_gather8(c, in, &b, out);
        }
        return;
    }
#endif
    ec_depthwise_wN_generic(p, in, w, bias, out);
}
