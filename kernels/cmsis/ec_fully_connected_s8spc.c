#include "ec_sparse_cmsis.h"

/* FULLY_CONNECTED int8 with CSR rows sparse weights for Cortex-M cores with the DSP extension (cores in
 * ec_sparse_cmsis.h); bit-exact with kernels/ref/ec_fully_connected_s8spc.c. No scratch. */
void ec_fully_connected_s8spc(const ec_fc_s8sp_params_t *p, const int8_t *in, const int8_t *w,
                              const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    EC_SPARSE_FC(EC_SPARSE_CM_ROWS_C, p, in, w, bias, out);
}
