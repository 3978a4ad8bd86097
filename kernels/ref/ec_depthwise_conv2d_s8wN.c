#include "ec_lowbit_conv.h"

/* DEPTHWISE_CONV_2D, int8 activations, packed low-bit weights (ec_lowbit.h): row oc (output channel
 * oc = ic * depth_mult + m) holds its k_h * k_w codes of p->bits bits, w[ky][kx][oc] =
 * lut[oc * lut_stride + code(row oc, ky * k_w + kx)]. Otherwise ec_depthwise_conv2d_s8 (TFLite Micro
 * reference_integer_ops::DepthwiseConvPerChannel) bit for bit; no scratch. The loop is
 * ec_depthwise_wN_generic (ec_lowbit_conv.h), which the ISA variants fall back to. */

void ec_depthwise_conv2d_s8wN(const ec_conv_s8wN_params_t *p, const int8_t *in, const uint8_t *w,
                              const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    ec_depthwise_wN_generic(p, in, w, bias, out);
}
