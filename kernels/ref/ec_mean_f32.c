#include "ec_pool.h"

/* The float sum per output divided by the number of reduced elements. */
void ec_mean_f32(const ec_mean_f32_params_t *p, const float *in, float *out) {
    const int32_t *od = p->out_dims, *os = p->out_stride, *rd = p->red_dims, *rs = p->red_stride;
    for (int32_t o0 = 0; o0 < od[0]; o0++)
    for (int32_t o1 = 0; o1 < od[1]; o1++)
    for (int32_t o2 = 0; o2 < od[2]; o2++)
    for (int32_t o3 = 0; o3 < od[3]; o3++)
    for (int32_t o4 = 0; o4 < od[4]; o4++) {
        const float *base = in + ((size_t)o0 * (size_t)os[0] + (size_t)o1 * (size_t)os[1] + (size_t)o2 * (size_t)os[2]
                                  + (size_t)o3 * (size_t)os[3] + (size_t)o4 * (size_t)os[4]);
        float sum = 0.0f;
        for (int32_t r0 = 0; r0 < rd[0]; r0++)
        for (int32_t r1 = 0; r1 < rd[1]; r1++)
        for (int32_t r2 = 0; r2 < rd[2]; r2++)
        for (int32_t r3 = 0; r3 < rd[3]; r3++) {
            const float *x = base + ((size_t)r0 * (size_t)rs[0] + (size_t)r1 * (size_t)rs[1]
                                     + (size_t)r2 * (size_t)rs[2] + (size_t)r3 * (size_t)rs[3]);
            const size_t s4 = (size_t)rs[4];
            if (s4 == 1) {
                for (int32_t r4 = 0; r4 < rd[4]; r4++) sum += x[r4];
            } else {
                for (int32_t r4 = 0; r4 < rd[4]; r4++) sum += x[(size_t)r4 * s4];
            }
        }
        *out++ = p->count > 0 ? sum / (float)p->count : 0.0f;
    }
}
