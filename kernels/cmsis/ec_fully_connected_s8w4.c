#include "ec_lowbit.h"
#include "ec_cmsis.h"

/* FULLY_CONNECTED, int8 activations, int4 weights (ec_lowbit.h), for Cortex-M cores with the DSP
 * extension: 4 inputs per step -- the input word widened with the offset applied (SXTAB16: lanes x0,x2 /
 * x1,x3), the 16-bit weight half-word (nibbles w0..w3) spread into lanes (w0,w2) / (w1,w3) and
 * sign-extended per lane ((v ^ 8) - 8 with SSUB16), then dual MACs (SMLAD). No scratch. Bit-exact with
 * kernels/ref/ec_fully_connected_s8w4.c; without __ARM_FEATURE_DSP the portable loop runs. */

void ec_fully_connected_s8w4(const ec_fc_s8_params_t *p, const int8_t *in, const uint8_t *w,
                             const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    const int32_t n = p->in_features, in_zp = p->in_zp;
    const size_t row_bytes = ((size_t)n + 1u) / 2u;
#if defined(EC_CMSIS_DSP)
    const uint32_t off2 = ((uint32_t)(-in_zp) & 0xFFFFu) * 0x10001u;
#endif
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *x = in + (size_t)b * (size_t)n;
        for (int32_t o = 0; o < p->out_features; o++) {
            const uint8_t *row = w + (size_t)o * row_bytes;
            int32_t acc = bias ? bias[o] : 0;
            int32_t i = 0;
#if defined(EC_CMSIS_DSP)
            for (; i + 4 <= n; i += 4) {
                const uint32_t xv = (uint32_t)ec_rd32(x + i);
                const uint32_t x02 = __sxtab16(off2, xv), x13 = ec_sxtab16_ror8(off2, xv);
                const uint32_t v = (uint32_t)row[i >> 1] | ((uint32_t)row[(i >> 1) + 1] << 8);
                const uint32_t e = ((v & 0x0F0Fu) | ((v & 0x0F0Fu) << 8)) & 0x000F000Fu;   /* w0 | w2 << 16 */
                const uint32_t od = ((v >> 4) | (v << 4)) & 0x000F000Fu;                  /* w1 | w3 << 16 */
                const uint32_t w02 = (uint32_t)__ssub16(e ^ 0x00080008u, 0x00080008u);
                const uint32_t w13 = (uint32_t)__ssub16(od ^ 0x00080008u, 0x00080008u);
                acc = __smlad(w02, x02, acc);
                acc = __smlad(w13, x13, acc);
            }
#endif
            for (; i + 1 < n; i += 2) {
                const uint32_t byte = row[i >> 1];
                const int32_t w0 = (int32_t)((byte & 15u) ^ 8u) - 8, w1 = (int32_t)((byte >> 4) ^ 8u) - 8;
                acc += w0 * ((int32_t)x[i] - in_zp) + w1 * ((int32_t)x[i + 1] - in_zp);
            }
            if (i < n) acc += ((int32_t)((row[i >> 1] & 15u) ^ 8u) - 8) * ((int32_t)x[i] - in_zp);
            acc = ec_requantize(acc, p->mult[o], p->shift[o]) + p->out_zp;
            out[(size_t)b * (size_t)p->out_features + (size_t)o] = (int8_t)ec_clamp_i32(acc, p->act_min, p->act_max);
        }
    }
}
