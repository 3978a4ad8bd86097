#include "ec_shape.h"

/* TFLite's float ResizeBilinear, the same expression evaluated in the same order. */
void ec_resize_bilinear_f32(const ec_resize_bilinear_f32_params_t *p, const float *in, float *out) {
    const int32_t C = p->channels;
    const size_t in_row = (size_t)p->in_w * (size_t)C;
    for (int32_t b = 0; b < p->batches; b++) {
        const float *img = in + (size_t)b * (size_t)p->in_h * in_row;
        for (int32_t y = 0; y < p->out_h; y++) {
            const float *r0 = img + (size_t)p->y0[y] * in_row;
            const float *r1 = img + (size_t)p->y1[y] * in_row;
            const float dy = p->dy[y], ry = 1.0f - dy;
            for (int32_t x = 0; x < p->out_w; x++) {
                const float dx = p->dx[x], rx = 1.0f - dx;
                const float *a = r0 + (size_t)p->x0[x] * (size_t)C, *bb = r1 + (size_t)p->x0[x] * (size_t)C;
                const float *c = r0 + (size_t)p->x1[x] * (size_t)C, *d = r1 + (size_t)p->x1[x] * (size_t)C;
                for (int32_t ch = 0; ch < C; ch++)
                    *out++ = a[ch] * ry * rx + bb[ch] * dy * rx + c[ch] * ry * dx + d[ch] * dy * dx;
            }
        }
    }
}
