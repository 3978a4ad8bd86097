#include "ec_activation.h"

/* TFLite's float logistic: saturate above 16.619..., exp(x) below -9, else 1 / (1 + exp(-x)). */
void ec_logistic_f32(const ec_act_f32_params_t *p, const float *in, float *out) {
    for (int32_t i = 0; i < p->size; i++) {
        float x = in[i];
        float y;
        if (x > 16.619047164916992f) y = 1.0f;
        else if (x < -9.0f) y = expf(x);
        else y = 1.0f / (1.0f + expf(-x));
        out[i] = y;
    }
}
