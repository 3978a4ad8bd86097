#include "ec_sparse_neon.h"

/* FULLY_CONNECTED int8 with CSR rows sparse weights for arm64 NEON (cores in ec_sparse_neon.h);
 * bit-exact with kernels/ref/ec_fully_connected_s8spc.c. No scratch. */
void ec_fully_connected_s8spc(const ec_fc_s8sp_params_t *p, const int8_t *in, const int8_t *w,
                              const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    EC_SPARSE_FC(EC_SPARSE_NEON_ROWS_C, p, in, w, bias, out);
}
