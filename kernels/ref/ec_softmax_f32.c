#include "ec_activation.h"

/* Softmax over rows of `depth`: exp((x - max) * beta) / sum. In-place safe: each row is read fully
 * (max) before out[] is written, and out[c] is written only after in[c] was read. */
void ec_softmax_f32(const ec_softmax_f32_params_t *p, const float *in, float *out) {
    const int32_t depth = p->depth;
    const float beta = p->beta;
    for (int32_t r = 0; r < p->outer; r++) {
        const float *x = in + (size_t)r * (size_t)depth;
        float *y = out + (size_t)r * (size_t)depth;
        float max = x[0];
        for (int32_t c = 1; c < depth; c++) max = x[c] > max ? x[c] : max;
        float sum = 0.0f;
        for (int32_t c = 0; c < depth; c++) {
            float e = expf((x[c] - max) * beta);
            y[c] = e;
            sum += e;
        }
        const float inv = 1.0f / sum;
        for (int32_t c = 0; c < depth; c++) y[c] *= inv;
    }
}
