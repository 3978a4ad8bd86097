#include "ec_sparse.h"

/* CONV_2D int8 with block CSR (block_r x block_c blocks) weights (ec_sparse.h): each output pixel's input patch
 * (in place for 1x1 filters, else copied into scratch with in_zp padding) times the sparse filter rows;
 * bit-exact with kernels/ref/ec_conv2d_s8.c on the decoded weights. */
void ec_conv2d_s8spb(const ec_conv_s8sp_params_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                     int8_t *out, void *scratch) {
    EC_SPARSE_CONV(ec_sparse_rows_b, p, in, w, bias, out, scratch);
}
