#include "ec_conv_loops.h"

/* CONV_2D int8, arm64 NEON: bit-exact with kernels/ref/ec_conv2d_s8.c (TFLite Micro ConvPerChannel).
 *
 * out[p][oc] = clamp(out_zp + requant_oc(bias[oc] + sum_k w[oc][k] * (x_p[k] - in_zp))) is computed as a
 * GEMM over K = k_h * k_w * in_c: the patch x_p is gathered (im2col) with taps outside the image set to
 * in_zp, so that sum_k w[oc][k] * x_p[k] - in_zp * sum_k w[oc][k] equals the reference sum over the taps
 * inside the image (all arithmetic wraps modulo 2^32 exactly like the reference's int32 accumulator).
 * The filter sums are folded into an effective bias once per call. 1x1 convolutions without padding
 * read the input pixels in place (no im2col). Tiles of 2 pixels x 4 output channels, 16 bytes of K per
 * step: SDOT (vdotq_s32) with __ARM_FEATURE_DOTPROD, else vmull_s8 (int16 products, exact) + vpadalq_s16.
 * Requantization is vectorised: vqrdmulhq_s32 equals TFLite's SaturatingRoundingDoublingHighMul, and
 * vrshlq_s32 after subtracting 1 from negative values (saturating) equals RoundingDivideByPOT.
 *
 * scratch (any alignment), with K = k_h * k_w * in_c:
 *     16 + 16 * ceil4(out_c) + (K % 16 ? 16 * ceil4(out_c) : 0) + 2 * ceil16(K) bytes.
 * With scratch == NULL, or on targets without AArch64 NEON, the kernel runs the scalar reference loops. */

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define EC_CONV_NEON 1
#else
#define EC_CONV_NEON 0
#endif

#if EC_CONV_NEON

/* acc (4 x int32) += the products of a and b, 16 int8 pairs, summed in groups of 4 (dotprod) or 2. */
EC_INLINE int32x4_t ec_dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
    return vdotq_s32(acc, a, b);
#else
    acc = vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    return vpadalq_s16(acc, vmull_high_s8(a, b));
#endif
}

/* ec_requantize on 4 lanes; left >= 0, right <= 0 (the negated exponent of the rounding divide). */
EC_INLINE int32x4_t ec_requant4(int32x4_t acc, int32x4_t mult, int32x4_t left, int32x4_t right) {
    int32x4_t x = vqrdmulhq_s32(vshlq_s32(acc, left), mult);
    x = vqaddq_s32(x, vshrq_n_s32(vandq_s32(x, right), 31)); /* -1 for x < 0 when right < 0 */
    return vrshlq_s32(x, right);
}

static void ec_copy_s8(int8_t *d, const int8_t *s, int32_t n) {
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) vst1q_s8(d + i, vld1q_s8(s + i));
    if (i + 8 <= n) {
        vst1_s8(d + i, vld1_s8(s + i));
        i += 8;
    }
    for (; i < n; i++) d[i] = s[i];
}

static void ec_fill_s8(int8_t *d, int8_t v, int32_t n) {
    const int8x16_t vv = vdupq_n_s8(v);
    int32_t i = 0;
    for (; i + 16 <= n; i += 16) vst1q_s8(d + i, vv);
    if (i + 8 <= n) {
        vst1_s8(d + i, vget_low_s8(vv));
        i += 8;
    }
    for (; i < n; i++) d[i] = v;
}

/* Gathers the K = k_h * k_w * in_c patch of output pixel (oy, ox) into dst; outside taps read in_zp. */
static void ec_im2col(const ec_conv_s8_params_t *p, const int8_t *in, int32_t oy, int32_t ox, int8_t *dst) {
    const int32_t in_c = p->in_c, k_w = p->k_w, row = k_w * in_c;
    const int8_t zp = (int8_t)p->in_zp;
    const int32_t iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
    const int dense = p->dil_w == 1 && ix0 >= 0 && ix0 + k_w <= p->in_w;
    for (int32_t ky = 0; ky < p->k_h; ky++, dst += row) {
        const int32_t iy = iy0 + ky * p->dil_h;
        if (iy < 0 || iy >= p->in_h) {
            ec_fill_s8(dst, zp, row);
            continue;
        }
        const int8_t *src = in + (size_t)iy * (size_t)p->in_w * (size_t)in_c;
        if (dense) {
            ec_copy_s8(dst, src + (size_t)ix0 * (size_t)in_c, row);
            continue;
        }
        for (int32_t kx = 0; kx < k_w; kx++) {
            const int32_t ix = ix0 + kx * p->dil_w;
            if (ix < 0 || ix >= p->in_w) ec_fill_s8(dst + kx * in_c, zp, in_c);
            else ec_copy_s8(dst + kx * in_c, src + (size_t)ix * (size_t)in_c, in_c);
        }
    }
}

static void ec_conv2d_s8_neon(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *w,
                              const int32_t *bias, int8_t *out, void *scratch) {
    const int32_t out_c = p->out_c;
    const int32_t K = p->k_h * p->k_w * p->in_c;
    const int32_t nfull = K / 16, rem = K % 16, K16 = (K + 15) / 16 * 16;
    const int32_t oc4 = (out_c + 3) / 4 * 4;
    const int32_t npix = p->out_h * p->out_w;

    /* scratch: per-channel effective bias, multiplier, left / right shifts (ceil4(out_c) each), the
     * filter rows' last partial 16 bytes zero-padded (if K % 16), two im2col patches of K16 bytes */
    uint8_t *s = (uint8_t *)scratch + ((16u - ((uintptr_t)scratch & 15u)) & 15u);
    int32_t *qb = (int32_t *)(void *)s, *qm = qb + oc4, *ql = qm + oc4, *qr = ql + oc4;
    int8_t *tails = (int8_t *)(qr + oc4);
    int8_t *xb0 = tails + (rem ? (size_t)16 * (size_t)oc4 : 0), *xb1 = xb0 + K16;

    for (int32_t oc = 0; oc < oc4; oc++) {
        if (oc >= out_c) {
            qb[oc] = qm[oc] = ql[oc] = qr[oc] = 0;
            continue;
        }
        const int8_t *wr = w + (size_t)oc * (size_t)K;
        int32x4_t sv = vdupq_n_s32(0);
        for (int32_t c = 0; c < nfull; c++) sv = vpadalq_s16(sv, vpaddlq_s8(vld1q_s8(wr + 16 * c)));
        int32_t sum = vaddvq_s32(sv);
        if (rem) {
            int8_t *t = tails + 16 * oc;
            vst1q_s8(t, vdupq_n_s8(0));
            for (int32_t i = 0; i < rem; i++) {
                t[i] = wr[16 * nfull + i];
                sum += t[i];
            }
        }
        qb[oc] = (int32_t)((uint32_t)(bias ? bias[oc] : 0) - (uint32_t)p->in_zp * (uint32_t)sum);
        qm[oc] = p->mult[oc];
        ql[oc] = p->shift[oc] > 0 ? p->shift[oc] : 0;
        qr[oc] = p->shift[oc] > 0 ? 0 : p->shift[oc];
    }
    /* the patches' bytes past K meet zero filter bytes; keep them finite (zero) */
    for (int32_t i = K; i < K16; i++) xb0[i] = xb1[i] = 0;

    /* 1x1 without padding: the patch is the input pixel itself */
    const int direct = p->k_h == 1 && p->k_w == 1 && p->pad_h == 0 && p->pad_w == 0;
    const size_t in_size = (size_t)p->in_h * (size_t)p->in_w * (size_t)p->in_c;
    const int16x8_t zp_out = vdupq_n_s16((int16_t)p->out_zp);
    const int16x8_t lo = vdupq_n_s16((int16_t)p->act_min), hi = vdupq_n_s16((int16_t)p->act_max);

    for (int32_t pix = 0; pix < npix; pix += 2) {
        const int two = pix + 1 < npix;
        const int8_t *xs[2];
        for (int k = 0; k < 2; k++) {
            const int32_t q = (k == 1 && !two) ? pix : pix + k;
            const int32_t oy = q / p->out_w, ox = q % p->out_w;
            int8_t *buf = k ? xb1 : xb0;
            if (direct) {
                const size_t at = ((size_t)oy * (size_t)p->stride_h * (size_t)p->in_w +
                                   (size_t)ox * (size_t)p->stride_w) * (size_t)p->in_c;
                const int8_t *x = in + at;
                if (at + (size_t)K16 <= in_size) {
                    xs[k] = x;   /* bytes past K (if any) meet zero filter tail bytes */
                } else {
                    ec_copy_s8(buf, x, K);
                    xs[k] = buf;
                }
            } else {
                ec_im2col(p, in, oy, ox, buf);
                xs[k] = buf;
            }
        }
        const int8_t *x0 = xs[0], *x1 = xs[1];
        int8_t *o0 = out + (size_t)pix * (size_t)out_c, *o1 = o0 + out_c;

        for (int32_t o = 0; o < out_c; o += 4) {
            const int32_t n = out_c - o < 4 ? out_c - o : 4;
            /* lanes past out_c repeat the last filter; their results are not stored */
            const int32_t r1 = n > 1 ? o + 1 : o, r2 = n > 2 ? o + 2 : o, r3 = n > 3 ? o + 3 : o;
            const int8_t *w0 = w + (size_t)o * (size_t)K, *w1 = w + (size_t)r1 * (size_t)K;
            const int8_t *w2 = w + (size_t)r2 * (size_t)K, *w3 = w + (size_t)r3 * (size_t)K;
            int32x4_t a00 = vdupq_n_s32(0), a01 = a00, a02 = a00, a03 = a00;
            int32x4_t a10 = a00, a11 = a00, a12 = a00, a13 = a00;
            for (int32_t c = 0; c < nfull; c++) {
                const int8x16_t v0 = vld1q_s8(x0 + 16 * c), v1 = vld1q_s8(x1 + 16 * c);
                const int8x16_t f0 = vld1q_s8(w0 + 16 * c), f1 = vld1q_s8(w1 + 16 * c);
                const int8x16_t f2 = vld1q_s8(w2 + 16 * c), f3 = vld1q_s8(w3 + 16 * c);
                a00 = ec_dot16(a00, v0, f0);
                a01 = ec_dot16(a01, v0, f1);
                a02 = ec_dot16(a02, v0, f2);
                a03 = ec_dot16(a03, v0, f3);
                a10 = ec_dot16(a10, v1, f0);
                a11 = ec_dot16(a11, v1, f1);
                a12 = ec_dot16(a12, v1, f2);
                a13 = ec_dot16(a13, v1, f3);
            }
            if (rem) {
                const int8x16_t v0 = vld1q_s8(x0 + 16 * nfull), v1 = vld1q_s8(x1 + 16 * nfull);
                const int8x16_t f0 = vld1q_s8(tails + 16 * o), f1 = vld1q_s8(tails + 16 * r1);
                const int8x16_t f2 = vld1q_s8(tails + 16 * r2), f3 = vld1q_s8(tails + 16 * r3);
                a00 = ec_dot16(a00, v0, f0);
                a01 = ec_dot16(a01, v0, f1);
                a02 = ec_dot16(a02, v0, f2);
                a03 = ec_dot16(a03, v0, f3);
                a10 = ec_dot16(a10, v1, f0);
                a11 = ec_dot16(a11, v1, f1);
                a12 = ec_dot16(a12, v1, f2);
                a13 = ec_dot16(a13, v1, f3);
            }
            const int32x4_t b = vld1q_s32(qb + o), m = vld1q_s32(qm + o);
            const int32x4_t l = vld1q_s32(ql + o), r = vld1q_s32(qr + o);
            int32x4_t s0 = vpaddq_s32(vpaddq_s32(a00, a01), vpaddq_s32(a02, a03));
            int32x4_t s1 = vpaddq_s32(vpaddq_s32(a10, a11), vpaddq_s32(a12, a13));
            s0 = ec_requant4(vaddq_s32(s0, b), m, l, r);
            s1 = ec_requant4(vaddq_s32(s1, b), m, l, r);
            /* saturating to int16 before + out_zp and the clamp gives the same bytes as int32 math */
            int16x8_t y = vcombine_s16(vqmovn_s32(s0), vqmovn_s32(s1));
            y = vminq_s16(vmaxq_s16(vqaddq_s16(y, zp_out), lo), hi);
            const int8x8_t q = vqmovn_s16(y);
            if (n == 4) {
                vst1_lane_u32((uint32_t *)(void *)(o0 + o), vreinterpret_u32_s8(q), 0);
                if (two) vst1_lane_u32((uint32_t *)(void *)(o1 + o), vreinterpret_u32_s8(q), 1);
            } else {
                int8_t t[8];
                vst1_s8(t, q);
                for (int32_t j = 0; j < n; j++) {
                    o0[o + j] = t[j];
                    if (two) o1[o + j] = t[4 + j];
                }
            }
        }
    }
}

#endif /* EC_CONV_NEON */

void ec_conv2d_s8(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                  int8_t *out, void *scratch) {
#if EC_CONV_NEON
    if (scratch) {
        ec_conv2d_s8_neon(p, in, w, bias, out, scratch);
        return;
    }
#endif
    (void)scratch;
    ec_conv2d_s8_loop(p, in, w, bias, out);
}
