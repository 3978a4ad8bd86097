#include "ec_lowbit.h"

/* FULLY_CONNECTED, int8 activations, int4 weights (4-bit two's complement codes, two per byte, element
 * 2k in the low nibble; rows of (in_features + 1) / 2 bytes). Otherwise ec_fully_connected_s8. */
void ec_fully_connected_s8w4(const ec_fc_s8_params_t *p, const int8_t *in, const uint8_t *w,
                             const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    const int32_t n = p->in_features, in_zp = p->in_zp;
    const size_t row_bytes = ((size_t)n + 1u) / 2u;
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *x = in + (size_t)b * (size_t)n;
        for (int32_t o = 0; o < p->out_features; o++) {
            const uint8_t *row = w + (size_t)o * row_bytes;
            int32_t acc = bias ? bias[o] : 0;
            int32_t i = 0;
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
