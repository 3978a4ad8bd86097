#include "ec_lowbit_conv.h"

/* CONV_2D, int8 activations, packed low-bit weights (ec_lowbit.h): row oc holds k_h * k_w * in_c codes of
 * p->bits bits (OHWI order), w[oc][ky][kx][i] = lut[oc * lut_stride + code]. Otherwise ec_conv2d_s8
 * (TFLite Micro reference_integer_ops::ConvPerChannel) bit for bit; no scratch. */

void ec_conv2d_s8wN(const ec_conv_s8wN_params_t *p, const int8_t *in, const uint8_t *w,
                    const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    ec_conv_wN_generic(p, in, w, bias, out);
}
