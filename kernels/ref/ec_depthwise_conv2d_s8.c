#include "ec_conv_loops.h"

/* DEPTHWISE_CONV_2D int8 (TFLite Micro reference_integer_ops::DepthwiseConvPerChannel): output
 * channel oc = ic * depth_mult + m reads input channel ic with filter column oc (filter [1][k_h][k_w][out_c]):
 * out[oy][ox][oc] = clamp(out_zp + requant_oc(bias[oc] + sum w[ky][kx][oc] * (in[iy][ix][ic] - in_zp))). */

void ec_depthwise_conv2d_s8(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *w,
                            const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    ec_depthwise_conv2d_s8_loop(p, in, w, bias, out);
}
