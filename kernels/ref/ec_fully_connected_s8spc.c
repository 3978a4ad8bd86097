#include "ec_sparse.h"

/* FULLY_CONNECTED int8 with CSR rows (absolute uint8 / uint16 columns) weights (ec_sparse.h): bit-exact with
 * kernels/ref/ec_fully_connected_s8.c on the decoded weights; only the stored entries are visited. */
void ec_fully_connected_s8spc(const ec_fc_s8sp_params_t *p, const int8_t *in, const int8_t *w,
                              const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    EC_SPARSE_FC(ec_sparse_rows_c, p, in, w, bias, out);
}
