#include "ec_lowbit.h"

/* FULLY_CONNECTED, int8 activations, 2-bit weights (2-bit two's complement codes: int2 uniform and
 * ternary, -1 = 0b11; four per byte, element 4k in bits 0-1; rows of (in_features + 3) / 4 bytes).
 * Otherwise ec_fully_connected_s8. */
void ec_fully_connected_s8w2(const ec_fc_s8_params_t *p, const int8_t *in, const uint8_t *w,
                             const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    const int32_t n = p->in_features, in_zp = p->in_zp;
    const size_t row_bytes = ((size_t)n + 3u) / 4u;
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *x = in + (size_t)b * (size_t)n;
        for (int32_t o = 0; o < p->out_features; o++) {
            const uint8_t *row = w + (size_t)o * row_bytes;
            int32_t acc = bias ? bias[o] : 0;
            int32_t i = 0;
            for (; i + 3 < n; i += 4) {
                const uint32_t byte = row[i >> 2];
                acc += ((int32_t)((byte & 3u) ^ 2u) - 2) * ((int32_t)x[i] - in_zp)
                     + ((int32_t)(((byte >> 2) & 3u) ^ 2u) - 2) * ((int32_t)x[i + 1] - in_zp)
                     + ((int32_t)(((byte >> 4) & 3u) ^ 2u) - 2) * ((int32_t)x[i + 2] - in_zp)
                     + ((int32_t)((byte >> 6) ^ 2u) - 2) * ((int32_t)x[i + 3] - in_zp);
            }
            for (; i < n; i++) {
                const uint32_t c = ((uint32_t)row[i >> 2] >> (2u * ((uint32_t)i & 3u))) & 3u;
                acc += ((int32_t)(c ^ 2u) - 2) * ((int32_t)x[i] - in_zp);
            }
            acc = ec_requantize(acc, p->mult[o], p->shift[o]) + p->out_zp;
            out[(size_t)b * (size_t)p->out_features + (size_t)o] = (int8_t)ec_clamp_i32(acc, p->act_min, p->act_max);
        }
    }
}
