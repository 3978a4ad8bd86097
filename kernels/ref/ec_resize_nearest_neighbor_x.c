#include "ec_shape.h"

void ec_resize_nearest_neighbor_x(const ec_resize_nearest_params_t *p, const void *in, void *out) {
    const size_t px = (size_t)p->pixel_bytes;
    const size_t in_row = (size_t)p->in_w * px;
    uint8_t *dst = (uint8_t *)out;
    for (int32_t b = 0; b < p->batches; b++) {
        const uint8_t *img = (const uint8_t *)in + (size_t)b * (size_t)p->in_h * in_row;
        for (int32_t y = 0; y < p->out_h; y++) {
            const uint8_t *src_row = img + (size_t)p->y_index[y] * in_row;
            for (int32_t x = 0; x < p->out_w; x++) {
                memcpy(dst, src_row + (size_t)p->x_index[x] * px, px);
                dst += px;
            }
        }
    }
}
