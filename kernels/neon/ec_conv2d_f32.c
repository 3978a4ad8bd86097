#include "ec_conv_loops.h"

/* CONV_2D float32, arm64 NEON (kernels/ref/ec_conv2d_f32.c: TFLite Micro reference_ops::Conv): the
 * sum over the taps inside the image of w * x, + bias, then the activation clamp. Equal to the
 * reference up to float32 summation order.
 *
 * A GEMM over K = k_h * k_w * in_c: each output pixel's patch is gathered (im2col) with outside taps
 * set to 0.0f (1x1 convolutions without padding and K % 4 == 0 read the input in place), then tiles of
 * 2 pixels x 4 output channels accumulate 4 floats per step with vfmaq_f32. The filter rows' last
 * K % 4 values are copied once per call, zero-padded, into scratch.
 *
 * scratch (any alignment), with K = k_h * k_w * in_c:
 *     16 + (K % 4 ? 16 * ceil4(out_c) : 0) + 8 * ceil4(K) bytes.
 * With scratch == NULL, or on targets without AArch64 NEON, the kernel runs the scalar reference loops. */

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define EC_CONVF_NEON 1
#else
#define EC_CONVF_NEON 0
#endif

#if EC_CONVF_NEON

static void ec_copy_f32(float *d, const float *s, int32_t n) {
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(d + i, vld1q_f32(s + i));
    for (; i < n; i++) d[i] = s[i];
}

static void ec_zero_f32(float *d, int32_t n) {
    int32_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(d + i, vdupq_n_f32(0.0f));
    for (; i < n; i++) d[i] = 0.0f;
}

/* The K = k_h * k_w * in_c patch of output pixel (oy, ox); outside taps read 0. */
static void ec_im2col_f32(const ec_conv_f32_params_t *p, const float *in, int32_t oy, int32_t ox, float *dst) {
    const int32_t in_c = p->in_c, k_w = p->k_w, row = k_w * in_c;
    const int32_t iy0 = oy * p->stride_h - p->pad_h, ix0 = ox * p->stride_w - p->pad_w;
    const int dense = p->dil_w == 1 && ix0 >= 0 && ix0 + k_w <= p->in_w;
    for (int32_t ky = 0; ky < p->k_h; ky++, dst += row) {
        const int32_t iy = iy0 + ky * p->dil_h;
        if (iy < 0 || iy >= p->in_h) {
            ec_zero_f32(dst, row);
            continue;
        }
        const float *src = in + (size_t)iy * (size_t)p->in_w * (size_t)in_c;
        if (dense) {
            ec_copy_f32(dst, src + (size_t)ix0 * (size_t)in_c, row);
            continue;
        }
        for (int32_t kx = 0; kx < k_w; kx++) {
            const int32_t ix = ix0 + kx * p->dil_w;
            if (ix < 0 || ix >= p->in_w) ec_zero_f32(dst + kx * in_c, in_c);
            else ec_copy_f32(dst + kx * in_c, src + (size_t)ix * (size_t)in_c, in_c);
        }
    }
}

static void ec_conv2d_f32_neon(const ec_conv_f32_params_t *p, const float *in, const float *w, const float *bias,
                               float *out, void *scratch) {
    const int32_t out_c = p->out_c;
    const int32_t K = p->k_h * p->k_w * p->in_c;
    const int32_t nfull = K / 4, rem = K % 4, K4 = (K + 3) / 4 * 4;
    const int32_t oc4 = (out_c + 3) / 4 * 4;
    const int32_t npix = p->out_h * p->out_w;

    /* scratch: the filter rows' last K % 4 values zero-padded to 4, two im2col patches of K4 floats */
    float *tails = (float *)(void *)((uint8_t *)scratch + ((16u - ((uintptr_t)scratch & 15u)) & 15u));
    float *xb0 = tails + (rem ? (size_t)4 * (size_t)oc4 : 0), *xb1 = xb0 + K4;
    if (rem) {
        for (int32_t oc = 0; oc < out_c; oc++) {
            float *t = tails + 4 * oc;
            vst1q_f32(t, vdupq_n_f32(0.0f));
            for (int32_t i = 0; i < rem; i++) t[i] = w[(size_t)oc * (size_t)K + (size_t)(4 * nfull + i)];
        }
    }
    for (int32_t i = K; i < K4; i++) xb0[i] = xb1[i] = 0.0f;

    const int direct = p->k_h == 1 && p->k_w == 1 && p->pad_h == 0 && p->pad_w == 0 && rem == 0;
    const float32x4_t lo = vdupq_n_f32(p->act_min), hi = vdupq_n_f32(p->act_max);

    for (int32_t pix = 0; pix < npix; pix += 2) {
        const int two = pix + 1 < npix;
        const float *xs[2];
        for (int k = 0; k < 2; k++) {
            const int32_t q = (k == 1 && !two) ? pix : pix + k;
            const int32_t oy = q / p->out_w, ox = q % p->out_w;
            if (direct) {
                xs[k] = in + ((size_t)oy * (size_t)p->stride_h * (size_t)p->in_w +
                              (size_t)ox * (size_t)p->stride_w) * (size_t)p->in_c;
            } else {
                ec_im2col_f32(p, in, oy, ox, k ? xb1 : xb0);
                xs[k] = k ? xb1 : xb0;
            }
        }
        const float *x0 = xs[0], *x1 = xs[1];
        float *o0 = out + (size_t)pix * (size_t)out_c, *o1 = o0 + out_c;

        for (int32_t o = 0; o < out_c; o += 4) {
            const int32_t n = out_c - o < 4 ? out_c - o : 4;
            const int32_t r1 = n > 1 ? o + 1 : o, r2 = n > 2 ? o + 2 : o, r3 = n > 3 ? o + 3 : o;
            const float *w0 = w + (size_t)o * (size_t)K, *w1 = w + (size_t)r1 * (size_t)K;
            const float *w2 = w + (size_t)r2 * (size_t)K, *w3 = w + (size_t)r3 * (size_t)K;
            float32x4_t a00 = vdupq_n_f32(0.0f), a01 = a00, a02 = a00, a03 = a00;
            float32x4_t a10 = a00, a11 = a00, a12 = a00, a13 = a00;
            for (int32_t c = 0; c < nfull; c++) {
                const float32x4_t v0 = vld1q_f32(x0 + 4 * c), v1 = vld1q_f32(x1 + 4 * c);
                const float32x4_t f0 = vld1q_f32(w0 + 4 * c), f1 = vld1q_f32(w1 + 4 * c);
                const float32x4_t f2 = vld1q_f32(w2 + 4 * c), f3 = vld1q_f32(w3 + 4 * c);
                a00 = vfmaq_f32(a00, v0, f0);
                a01 = vfmaq_f32(a01, v0, f1);
                a02 = vfmaq_f32(a02, v0, f2);
                a03 = vfmaq_f32(a03, v0, f3);
                a10 = vfmaq_f32(a10, v1, f0);
                a11 = vfmaq_f32(a11, v1, f1);
                a12 = vfmaq_f32(a12, v1, f2);
                a13 = vfmaq_f32(a13, v1, f3);
            }
            if (rem) {
                const float32x4_t v0 = vld1q_f32(x0 + 4 * nfull), v1 = vld1q_f32(x1 + 4 * nfull);
                const float32x4_t f0 = vld1q_f32(tails + 4 * o), f1 = vld1q_f32(tails + 4 * r1);
                const float32x4_t f2 = vld1q_f32(tails + 4 * r2), f3 = vld1q_f32(tails + 4 * r3);
                a00 = vfmaq_f32(a00, v0, f0);
                a01 = vfmaq_f32(a01, v0, f1);
                a02 = vfmaq_f32(a02, v0, f2);
                a03 = vfmaq_f32(a03, v0, f3);
                a10 = vfmaq_f32(a10, v1, f0);
                a11 = vfmaq_f32(a11, v1, f1);
                a12 = vfmaq_f32(a12, v1, f2);
                a13 = vfmaq_f32(a13, v1, f3);
            }
            float32x4_t s0 = vpaddq_f32(vpaddq_f32(a00, a01), vpaddq_f32(a02, a03));
            float32x4_t s1 = vpaddq_f32(vpaddq_f32(a10, a11), vpaddq_f32(a12, a13));
            if (bias) {
                float tb[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                if (n < 4)
                    for (int32_t j = 0; j < n; j++) tb[j] = bias[o + j];
                const float32x4_t b = vld1q_f32(n == 4 ? bias + o : tb);
                s0 = vaddq_f32(s0, b);
                s1 = vaddq_f32(s1, b);
            }
            s0 = vminq_f32(vmaxq_f32(s0, lo), hi);
            s1 = vminq_f32(vmaxq_f32(s1, lo), hi);
            if (n == 4) {
                vst1q_f32(o0 + o, s0);
                if (two) vst1q_f32(o1 + o, s1);
            } else {
                float t0[4], t1[4];
                vst1q_f32(t0, s0);
                vst1q_f32(t1, s1);
                for (int32_t j = 0; j < n; j++) {
                    o0[o + j] = t0[j];
                    if (two) o1[o + j] = t1[j];
                }
            }
        }
    }
}

#endif /* EC_CONVF_NEON */

void ec_conv2d_f32(const ec_conv_f32_params_t *p, const float *in, const float *w, const float *bias,
                   float *out, void *scratch) {
#if EC_CONVF_NEON
    if (scratch) {
        ec_conv2d_f32_neon(p, in, w, bias, out, scratch);
        return;
    }
#endif
    (void)scratch;
    ec_conv2d_f32_loop(p, in, w, bias, out);
}
