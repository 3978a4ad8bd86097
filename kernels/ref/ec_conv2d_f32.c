#include "ec_conv_loops.h"

/* CONV_2D float32 (TFLite Micro reference_ops::Conv): float accumulation over the taps inside the
 * image, + bias, then the activation clamp. */

void ec_conv2d_f32(const ec_conv_f32_params_t *p, const float *in, const float *w, const float *bias,
                   float *out, void *scratch) {
    (void)scratch;
    ec_conv2d_f32_loop(p, in, w, bias, out);
}
