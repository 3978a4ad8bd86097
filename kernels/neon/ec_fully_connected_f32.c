#include "ec_conv.h"

/* FULLY_CONNECTED float32, arm64 NEON (kernels/ref/ec_fully_connected_f32.c: TFLite Micro
 * reference_ops::FullyConnected): out[b][o] = clamp(sum_i w[o][i] * in[b][i] + bias[o]), equal to the
 * reference up to float32 summation order. 4 weight rows at a time, 4 inputs per vfmaq_f32 step, the
 * last in_features % 4 inputs scalar. No scratch. */

#if defined(__aarch64__) && defined(__ARM_NEON)
#include <arm_neon.h>
#define EC_FCF_NEON 1
#else
#define EC_FCF_NEON 0
#endif

EC_INLINE float ec_fc_clamp(float v, float lo, float hi) { return v < lo ? lo : (v > hi ? hi : v); }

void ec_fully_connected_f32(const ec_fc_f32_params_t *p, const float *in, const float *w,
                            const float *bias, float *out, void *scratch) {
    (void)scratch;
    const int32_t I = p->in_features, O = p->out_features;
    for (int32_t b = 0; b < p->batches; b++) {
        const float *x = in + (size_t)b * (size_t)I;
        float *y = out + (size_t)b * (size_t)O;
        int32_t o = 0;
#if EC_FCF_NEON
        const int32_t nfull = I / 4;
        for (; o + 4 <= O; o += 4) {
            const float *w0 = w + (size_t)o * (size_t)I, *w1 = w0 + I, *w2 = w1 + I, *w3 = w2 + I;
            float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
            for (int32_t c = 0; c < nfull; c++) {
                const float32x4_t xv = vld1q_f32(x + 4 * c);
                a0 = vfmaq_f32(a0, xv, vld1q_f32(w0 + 4 * c));
                a1 = vfmaq_f32(a1, xv, vld1q_f32(w1 + 4 * c));
                a2 = vfmaq_f32(a2, xv, vld1q_f32(w2 + 4 * c));
                a3 = vfmaq_f32(a3, xv, vld1q_f32(w3 + 4 * c));
            }
            float32x4_t s = vpaddq_f32(vpaddq_f32(a0, a1), vpaddq_f32(a2, a3));
            float t[4];
            vst1q_f32(t, s);
            for (int32_t i = 4 * nfull; i < I; i++) {
                t[0] += w0[i] * x[i];
                t[1] += w1[i] * x[i];
                t[2] += w2[i] * x[i];
                t[3] += w3[i] * x[i];
            }
            s = vld1q_f32(t);
            if (bias) s = vaddq_f32(s, vld1q_f32(bias + o));
            s = vminq_f32(vmaxq_f32(s, vdupq_n_f32(p->act_min)), vdupq_n_f32(p->act_max));
            vst1q_f32(y + o, s);
        }
        for (; o < O; o++) {   /* the last out_features % 4 rows: one at a time */
            const float *row = w + (size_t)o * (size_t)I;
            float32x4_t a = vdupq_n_f32(0.0f);
            for (int32_t c = 0; c < nfull; c++) a = vfmaq_f32(a, vld1q_f32(x + 4 * c), vld1q_f32(row + 4 * c));
            float acc = vaddvq_f32(a);
            for (int32_t i = 4 * nfull; i < I; i++) acc += row[i] * x[i];
            if (bias) acc += bias[o];
            y[o] = ec_fc_clamp(acc, p->act_min, p->act_max);
        }
#else
        for (; o < O; o++) {
            const float *row = w + (size_t)o * (size_t)I;
            float acc = 0.0f;
            for (int32_t i = 0; i < I; i++) acc += row[i] * x[i];
            if (bias) acc += bias[o];
            y[o] = ec_fc_clamp(acc, p->act_min, p->act_max);
        }
#endif
    }
}
