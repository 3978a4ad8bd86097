#include "ec_activation.h"

/* x * relu6(x + 3) / 6 */
void ec_hard_swish_f32(const ec_act_f32_params_t *p, const float *in, float *out) {
    for (int32_t i = 0; i < p->size; i++) {
        float x = in[i];
        float r = x + 3.0f;
        r = r < 0.0f ? 0.0f : (r > 6.0f ? 6.0f : r);
        out[i] = x * r / 6.0f;
    }
}
