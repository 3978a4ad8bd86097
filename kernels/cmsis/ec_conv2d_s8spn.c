#include "ec_sparse_cmsis.h"

/* CONV_2D int8 with N:4 structured sparse weights for Cortex-M cores with the DSP extension: each output
 * pixel's patch (ec_sparse_patch) times the filter rows (cores in ec_sparse_cmsis.h); bit-exact with
 * kernels/ref/ec_conv2d_s8spn.c. Scratch as ref: the patch, k_h * k_w * in_c bytes (none for 1x1). */
void ec_conv2d_s8spn(const ec_conv_s8sp_params_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                     int8_t *out, void *scratch) {
    EC_SPARSE_CONV(EC_SPARSE_CM_ROWS_N, p, in, w, bias, out, scratch);
}
