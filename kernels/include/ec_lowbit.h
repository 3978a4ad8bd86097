/* edgec kernels: int8-activation FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D with packed low-bit weights.
 *
 * Weight layout (compiler/edgec/backends/c/pack_weights.py): one row per output channel -- FC [out][in],
 * CONV_2D [out][k_h][k_w][in_c], DEPTHWISE [out_c][k_h][k_w] (transposed from the IR's 1HWC) -- of
 * `bits`-bit codes, little-endian within a byte (element j occupies bits [j * bits, (j + 1) * bits) of the
 * row, counting from bit 0 of its first byte; 3-bit fields may straddle bytes), each row padded to
 * row_bytes = (K * bits + 7) / 8 whole bytes. A code decodes to its int8 weight value:
 *   ..._s8w4 / _s8w2   the code is the value's 4-bit / 2-bit two's complement (uniform, ternary);
 *   ..._s8w1           binary: code 1 -> +1, 0 -> -1 (computed as 2 * sum_{w=+1}(x - zp) - sum(x - zp));
 *   ..._s8cb, _s8wN    through a table: value = lut[oc * lut_stride + code] (lut_stride 0: one table of
 *                      2^bits entries -- pow2, other uniform widths; kmeans: the codebook, per tensor or
 *                      per channel), bits 1..8.
 * Otherwise the kernels equal ec_fully_connected_s8 / ec_conv2d_s8 / ec_depthwise_conv2d_s8 (ec_conv.h)
 * bit for bit on the decoded weights (same params, same requantization); weights are unpacked on the fly
 * (no scratch). */
#ifndef EC_LOWBIT_H
#define EC_LOWBIT_H

#include "ec_conv.h"

typedef struct {
    ec_fc_s8_params_t fc;
    int32_t bits;                    /* code width, 1..8 */
    int32_t lut_stride;              /* entries between output channels' tables; 0: one shared table */
    const int8_t *lut;
} ec_fc_s8cb_params_t;

typedef struct {
    ec_conv_s8_params_t conv;
    int32_t bits;
    int32_t lut_stride;
    const int8_t *lut;
} ec_conv_s8wN_params_t;

/* The code of element j of a packed row (fields may straddle a byte boundary; never reads past the
 * row's last byte). */
EC_INLINE uint32_t ec_lowbit_code(const uint8_t *row, uint32_t j, uint32_t bits) {
    const uint32_t bit = j * bits, byte = bit >> 3, sh = bit & 7u;
    uint32_t v = (uint32_t)row[byte] >> sh;
    if (sh + bits > 8u) v |= (uint32_t)row[byte + 1] << (8u - sh);
    return v & ((1u << bits) - 1u);
}

void ec_fully_connected_s8w4(const ec_fc_s8_params_t *p, const int8_t *in, const uint8_t *w,
                             const int32_t *bias, int8_t *out, void *scratch);
void ec_fully_connected_s8w2(const ec_fc_s8_params_t *p, const int8_t *in, const uint8_t *w,
                             const int32_t *bias, int8_t *out, void *scratch);
void ec_fully_connected_s8w1(const ec_fc_s8_params_t *p, const int8_t *in, const uint8_t *w,
                             const int32_t *bias, int8_t *out, void *scratch);
void ec_fully_connected_s8cb(const ec_fc_s8cb_params_t *p, const int8_t *in, const uint8_t *w,
                             const int32_t *bias, int8_t *out, void *scratch);
void ec_conv2d_s8wN(const ec_conv_s8wN_params_t *p, const int8_t *in, const uint8_t *w,
                    const int32_t *bias, int8_t *out, void *scratch);
void ec_depthwise_conv2d_s8wN(const ec_conv_s8wN_params_t *p, const int8_t *in, const uint8_t *w,
                              const int32_t *bias, int8_t *out, void *scratch);

#endif /* EC_LOWBIT_H */
