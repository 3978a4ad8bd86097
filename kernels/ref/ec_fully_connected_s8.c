#include "ec_conv.h"

/* out[b][o] = clamp(out_zp + requant(bias[o] + sum_i w[o][i] * (in[b][i] - in_zp))) */
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
