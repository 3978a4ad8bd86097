#include "ec_sparse_opt.h"

/* FULLY_CONNECTED int8 with block CSR sparse weights for hosts (cores in ec_sparse_opt.h: on x86-64,
 * 4 / 8 / 16 inputs per load); bit-exact with kernels/ref/ec_fully_connected_s8spb.c. No scratch. */
void ec_fully_connected_s8spb(const ec_fc_s8sp_params_t *p, const int8_t *in, const int8_t *w,
                              const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    EC_SPARSE_FC(EC_SPARSE_OPT_ROWS_B, p, in, w, bias, out);
}
