#include "ec_conv_loops.h"
#include "ec_cmsis.h"

/* DEPTHWISE_CONV_2D int8 for Cortex-M cores with the DSP extension (the approach of CMSIS-NN's
 * arm_depthwise_conv_s8_opt, without its im2col buffer): with depth_mult 1, four channels at a
 * time: per tap one input word (4 channels, input offset applied in the SXTAB16 widening) and one
 * filter word (SXTB16), multiplied per halfword with SMLABB/SMLATT into four accumulators.
 * Other channel counts finish with a scalar tail; depth_mult > 1 runs the reference loop.
 * Bit-exact with kernels/ref/ec_depthwise_conv2d_s8.c; without __ARM_FEATURE_DSP the portable
 * reference loop runs. No scratch. Requires mult[] >= 0 (as TFLite's QuantizeMultiplier produces). */

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(__ARM_BIG_ENDIAN) && !defined(EC_NO_DSP)
void ec_depthwise_conv2d_s8(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *w,
                            const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    if (p->depth_mult != 1) {
        ec_depthwise_conv2d_s8_loop(p, in, w, bias, out);
        return;
    }
    const int32_t c = p->in_c, in_zp = p->in_zp, c4 = c & ~3;
    const int32_t out_zp = p->out_zp, act_min = p->act_min, act_max = p->act_max;
    const int32_t *mult = p->mult, *shift = p->shift;
    const uint32_t off2 = ((uint32_t)(-in_zp) & 0xFFFFu) * 0x10001u;
    const int32_t x_step = p->dil_w * c, row = p->in_w * c;
    for (int32_t oy = 0; oy < p->out_h; oy++) {
        const int32_t iy0 = oy * p->stride_h - p->pad_h;
        int32_t ky_lo, ky_hi;
        ec_tap_range(iy0, p->dil_h, p->in_h, p->k_h, &ky_lo, &ky_hi);
        for (int32_t ox = 0; ox < p->out_w; ox++) {
            const int32_t ix0 = ox * p->stride_w - p->pad_w;
            int32_t kx_lo, kx_hi;
            ec_tap_range(ix0, p->dil_w, p->in_w, p->k_w, &kx_lo, &kx_hi);
            const int32_t nkx = kx_hi - kx_lo, nky = ky_hi - ky_lo;
            int8_t *o = out + ((size_t)oy * (size_t)p->out_w + (size_t)ox) * (size_t)c;
            if (nkx <= 0 || nky <= 0) {   /* no tap inside the image */
                for (int32_t ch = 0; ch < c; ch++) {
                    const int32_t acc = ec_cm_requantize(bias ? bias[ch] : 0, mult[ch], shift[ch]) + out_zp;
                    o[ch] = (int8_t)ec_clamp_i32(acc, act_min, act_max);
                }
                continue;
            }
            /* the first tap's input and filter pointers (channel 0), and the steps from the end of
             * one tap row to the start of the next */
            const int8_t *x0 = in + (iy0 + ky_lo * p->dil_h) * row + (ix0 + kx_lo * p->dil_w) * c;
            const int8_t *w0 = w + (ky_lo * p->k_w + kx_lo) * c;
            const int32_t x_skip = p->dil_h * row - nkx * x_step, w_skip = (p->k_w - nkx) * c;
            int32_t ch = 0;
            for (; ch < c4; ch += 4) {
                int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                if (bias) {
                    a0 = bias[ch];
                    a1 = bias[ch + 1];
                    a2 = bias[ch + 2];
                    a3 = bias[ch + 3];
                }
                const int8_t *xp = x0 + ch, *wp = w0 + ch;
                int32_t ky = nky;
                do {
                    int32_t n = nkx;
                    do {
                        const uint32_t xv = ec_rd32(xp), wv = ec_rd32(wp);
                        xp += x_step;
                        wp += c;
                        const uint32_t x02 = __sxtab16(off2, xv), w02 = __sxtb16(wv);
                        const uint32_t x13 = ec_sxtab16_ror8(off2, xv), w13 = ec_sxtb16_ror8(wv);
                        a0 = __smlabb(x02, w02, a0);
                        a2 = __smlatt(x02, w02, a2);
                        a1 = __smlabb(x13, w13, a1);
                        a3 = __smlatt(x13, w13, a3);
                    } while (--n > 0);
                    xp += x_skip;
                    wp += w_skip;
                } while (--ky > 0);
                const int32_t *m = mult + ch, *sh = shift + ch;
                o[ch] = (int8_t)ec_clamp_i32(ec_cm_requantize(a0, m[0], sh[0]) + out_zp, act_min, act_max);
                o[ch + 1] = (int8_t)ec_clamp_i32(ec_cm_requantize(a1, m[1], sh[1]) + out_zp, act_min, act_max);
                o[ch + 2] = (int8_t)ec_clamp_i32(ec_cm_requantize(a2, m[2], sh[2]) + out_zp, act_min, act_max);
                o[ch + 3] = (int8_t)ec_clamp_i32(ec_cm_requantize(a3, m[3], sh[3]) + out_zp, act_min, act_max);
            }
            for (; ch < c; ch++) {
                int32_t a0 = bias ? bias[ch] : 0;
                const int8_t *xp = x0 + ch, *wp = w0 + ch;
                for (int32_t ky = nky; ky > 0; ky--) {
                    for (int32_t n = nkx; n > 0; n--) {
                        a0 += (int32_t)*wp * ((int32_t)*xp - in_zp);
                        xp += x_step;
                        wp += c;
                    }
                    xp += x_skip;
                    wp += w_skip;
                }
                o[ch] = (int8_t)ec_clamp_i32(ec_cm_requantize(a0, mult[ch], shift[ch]) + out_zp, act_min, act_max);
            }
        }
    }
}

#else /* portable */

void ec_depthwise_conv2d_s8(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *w,
                            const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    ec_depthwise_conv2d_s8_loop(p, in, w, bias, out);
}

#endif
