#include "ec_pool.h"

#define EC_POOL_CBLK 16   /* channels accumulated at once (contiguous reads, no scratch) */

/* TFLM reference integer_ops/pooling.h AveragePool: sum of the in-image taps, divided by their count
 * rounding half away from zero (C division truncates), then the activation clamp. */
void ec_avgpool_s8(const ec_pool_s8_params_t *p, const int8_t *in, int8_t *out) {
    const int32_t C = p->channels;
    int32_t acc[EC_POOL_CBLK];
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *img = in + (size_t)b * (size_t)p->in_h * (size_t)p->in_w * (size_t)C;
        for (int32_t oy = 0; oy < p->out_h; oy++) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            const int32_t fy0 = ec_max_i32(0, -iy0), fy1 = ec_min_i32(p->k_h, p->in_h - iy0);
            for (int32_t ox = 0; ox < p->out_w; ox++) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                const int32_t fx0 = ec_max_i32(0, -ix0), fx1 = ec_min_i32(p->k_w, p->in_w - ix0);
                int32_t count = (fy1 - fy0) * (fx1 - fx0);
                if (count <= 0) count = 1;   /* no in-image tap: cannot happen for valid geometry */
                for (int32_t c0 = 0; c0 < C; c0 += EC_POOL_CBLK) {
                    const int32_t nc = ec_min_i32(EC_POOL_CBLK, C - c0);
                    for (int32_t c = 0; c < nc; c++) acc[c] = 0;
                    for (int32_t fy = fy0; fy < fy1; fy++) {
                        for (int32_t fx = fx0; fx < fx1; fx++) {
                            const int8_t *px = img + ((size_t)(iy0 + fy) * (size_t)p->in_w + (size_t)(ix0 + fx)) * (size_t)C + (size_t)c0;
                            for (int32_t c = 0; c < nc; c++) acc[c] += px[c];
                        }
                    }
                    for (int32_t c = 0; c < nc; c++) {
                        const int32_t a = acc[c];
                        const int32_t v = a > 0 ? (a + count / 2) / count : (a - count / 2) / count;
                        *out++ = (int8_t)ec_clamp_i32(v, p->act_min, p->act_max);
                    }
                }
            }
        }
    }
}
