#include "ec_conv_loops.h"
#include "ec_cmsis.h"

/* CONV_2D int8 for Cortex-M cores with the DSP extension (the approach of CMSIS-NN's
 * arm_convolve_s8): the receptive fields of two output pixels are copied (im2col) into scratch as
 * int16 with the input offset applied (SXTAB16), then each pair of filters is multiplied against
 * both columns with dual 16-bit MACs (SMLAD): four accumulators, 16 MACs per 4-element step.
 * 1x1 kernels without padding widen the input pixels directly (no tap bookkeeping).
 * Bit-exact with kernels/ref/ec_conv2d_s8.c. Without __ARM_FEATURE_DSP (e.g. Cortex-M0+, hosts),
 * or when scratch is NULL, the portable reference loop runs instead.
 *
 * scratch: 2 * round_up(k_h * k_w * in_c, 4) * sizeof(int16_t) bytes, 4-byte aligned
 * (compiler/edgec/backends/c/scratch.py). Requires mult[] >= 0 (as TFLite's QuantizeMultiplier
 * produces). */

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(__ARM_BIG_ENDIAN) && !defined(EC_NO_DSP)
EC_INLINE int8_t ec_cm_out(int32_t acc, const ec_conv_s8_params_t *p, int32_t oc) {
    acc = ec_cm_requantize(acc, p->mult[oc], p->shift[oc]) + p->out_zp;
    return (int8_t)ec_clamp_i32(acc, p->act_min, p->act_max);
}

/* channel oc of two output pixels: the channel's parameters loaded once */
EC_INLINE void ec_cm_out2(int32_t acc0, int32_t acc1, const ec_conv_s8_params_t *p, int32_t oc, int8_t *o0,
                          int8_t *o1) {
    const int32_t m = p->mult[oc], sh = p->shift[oc], zp = p->out_zp, lo = p->act_min, hi = p->act_max;
    *o0 = (int8_t)ec_clamp_i32(ec_cm_requantize(acc0, m, sh) + zp, lo, hi);
    *o1 = (int8_t)ec_clamp_i32(ec_cm_requantize(acc1, m, sh) + zp, lo, hi);
}

/* The two columns share one buffer, interleaved in 4-element blocks so the inner loop walks one
 * pointer: block b of column ci sits at int16 index 8b + 4ci, stored (x0, x2, x1, x3) so that the
 * SXTB16 halves of a filter word line up with two int16 words; elements past k4 (the k % 4 tail)
 * sit in order, the two columns alternating. */
EC_INLINE int32_t ec_col_pos(int32_t k, int32_t k4, int32_t ci) {
    return k < k4 ? (((k >> 2) << 3) + (ci << 2) + ((k & 1) << 1) + ((k >> 1) & 1)) : (2 * k + ci);
}

typedef int32_t ec_w32 __attribute__((may_alias));

/* column ci, elements [k, k + n) = src[0 .. n) - in_zp */
static void ec_widen(int16_t *buf, int32_t ci, int32_t k, const int8_t *src, int32_t n, int32_t k4, int32_t in_zp,
                     uint32_t off2) {
    while (n > 0 && (k & 3) != 0) {
        buf[ec_col_pos(k, k4, ci)] = (int16_t)(*src++ - in_zp);
        k++;
        n--;
    }
    if (k < k4) {
        int32_t blocks = (k4 - k) >> 2;
        if (blocks > (n >> 2)) blocks = n >> 2;
        ec_w32 *dst = (ec_w32 *)(void *)(buf + ((k >> 2) << 3) + (ci << 2));
        k += blocks << 2;
        n -= blocks << 2;
        while (blocks-- > 0) {
            const uint32_t x = (uint32_t)ec_rd32(src);
            src += 4;
            dst[0] = (int32_t)__sxtab16(off2, x);
            dst[1] = (int32_t)ec_sxtab16_ror8(off2, x);
            dst += 4;
        }
    }
    while (n-- > 0) {
        buf[ec_col_pos(k, k4, ci)] = (int16_t)(*src++ - in_zp);
        k++;
    }
}

/* im2col of output pixel (oy, ox) into column ci of buf (kk = k_h*k_w*in_c elements, padded taps 0) */
static void ec_fill_col(const ec_conv_s8_params_t *p, const int8_t *in, int32_t oy, int32_t ox, int16_t *buf,
                        int32_t ci, int32_t kk, int32_t k4, uint32_t off2) {
    const int32_t in_c = p->in_c;
    const int32_t iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
    int32_t ky_lo, ky_hi, kx_lo, kx_hi;
    ec_tap_range(iy0, p->dil_h, p->in_h, p->k_h, &ky_lo, &ky_hi);
    ec_tap_range(ix0, p->dil_w, p->in_w, p->k_w, &kx_lo, &kx_hi);
    if (ky_lo > 0 || ky_hi < p->k_h || kx_lo > 0 || kx_hi < p->k_w) {
        ec_w32 *z = (ec_w32 *)(void *)(buf + (ci << 2));
        for (int32_t b = k4 >> 2; b > 0; b--) {
            z[0] = 0;
            z[1] = 0;
            z += 4;
        }
        for (int32_t k = k4; k < kk; k++) buf[2 * k + ci] = 0;
    }
    if (kx_hi <= kx_lo) return;
    for (int32_t ky = ky_lo; ky < ky_hi; ky++) {
        const int32_t iy = iy0 + ky * p->dil_h;
        const int8_t *row = in + (size_t)iy * (size_t)p->in_w * (size_t)in_c;
        if (p->dil_w == 1) {
            ec_widen(buf, ci, (ky * p->k_w + kx_lo) * in_c, row + (size_t)(ix0 + kx_lo) * (size_t)in_c,
                     (kx_hi - kx_lo) * in_c, k4, p->in_zp, off2);
        } else {
            for (int32_t kx = kx_lo; kx < kx_hi; kx++) {
                ec_widen(buf, ci, (ky * p->k_w + kx) * in_c, row + (size_t)(ix0 + kx * p->dil_w) * (size_t)in_c,
                         in_c, k4, p->in_zp, off2);
            }
        }
    }
}

/* Both columns of buf times every filter: out0/out1 get out_c channels each. */
static void ec_mat_mult_2(const ec_conv_s8_params_t *p, const int8_t *w, const int32_t *bias, const int16_t *buf,
                          int32_t kk, int32_t k4, int8_t *out0, int8_t *out1) {
    const int32_t out_c = p->out_c;
    const int8_t *wa = w;
    const ec_w32 *end = (const ec_w32 *)(const void *)(buf + 2 * k4);
    int32_t oc = 0;
    for (; oc + 1 < out_c; oc += 2) {
        const int8_t *wb = wa + kk;
        const ec_w32 *c = (const ec_w32 *)(const void *)buf;
        int32_t a0 = bias ? bias[oc] : 0, b0 = bias ? bias[oc + 1] : 0;
        int32_t a1 = a0, b1 = b0;
        while (c != end) {
            const uint32_t va = (uint32_t)ec_rd32(wa), vb = (uint32_t)ec_rd32(wb);
            wa += 4;
            wb += 4;
            const uint32_t x02 = (uint32_t)c[0], x13 = (uint32_t)c[1], y02 = (uint32_t)c[2], y13 = (uint32_t)c[3];
            c += 4;
            uint32_t h = __sxtb16(va);
            a0 = __smlad(h, x02, a0);
            a1 = __smlad(h, y02, a1);
            h = ec_sxtb16_ror8(va);
            a0 = __smlad(h, x13, a0);
            a1 = __smlad(h, y13, a1);
            h = __sxtb16(vb);
            b0 = __smlad(h, x02, b0);
            b1 = __smlad(h, y02, b1);
            h = ec_sxtb16_ror8(vb);
            b0 = __smlad(h, x13, b0);
            b1 = __smlad(h, y13, b1);
        }
        const int16_t *t = (const int16_t *)(const void *)c;
        for (int32_t k = k4; k < kk; k++) {
            const int32_t ka = *wa++, kb = *wb++;
            a0 += ka * t[0];
            b0 += kb * t[0];
            a1 += ka * t[1];
            b1 += kb * t[1];
            t += 2;
        }
        ec_cm_out2(a0, a1, p, oc, out0 + oc, out1 + oc);
        ec_cm_out2(b0, b1, p, oc + 1, out0 + oc + 1, out1 + oc + 1);
        wa = wb;
    }
    if (oc < out_c) {
        const ec_w32 *c = (const ec_w32 *)(const void *)buf;
        int32_t a0 = bias ? bias[oc] : 0;
        int32_t a1 = a0;
        while (c != end) {
            const uint32_t va = (uint32_t)ec_rd32(wa);
            wa += 4;
            const uint32_t a02 = __sxtb16(va), a13 = ec_sxtb16_ror8(va);
            a0 = __smlad(a02, (uint32_t)c[0], a0);
            a0 = __smlad(a13, (uint32_t)c[1], a0);
            a1 = __smlad(a02, (uint32_t)c[2], a1);
            a1 = __smlad(a13, (uint32_t)c[3], a1);
            c += 4;
        }
        const int16_t *t = (const int16_t *)(const void *)c;
        for (int32_t k = k4; k < kk; k++) {
            const int32_t ka = *wa++;
            a0 += ka * t[0];
            a1 += ka * t[1];
            t += 2;
        }
        ec_cm_out2(a0, a1, p, oc, out0 + oc, out1 + oc);
    }
}

/* Column 0 of buf (the last output pixel when their count is odd) times every filter. */
static void ec_mat_mult_1(const ec_conv_s8_params_t *p, const int8_t *w, const int32_t *bias, const int16_t *buf,
                          int32_t kk, int32_t k4, int8_t *out0) {
    const int8_t *wa = w;
    const ec_w32 *end = (const ec_w32 *)(const void *)(buf + 2 * k4);
    for (int32_t oc = 0; oc < p->out_c; oc++) {
        const ec_w32 *c = (const ec_w32 *)(const void *)buf;
        int32_t a0 = bias ? bias[oc] : 0;
        while (c != end) {
            const uint32_t va = (uint32_t)ec_rd32(wa);
            wa += 4;
            a0 = __smlad(__sxtb16(va), (uint32_t)c[0], a0);
            a0 = __smlad(ec_sxtb16_ror8(va), (uint32_t)c[1], a0);
            c += 4;
        }
        const int16_t *t = (const int16_t *)(const void *)c;
        for (int32_t k = k4; k < kk; k++) {
            a0 += *wa++ * t[0];
            t += 2;
        }
        out0[oc] = ec_cm_out(a0, p, oc);
    }
}

void ec_conv2d_s8(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                  int8_t *out, void *scratch) {
    const int32_t in_c = p->in_c, out_c = p->out_c;
    const int32_t kk = p->k_h * p->k_w * in_c, k4 = kk & ~3;
    const uint32_t off2 = ((uint32_t)(-p->in_zp) & 0xFFFFu) * 0x10001u;
    int16_t *buf = (int16_t *)scratch;
    if (buf == NULL) {   /* the emitter reserved no scratch: stay correct, if slow */
        ec_conv2d_s8_loop(p, in, w, bias, out);
        return;
    }
    const int fast1x1 = p->k_h == 1 && p->k_w == 1 && p->pad_h == 0 && p->pad_w == 0;
    int32_t ci = 0;
    int8_t *pending_out = out;
    for (int32_t oy = 0; oy < p->out_h; oy++) {
        for (int32_t ox = 0; ox < p->out_w; ox++) {
            if (fast1x1) {
                const int8_t *x = in + ((size_t)(oy * p->stride_h) * (size_t)p->in_w + (size_t)(ox * p->stride_w)) * (size_t)in_c;
                ec_widen(buf, ci, 0, x, in_c, k4, p->in_zp, off2);
            } else {
                ec_fill_col(p, in, oy, ox, buf, ci, kk, k4, off2);
            }
            int8_t *o = out + ((size_t)oy * (size_t)p->out_w + (size_t)ox) * (size_t)out_c;
            if (ci) {
                ec_mat_mult_2(p, w, bias, buf, kk, k4, pending_out, o);
                ci = 0;
            } else {
                pending_out = o;
                ci = 1;
            }
        }
    }
    if (ci) ec_mat_mult_1(p, w, bias, buf, kk, k4, pending_out);
}

#else /* portable */

void ec_conv2d_s8(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                  int8_t *out, void *scratch) {
    (void)scratch;
    ec_conv2d_s8_loop(p, in, w, bias, out);
}

#endif
