#include "ec_lowbit.h"

/* FULLY_CONNECTED, int8 activations, group-quantized weights (ec_lowbit.h): row o holds in_features codes
 * of q (p->bits bits, rows of (in_features * bits + 7) / 8 bytes), the weight of element i is
 * q * mult[o * groups + i / group_size]. acc = bias + sum_g m_g * sum_{i in g} q_i * (x_i - in_zp), then
 * ec_fully_connected_s8's requantization: bit-exact with it on the effective weights. No scratch. */
void ec_fully_connected_s8g(const ec_fc_s8g_params_t *p, const int8_t *in, const uint8_t *w,
                            const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    const ec_fc_s8_params_t *f = &p->fc;
    const int32_t n = f->in_features;
    const uint32_t bits = (uint32_t)p->bits, gs = (uint32_t)p->group_size;
    const size_t row_bytes = ((size_t)n * bits + 7u) / 8u;
    for (int32_t b = 0; b < f->batches; b++) {
        const int8_t *x = in + (size_t)b * (size_t)n;
        for (int32_t o = 0; o < f->out_features; o++) {
            const uint8_t *row = w + (size_t)o * row_bytes;
            const uint8_t *mult = p->mult + (size_t)o * (size_t)p->groups;
            int32_t acc = bias ? bias[o] : 0;
            acc += ec_group_run(row, mult, bits, gs, 0u, (uint32_t)n, x, 1u, f->in_zp);
            acc = ec_requantize(acc, f->mult[o], f->shift[o]) + f->out_zp;
            out[(size_t)b * (size_t)f->out_features + (size_t)o] = (int8_t)ec_clamp_i32(acc, f->act_min, f->act_max);
        }
    }
}
