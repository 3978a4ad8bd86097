#include "ec_conv.h"
#include "ec_opt.h"

/* CONV_2D int8, portable optimized (auto-vectorized C99), bit-exact with kernels/ref/ec_conv2d_s8.c
 * (TFLite Micro reference_integer_ops::ConvPerChannel).
 *
 * Weights (ec_opt.h): int16 rows w[ceil4(out_c)][ceil16(K)], K = k_h * k_w * in_c in (ky, kx, ic) order,
 * the padding zero; bias (may be NULL) and mult/shift as for ref. Per output pixel the patch x - in_zp
 * is gathered as int16 into a stack buffer (taps outside the image: 0, exactly the terms the ref kernel
 * skips; zeros up to a multiple of 16), then every output channel is an int16 dot product with its row
 * (ec_opt_dot4_s16, 4 channels at a time), then requantization with per-channel constants prepared once
 * per call for each run of EC_OPT_RQ channels. Patches longer than EC_OPT_PATCH elements are
 * accumulated in chunks (re-gathered per run of channels). No scratch; ~6 KB of stack. */

/* dst[k - k0] = x - in_zp for the patch elements k in [k0, k0 + len) (0 for taps outside the image),
 * then zeros up to ceil16(len). */
static void ec_gather(const ec_conv_s8_params_t *p, const int8_t *in, int32_t iy0, int32_t ix0, int32_t ky_lo,
                      int32_t ky_hi, int32_t kx_lo, int32_t kx_hi, int32_t k0, int32_t len, int16_t *dst) {
    const int32_t in_c = p->in_c, zp = p->in_zp;
    const int32_t row = p->k_w * in_c;
    int32_t k = 0;
    if (k0 == 0 && kx_lo == 0 && kx_hi == p->k_w && p->dil_w == 1) {
        /* whole rows of the window inside the image: one contiguous run of k_w * in_c inputs per row */
        for (int32_t ky = 0; ky < p->k_h && k < len; ky++, k += row) {
            const int32_t n = row < len - k ? row : len - k;
            if (ky >= ky_lo && ky < ky_hi) {
                const int32_t iy = iy0 + ky * p->dil_h;
                ec_opt_widen_s8(in + ((size_t)iy * (size_t)p->in_w + (size_t)ix0) * (size_t)in_c, zp, n, dst + k);
            } else {
                for (int32_t j = 0; j < n; j++) dst[k + j] = 0;
            }
        }
        k = len;
    } else {
        int32_t t = k0 / in_c, i = k0 - t * in_c;
        int32_t ky = t / p->k_w, kx = t - ky * p->k_w;
        while (k < len) {
            const int32_t n = in_c - i < len - k ? in_c - i : len - k;
            if (ky >= ky_lo && ky < ky_hi && kx >= kx_lo && kx < kx_hi) {
                const int32_t iy = iy0 + ky * p->dil_h, ix = ix0 + kx * p->dil_w;
                ec_opt_widen_s8(in + ((size_t)iy * (size_t)p->in_w + (size_t)ix) * (size_t)in_c + (size_t)i, zp, n,
                                dst + k);
            } else {
                for (int32_t j = 0; j < n; j++) dst[k + j] = 0;
            }
            k += n;
            i = 0;
            if (++kx == p->k_w) {
                kx = 0;
                ky++;
            }
        }
    }
    for (; k < ec_opt_ceil16(len); k++) dst[k] = 0;
}

void ec_conv2d_s8(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                  int8_t *out, void *scratch) {
    (void)scratch;
    int16_t patch[EC_OPT_PATCH];
    ec_opt_requant_t q;
    const int16_t *w16 = (const int16_t *)(const void *)w;
    const int32_t out_c = p->out_c;
    const int32_t K = p->k_h * p->k_w * p->in_c, Kp = ec_opt_ceil16(K);
    const int32_t chunk = K <= EC_OPT_PATCH ? K : EC_OPT_PATCH;
    for (int32_t c0 = 0; c0 < out_c; c0 += EC_OPT_RQ) {   /* runs of EC_OPT_RQ output channels */
        const int32_t nc = out_c - c0 < EC_OPT_RQ ? out_c - c0 : EC_OPT_RQ, nc4 = (nc + 3) & ~3;
        const int16_t *wc = w16 + (size_t)c0 * (size_t)Kp;
        ec_opt_requant_init(&q, p->mult + c0, p->shift + c0, 1, nc);
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            int32_t ky_lo, ky_hi;
            ec_opt_tap_range(iy0, p->dil_h, p->in_h, p->k_h, &ky_lo, &ky_hi);
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int32_t kx_lo, kx_hi;
                ec_opt_tap_range(ix0, p->dil_w, p->in_w, p->k_w, &kx_lo, &kx_hi);
                int32_t acc[EC_OPT_RQ];
                for (int32_t j = 0; j < nc4; j++) acc[j] = bias && j < nc ? bias[c0 + j] : 0;
                for (int32_t k0 = 0; k0 < K; k0 += chunk) {
                    const int32_t len = K - k0 < chunk ? K - k0 : chunk;
                    ec_gather(p, in, iy0, ix0, ky_lo, ky_hi, kx_lo, kx_hi, k0, len, patch);
                    for (int32_t g = 0; g < nc4; g += 4)
                        ec_opt_dot4_s16(patch, wc + (size_t)g * (size_t)Kp + (size_t)k0, (size_t)Kp,
                                        ec_opt_ceil16(len), acc + g);
                }
                int8_t *o = out + ((size_t)oy * (size_t)p->out_w + (size_t)ox) * (size_t)out_c + (size_t)c0;
                ec_opt_requant_s8(&q, acc, nc, p->out_zp, p->act_min, p->act_max, o);
            }
        }
    }
}
