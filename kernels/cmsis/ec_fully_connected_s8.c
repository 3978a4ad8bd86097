#include "ec_conv.h"
#include "ec_cmsis.h"

/* FULLY_CONNECTED int8 for Cortex-M cores with the DSP extension (as CMSIS-NN's
 * arm_fully_connected_s8): four weight rows at a time against one input row; each 4-byte input
 * word is widened once with the input offset applied (SXTAB16) and each weight word sign-extended
 * (SXTB16), then dual 16-bit MACs (SMLAD). No scratch. Bit-exact with
 * kernels/ref/ec_fully_connected_s8.c; without __ARM_FEATURE_DSP the portable reference loop runs.
 * Requires mult[] >= 0 (as TFLite's QuantizeMultiplier produces). */

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(__ARM_BIG_ENDIAN) && !defined(EC_NO_DSP)
EC_INLINE int8_t ec_fc_out(int32_t acc, const ec_fc_s8_params_t *p, int32_t o) {
    acc = ec_cm_requantize(acc, p->mult[o], p->shift[o]) + p->out_zp;
    return (int8_t)ec_clamp_i32(acc, p->act_min, p->act_max);
}

void ec_fully_connected_s8(const ec_fc_s8_params_t *p, const int8_t *in, const int8_t *w,
                           const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    const int32_t n_in = p->in_features, n_out = p->out_features, in_zp = p->in_zp;
    const int32_t n4 = n_in >> 2;
    const uint32_t off2 = ((uint32_t)(-in_zp) & 0xFFFFu) * 0x10001u;
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *x = in + (size_t)b * (size_t)n_in;
        int8_t *y = out + (size_t)b * (size_t)n_out;
        const int8_t *w0 = w;
        int32_t o = 0;
        for (; o + 3 < n_out; o += 4) {
            const int8_t *w1 = w0 + n_in, *w2 = w1 + n_in, *w3 = w2 + n_in;
            const int8_t *xp = x;
            int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            if (bias) {
                a0 = bias[o];
                a1 = bias[o + 1];
                a2 = bias[o + 2];
                a3 = bias[o + 3];
            }
            for (int32_t n = n4; n > 0; n--) {
                const uint32_t xv = ec_rd32(xp);
                xp += 4;
                const uint32_t x02 = __sxtab16(off2, xv), x13 = ec_sxtab16_ror8(off2, xv);
                uint32_t v = ec_rd32(w0);
                w0 += 4;
                a0 = __smlad(__sxtb16(v), x02, a0);
                a0 = __smlad(ec_sxtb16_ror8(v), x13, a0);
                v = ec_rd32(w1);
                w1 += 4;
                a1 = __smlad(__sxtb16(v), x02, a1);
                a1 = __smlad(ec_sxtb16_ror8(v), x13, a1);
                v = ec_rd32(w2);
                w2 += 4;
                a2 = __smlad(__sxtb16(v), x02, a2);
                a2 = __smlad(ec_sxtb16_ror8(v), x13, a2);
                v = ec_rd32(w3);
                w3 += 4;
                a3 = __smlad(__sxtb16(v), x02, a3);
                a3 = __smlad(ec_sxtb16_ror8(v), x13, a3);
            }
            for (int32_t i = n4 << 2; i < n_in; i++) {
                const int32_t xi = (int32_t)x[i] - in_zp;
                a0 += *w0++ * xi;
                a1 += *w1++ * xi;
                a2 += *w2++ * xi;
                a3 += *w3++ * xi;
            }
            y[o] = ec_fc_out(a0, p, o);
            y[o + 1] = ec_fc_out(a1, p, o + 1);
            y[o + 2] = ec_fc_out(a2, p, o + 2);
            y[o + 3] = ec_fc_out(a3, p, o + 3);
            w0 = w3;
        }
        for (; o < n_out; o++) {
            const int8_t *xp = x;
            int32_t a0 = bias ? bias[o] : 0;
            for (int32_t n = n4; n > 0; n--) {
                const uint32_t xv = ec_rd32(xp), v = ec_rd32(w0);
                xp += 4;
                w0 += 4;
                a0 = __smlad(__sxtb16(v), __sxtab16(off2, xv), a0);
                a0 = __smlad(ec_sxtb16_ror8(v), ec_sxtab16_ror8(off2, xv), a0);
            }
            for (int32_t i = n4 << 2; i < n_in; i++) a0 += *w0++ * ((int32_t)x[i] - in_zp);
            y[o] = ec_fc_out(a0, p, o);
        }
    }
}

#else /* portable: the reference loop */

void ec_fully_connected_s8(const ec_fc_s8_params_t *p, const int8_t *in, const int8_t *w,
                           const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *x = in + (size_t)b * (size_t)p->in_features;
        for (int32_t o = 0; o < p->out_features; o++) {
            const int8_t *row = w + (size_t)o * (size_t)p->in_features;
            int32_t acc = bias ? bias[o] : 0;
            for (int32_t i = 0; i < p->in_features; i++) acc += (int32_t)row[i] * ((int32_t)x[i] - p->in_zp);
            acc = ec_requantize(acc, p->mult[o], p->shift[o]) + p->out_zp;
            out[(size_t)b * (size_t)p->out_features + (size_t)o] = (int8_t)ec_clamp_i32(acc, p->act_min, p->act_max);
        }
    }
}

#endif
