#include "ec_conv_loops.h"

/* CONV_2D int8 (TFLite Micro reference_integer_ops::ConvPerChannel):
 * out[oy][ox][oc] = clamp(out_zp + requant_oc(bias[oc] + sum w[oc][ky][kx][i] * (in[iy][ix][i] - in_zp)))
 * with iy = oy * stride_h - pad_h + ky * dil_h (likewise x); taps outside the image are skipped. */

void ec_conv2d_s8(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                  int8_t *out, void *scratch) {
    (void)scratch;
    ec_conv2d_s8_loop(p, in, w, bias, out);
}
