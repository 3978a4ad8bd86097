#include "ec_lowbit.h"

/* FULLY_CONNECTED, int8 activations, binary weights (1 bit: 1 -> +1, 0 -> -1; eight per byte, element 8k
 * in bit 0; rows of (in_features + 7) / 8 bytes), with additions only:
 *   sum_i w_i (x_i - zp) = 2 * sum_{w_i = +1} (x_i - zp) - sum_i (x_i - zp),
 * the last sum computed once per input row. Otherwise ec_fully_connected_s8 (the int32 result is the
 * same whenever the int8 kernel's accumulator does not overflow). */
void ec_fully_connected_s8w1(const ec_fc_s8_params_t *p, const int8_t *in, const uint8_t *w,
                             const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    const int32_t n = p->in_features, in_zp = p->in_zp;
    const size_t row_bytes = ((size_t)n + 7u) / 8u;
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *x = in + (size_t)b * (size_t)n;
        int32_t total = 0;
        for (int32_t i = 0; i < n; i++) total += (int32_t)x[i] - in_zp;
        for (int32_t o = 0; o < p->out_features; o++) {
            const uint8_t *row = w + (size_t)o * row_bytes;
            int32_t pos = 0;
            int32_t i = 0;
            for (; i + 7 < n; i += 8) {
                uint32_t byte = row[i >> 3];
                const int8_t *xs = x + i;
                for (int32_t k = 0; k < 8; k++, byte >>= 1)
                    if (byte & 1u) pos += (int32_t)xs[k] - in_zp;
            }
            for (; i < n; i++)
                if ((row[i >> 3] >> (i & 7)) & 1u) pos += (int32_t)x[i] - in_zp;
            int32_t acc = (bias ? bias[o] : 0) + 2 * pos - total;
            acc = ec_requantize(acc, p->mult[o], p->shift[o]) + p->out_zp;
            out[(size_t)b * (size_t)p->out_features + (size_t)o] = (int8_t)ec_clamp_i32(acc, p->act_min, p->act_max);
        }
    }
}
