#include "ec_conv.h"
#include "ec_opt.h"

/* FULLY_CONNECTED int8, portable optimized (auto-vectorized C99), bit-exact with
 * kernels/ref/ec_fully_connected_s8.c (TFLite Micro reference_integer_ops::FullyConnected).
 *
 * Weights (ec_opt.h): int16 rows w[ceil4(out_features)][ceil16(in_features)], the padding zero; bias (may
 * be NULL) and mult/shift as for ref. Per input row, x - in_zp is staged as int16 in a stack buffer
 * (zeros up to a multiple of 16; chunks of EC_OPT_PATCH), every output feature is an int16 dot product
 * with its row (ec_opt_dot4_s16), then requantization with per-feature constants prepared once per
 * call for each run of EC_OPT_RQ features. No scratch; ~6 KB of stack. */

void ec_fully_connected_s8(const ec_fc_s8_params_t *p, const int8_t *in, const int8_t *w,
                           const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    int16_t xs[EC_OPT_PATCH];
    ec_opt_requant_t q;
    const int16_t *w16 = (const int16_t *)(const void *)w;
    const int32_t out_f = p->out_features;
    const int32_t K = p->in_features, Kp = ec_opt_ceil16(K);
    const int32_t chunk = K <= EC_OPT_PATCH ? K : EC_OPT_PATCH;
    for (int32_t c0 = 0; c0 < out_f; c0 += EC_OPT_RQ) {   /* runs of EC_OPT_RQ output features */
        const int32_t nc = out_f - c0 < EC_OPT_RQ ? out_f - c0 : EC_OPT_RQ, nc4 = (nc + 3) & ~3;
        const int16_t *wc = w16 + (size_t)c0 * (size_t)Kp;
        ec_opt_requant_init(&q, p->mult + c0, p->shift + c0, 1, nc);
        for (int32_t b = 0; b < p->batches; b++) {
            const int8_t *x = in + (size_t)b * (size_t)K;
            int32_t acc[EC_OPT_RQ];
            for (int32_t j = 0; j < nc4; j++) acc[j] = bias && j < nc ? bias[c0 + j] : 0;
            for (int32_t k0 = 0; k0 < K; k0 += chunk) {
                const int32_t len = K - k0 < chunk ? K - k0 : chunk, len16 = ec_opt_ceil16(len);
                ec_opt_widen_s8(x + k0, p->in_zp, len, xs);
                for (int32_t k = len; k < len16; k++) xs[k] = 0;
                for (int32_t g = 0; g < nc4; g += 4)
                    ec_opt_dot4_s16(xs, wc + (size_t)g * (size_t)Kp + (size_t)k0, (size_t)Kp, len16, acc + g);
            }
            ec_opt_requant_s8(&q, acc, nc, p->out_zp, p->act_min, p->act_max, out + (size_t)b * (size_t)out_f + c0);
        }
    }
}
