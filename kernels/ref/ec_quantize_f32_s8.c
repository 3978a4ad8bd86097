#include "ec_shape.h"

/* q = clamp(round_half_away(x / scale) + zp): the division in float32, std::round without libm.
 * Clamping the quotient to +-512 first changes no result (|zp| <= 128) and keeps the cast defined;
 * NaN quantizes to the zero point, as TFLite's saturating cast gives 0. */
void ec_quantize_f32_s8(const ec_quantize_f32_s8_params_t *p, const float *in, int8_t *out) {
    for (int32_t i = 0; i < p->size; i++) {
        float v = in[i] / p->scale;
        if (v != v) v = 0.0f;
        v = v < -512.0f ? -512.0f : (v > 512.0f ? 512.0f : v);
        int32_t t = (int32_t)v;             /* truncates toward zero */
        float frac = v - (float)t;          /* exact */
        t += frac >= 0.5f ? 1 : (frac <= -0.5f ? -1 : 0);
        out[i] = ec_sat_s8(t + p->zero_point);
    }
}
