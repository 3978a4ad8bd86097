#include "ec_shape.h"

/* TFLite's ResizeBilinearInteger: a 20-bit fixed-point weighted sum, rounded half away from zero.
 * With fy, fx in [-512, 1024) each weight pair sums to at most 2048 in magnitude, so
 * |acc| <= 128 * 2048 * 2048 = 2^29 fits int32 (TFLite's int64 gives the same value). */
void ec_resize_bilinear_s8(const ec_resize_bilinear_s8_params_t *p, const int8_t *in, int8_t *out) {
    const int32_t C = p->channels;
    const size_t in_row = (size_t)p->in_w * (size_t)C;
    const int32_t one = 1 << 10;
    for (int32_t b = 0; b < p->batches; b++) {
        const int8_t *img = in + (size_t)b * (size_t)p->in_h * in_row;
        for (int32_t y = 0; y < p->out_h; y++) {
            const int8_t *r0 = img + (size_t)p->y0[y] * in_row;
            const int8_t *r1 = img + (size_t)p->y1[y] * in_row;
            const int32_t fy = p->fy[y];
            for (int32_t x = 0; x < p->out_w; x++) {
                const int32_t fx = p->fx[x];
                const int32_t w00 = (one - fy) * (one - fx), w10 = fy * (one - fx);
                const int32_t w01 = (one - fy) * fx, w11 = fy * fx;
                const int8_t *a = r0 + (size_t)p->x0[x] * (size_t)C, *bb = r1 + (size_t)p->x0[x] * (size_t)C;
                const int8_t *c = r0 + (size_t)p->x1[x] * (size_t)C, *d = r1 + (size_t)p->x1[x] * (size_t)C;
                for (int32_t ch = 0; ch < C; ch++) {
                    int32_t acc = a[ch] * w00 + bb[ch] * w10 + c[ch] * w01 + d[ch] * w11;
                    acc += acc > 0 ? (1 << 19) : -(1 << 19);
                    *out++ = (int8_t)(acc / (1 << 20)); /* C division truncates, as TFLite's */
                }
            }
        }
    }
}
