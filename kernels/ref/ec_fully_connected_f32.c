#include "ec_conv.h"

void ec_fully_connected_f32(const ec_fc_f32_params_t *p, const float *in, const float *w,
                            const float *bias, float *out, void *scratch) {
    (void)scratch;
    for (int32_t b = 0; b < p->batches; b++) {
        const float *x = in + (size_t)b * (size_t)p->in_features;
        for (int32_t o = 0; o < p->out_features; o++) {
            const float *row = w + (size_t)o * (size_t)p->in_features;
            float acc = 0.0f;
            for (int32_t i = 0; i < p->in_features; i++) acc += row[i] * x[i];
            if (bias) acc += bias[o];
            acc = acc < p->act_min ? p->act_min : (acc > p->act_max ? p->act_max : acc);
            out[(size_t)b * (size_t)p->out_features + (size_t)o] = acc;
        }
    }
}
