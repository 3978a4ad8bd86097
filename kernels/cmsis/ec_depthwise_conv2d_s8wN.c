#include "ec_lowbit_conv.h"
#include "ec_cmsis.h"

/* DEPTHWISE_CONV_2D, int8 activations, packed low-bit weights (ec_lowbit.h), for Cortex-M cores with
 * the DSP extension.
 *
 * A depthwise row holds only k_h * k_w codes, and the channels a SIMD step pairs sit in different
 * rows, so the weights are not used packed: the output channels run in blocks of 4, and each block's
 * k_h * k_w x 4 weights are decoded once per call (through the table, so every scheme and width --
 * int4, int2, ternary, binary, pow2, codebooks -- takes this path) into int16 pairs on the stack, then
 * swept over all output pixels: per tap one pair of inputs widened with the offset applied
 * (SXTAB16) against one weight pair, SMLABB / SMLATT into four int32 accumulators (the int8 kernel's
 * arithmetic, exact: |x - zp| <= 255, |w| <= 128). The decode costs C * k_h * k_w table reads per
 * call instead of one per tap per pixel, as the reference loop pays.
 *   depth_mult 1, C >= 4: the block's 4 inputs are one word of the pixel (lanes ordered 0, 2, 1, 3 to
 *                         match SXTB16's bytes 0 / 2 and 1 / 3); a last partial block is recomputed
 *                         overlapping its neighbour (rewriting identical bytes).
 *   otherwise (depth_mult > 1, or C < 4): 4 consecutive output channels (overlapping as above; with
 *                         C < 4 the last one repeated) read their input channels oc / depth_mult as 4
 *                         gathered bytes, paired into two registers.
 * Requantization takes SMMULR where the accumulators' range allows it (ec_dw_requant).
 * (Measured in the emulator on Cortex-M4, tests/c/test_lowbit_isa.py's depthwise chains: 2.6-2.7x fewer
 * instructions than ref; 4.3x on a 3x3, 32-channel layer, where per-pixel requantization weighs less.)
 * Kernels of more than EC_DW_TAPS taps (the stack buffer: EC_DW_TAPS * 8 bytes), and builds without the
 * DSP extension, run the portable loop (ec_depthwise_wN_generic). Bit-exact with
 * kernels/ref/ec_depthwise_conv2d_s8wN.c; no scratch. */

#define EC_DW_TAPS 64

#if defined(EC_CMSIS_DSP)
/* wb[t] = {(w[slot 0], w[slot 1]), (w[slot 2], w[slot 3])} at tap t, int16 pairs */
static void ec_dw_decode4(const ec_conv_s8wN_params_t *p, const uint8_t *w, const int32_t oc[4], uint32_t (*wb)[2]) {
    const uint32_t taps = (uint32_t)p->conv.k_h * (uint32_t)p->conv.k_w;
    for (uint32_t t = 0; t < taps; t++) {
        const uint32_t v0 = (uint32_t)ec_lowbit_weight(p, w, taps, oc[0], t);
        const uint32_t v1 = (uint32_t)ec_lowbit_weight(p, w, taps, oc[1], t);
        const uint32_t v2 = (uint32_t)ec_lowbit_weight(p, w, taps, oc[2], t);
        const uint32_t v3 = (uint32_t)ec_lowbit_weight(p, w, taps, oc[3], t);
        wb[t][0] = (v0 & 0xFFFFu) | (v1 << 16);
        wb[t][1] = (v2 & 0xFFFFu) | (v3 << 16);
    }
}

/* Requantization of one lane, ec_requantize exactly. When the lane's accumulator provably stays below
 * 2^(29 - left) in magnitude (|bias| + k_h * k_w * 255 * 128 < 2^(29 - left), checked per block: `fast`),
 * a2 = acc << (left + 1) cannot overflow and
 *   SaturatingRoundingDoublingHighMul(acc << left, mult) = floor((a2 * mult + 2^31) / 2^32) = SMMULR(a2, mult)
 * (no saturation: a2 != INT32_MIN), |result| < 2^29, so RoundingDivideByPOT(y, e) (round half away from
 * zero) = (y + half - (y < 0)) >> e for e > 0 (half = 2^(e - 1)), y for e = 0 -- the -(y < 0) is
 * (y >> 31) & negm with negm = -1 for e > 0, else 0 -- without overflow. Otherwise ec_requantize. */
typedef struct {
    int32_t left1, mult, half, negm, e, shift, bias, oc;
} ec_dw_lane_t;

EC_INLINE int32_t ec_smmulr(int32_t a, int32_t b) {
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

EC_INLINE int32_t ec_dw_requant(const ec_dw_lane_t *q, int fast, int32_t acc) {
    if (fast) {
        const int32_t y = ec_smmulr((int32_t)((uint32_t)acc << q->left1), q->mult);
        return (y + q->half + ((y >> 31) & q->negm)) >> q->e;
    }
    return ec_requantize(acc, q->mult, q->shift);
}

/* The lanes' constants; returns whether all four take the fast requantization. */
static int ec_dw_lanes(const ec_conv_s8_params_t *c, const int32_t *bias, const int32_t oc[4], ec_dw_lane_t q[4]) {
    const int64_t sum_max = (int64_t)c->k_h * c->k_w * 255 * 128;
    int fast = 1;
    for (int32_t k = 0; k < 4; k++) {
        const int32_t shift = c->shift[oc[k]], left = shift > 0 ? shift : 0, e = shift > 0 ? 0 : -shift;
        q[k].left1 = left + 1;
        q[k].mult = c->mult[oc[k]];
        q[k].half = e > 0 && e <= 31 ? (int32_t)((uint32_t)1 << (e - 1)) : 0;
        q[k].negm = e > 0 ? -1 : 0;
        q[k].e = e;
        q[k].shift = shift;
        q[k].bias = bias ? bias[oc[k]] : 0;
        q[k].oc = oc[k];
        const int64_t bound = (q[k].bias < 0 ? -(int64_t)q[k].bias : (int64_t)q[k].bias) + sum_max;
        if (left > 28 || e > 31 || bound >= ((int64_t)1 << (29 - left))) fast = 0;
    }
    return fast;
}

/* Output channels q[0..3].oc (slots) of every output pixel. contig: the slots are (b, b + 2, b + 1, b + 3)
 * and read the word of input channels [b, b + 4); else slot k reads input channel oc / depth_mult. */
EC_INLINE void ec_dw_block4(const ec_conv_s8_params_t *c, const int8_t *in, const uint32_t (*wb)[2],
                            const ec_dw_lane_t q[4], int fast, int8_t *out, int contig) {
    /* parameters in locals: the int8 stores below may alias anything the pointers reach */
    const int32_t in_h = c->in_h, in_w = c->in_w, in_c = c->in_c, out_h = c->out_h, out_w = c->out_w;
    const int32_t C = c->out_c, dm = c->depth_mult, k_h = c->k_h, k_w = c->k_w;
    const int32_t stride_h = c->stride_h, stride_w = c->stride_w, dil_h = c->dil_h, dil_w = c->dil_w;
    const int32_t pad_h = c->pad_h, pad_w = c->pad_w;
    const int32_t out_zp = c->out_zp, act_min = c->act_min, act_max = c->act_max;
    const uint32_t off2 = ((uint32_t)(-c->in_zp) & 0xFFFFu) * 0x10001u;
    const int32_t ic0 = contig ? q[0].oc : q[0].oc / dm;
    const int32_t d1 = q[1].oc / dm - ic0, d2 = q[2].oc / dm - ic0, d3 = q[3].oc / dm - ic0;
    const int32_t o0 = q[0].oc, o1 = q[1].oc, o2 = q[2].oc, o3 = q[3].oc;
    const int32_t x_step = dil_w * in_c, row = in_w * in_c;
    for (int32_t oy = 0; oy < out_h; oy++) {
        const int32_t iy0 = oy * stride_h - pad_h;
        int32_t ky_lo, ky_hi;
        ec_tap_range(iy0, dil_h, in_h, k_h, &ky_lo, &ky_hi);
        const int32_t nky = ky_hi - ky_lo;
        int8_t *o = out + (size_t)oy * (size_t)out_w * (size_t)C;
        for (int32_t ox = 0; ox < out_w; ox++, o += C) {
            const int32_t ix0 = ox * stride_w - pad_w;
            int32_t kx_lo, kx_hi;
            ec_tap_range(ix0, dil_w, in_w, k_w, &kx_lo, &kx_hi);
            const int32_t nkx = kx_hi - kx_lo;
            int32_t a0 = q[0].bias, a1 = q[1].bias, a2 = q[2].bias, a3 = q[3].bias;
            if (nky > 0 && nkx > 0) {
                const int8_t *xp = in + (iy0 + ky_lo * dil_h) * row + (ix0 + kx_lo * dil_w) * in_c + ic0;
                const uint32_t *wp = wb[ky_lo * k_w + kx_lo];
                const int32_t x_skip = dil_h * row - nkx * x_step, w_skip = 2 * (k_w - nkx);
                int32_t ky = nky;
                do {
                    int32_t n = nkx;
                    do {
                        uint32_t xa, xb;
                        if (contig) {
                            const uint32_t xv = (uint32_t)ec_rd32(xp);
                            xa = __sxtab16(off2, xv);
                            xb = ec_sxtab16_ror8(off2, xv);
                        } else {
                            xa = __sxtab16(off2, (uint32_t)(uint8_t)xp[0] | ((uint32_t)(uint8_t)xp[d1] << 16));
                            xb = __sxtab16(off2, (uint32_t)(uint8_t)xp[d2] | ((uint32_t)(uint8_t)xp[d3] << 16));
                        }
                        const uint32_t wa = wp[0], wbv = wp[1];
                        a0 = __smlabb(xa, wa, a0);
                        a1 = __smlatt(xa, wa, a1);
                        a2 = __smlabb(xb, wbv, a2);
                        a3 = __smlatt(xb, wbv, a3);
                        xp += x_step;
                        wp += 2;
                    } while (--n > 0);
                    xp += x_skip;
                    wp += w_skip;
                } while (--ky > 0);
            }
            const int32_t y0 = ec_clamp_i32(ec_dw_requant(&q[0], fast, a0) + out_zp, act_min, act_max);
            const int32_t y1 = ec_clamp_i32(ec_dw_requant(&q[1], fast, a1) + out_zp, act_min, act_max);
            const int32_t y2 = ec_clamp_i32(ec_dw_requant(&q[2], fast, a2) + out_zp, act_min, act_max);
            const int32_t y3 = ec_clamp_i32(ec_dw_requant(&q[3], fast, a3) + out_zp, act_min, act_max);
            o[o0] = (int8_t)y0;
            o[o1] = (int8_t)y1;
            o[o2] = (int8_t)y2;
            o[o3] = (int8_t)y3;
        }
    }
}

static __attribute__((noinline)) void ec_dw_contig4(const ec_conv_s8_params_t *c, const int8_t *in,
                                                    const uint32_t (*wb)[2], const ec_dw_lane_t q[4], int fast,
                                                    int8_t *out) {
    ec_dw_block4(c, in, wb, q, fast, out, 1);
}

static __attribute__((noinline)) void ec_dw_gather4(const ec_conv_s8_params_t *c, const int8_t *in,
                                                    const uint32_t (*wb)[2], const ec_dw_lane_t q[4], int fast,
                                                    int8_t *out) {
    ec_dw_block4(c, in, wb, q, fast, out, 0);
}
#endif

void ec_depthwise_conv2d_s8wN(const ec_conv_s8wN_params_t *p, const int8_t *in, const uint8_t *w,
                              const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
#if defined(EC_CMSIS_DSP)
    const ec_conv_s8_params_t *c = &p->conv;
    if ((int64_t)c->k_h * c->k_w <= EC_DW_TAPS) {
        uint32_t wb[EC_DW_TAPS][2];
        const int32_t C = c->out_c;
        const int contig = c->depth_mult == 1 && C >= 4;
        for (int32_t oc0 = 0; oc0 < C; oc0 += 4) {
            const int32_t b = C >= 4 ? ec_min_i32(oc0, C - 4) : 0;
            int32_t oc[4];
            if (contig) {
                oc[0] = b;
                oc[1] = b + 2;
                oc[2] = b + 1;
                oc[3] = b + 3;
            } else {
                for (int32_t k = 0; k < 4; k++) oc[k] = ec_min_i32(b + k, C - 1);
            }
            ec_dw_lane_t q[4];
            const int fast = ec_dw_lanes(c, bias, oc, q);
            ec_dw_decode4(p, w, oc, wb);
            if (contig) ec_dw_contig4(c, in, (const uint32_t (*)[2])wb, q, fast, out);
            else ec_dw_gather4(c, in, (const uint32_t (*)[2])wb, q, fast, out);
        }
        return;
    }
#endif
    ec_depthwise_wN_generic(p, in, w, bias, out);
}
