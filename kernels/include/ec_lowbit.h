/* edgec kernels: int8-activation FULLY_CONNECTED / CONV_2D / DEPTHWISE_CONV_2D with packed low-bit weights.
 *
 * Weight layout (compiler/edgec/backends/c/pack_weights.py): one row per output channel -- FC [out][in],
 * CONV_2D [out][k_h][k_w][in_c], DEPTHWISE [out_c][k_h][k_w] (transposed from the IR's 1HWC) -- of
 * `bits`-bit codes, little-endian within a byte (element j occupies bits [j * bits, (j + 1) * bits) of the
 * row, counting from bit 0 of its first byte; 3-bit fields may straddle bytes), each row padded to
 * row_bytes = (K * bits + 7) / 8 whole bytes -- except DEPTHWISE (_s8wN), whose short rows follow each
 * other with no padding (code j of channel oc is field oc * k_h * k_w + j of one bit stream). A code
 * decodes to its int8 weight value:
 *   ..._s8w4 / _s8w2   the code is the value's 4-bit / 2-bit two's complement (uniform, ternary);
 *   ..._s8w1           binary: code 1 -> +1, 0 -> -1 (computed as 2 * sum_{w=+1}(x - zp) - sum(x - zp));
 *   ..._s8cb, _s8wN    through a table: value = lut[oc * lut_stride + code] (lut_stride 0: one table of
 *                      2^bits entries -- pow2, other uniform widths; kmeans: the codebook, per tensor or
 *                      per channel), bits 1..8.
 *   ..._s8g            group-quantized (per-group integer multipliers of the row's scale): the codes are
 *                      q (bits 2..4: two's complement, uniform / ternary; bits 1: binary, 1 -> +1, 0 -> -1)
 *                      and the weight is q * mult[oc * groups + j / group_size], mult uint8 >= 1.
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

/* Group-quantized weights: element j of row oc belongs to group j / group_size; its weight is
 * q * mult[oc * groups + j / group_size]. The kernels sum q * (x - in_zp) over the elements of a group,
 * then multiply by the group's multiplier: sum_g m_g * sum_{j in g} q_j * (x_j - in_zp) is the int8
 * kernel's sum over v = q * m exactly, and no partial sum exceeds the int8 kernel's bound (|q * m| <= 127). */
typedef struct {
    ec_fc_s8_params_t fc;
    int32_t bits;                    /* width of q: 1 (binary), 2..4 (two's complement) */
    int32_t group_size;              /* N >= 1 */
    int32_t groups;                  /* per row: (in_features + N - 1) / N */
    const uint8_t *mult;             /* [out_features][groups] */
} ec_fc_s8g_params_t;

typedef struct {                     /* CONV_2D (rows [out_c][k_h * k_w * in_c]) and DEPTHWISE ([out_c][k_h * k_w]) */
    ec_conv_s8_params_t conv;
    int32_t bits;
    int32_t group_size;
    int32_t groups;
    const uint8_t *mult;             /* [out_c][groups] */
} ec_conv_s8g_params_t;

/* The code of element j of a packed row (fields may straddle a byte boundary; never reads past the
 * row's last byte). */
EC_INLINE uint32_t ec_lowbit_code(const uint8_t *row, uint32_t j, uint32_t bits) {
    const uint32_t bit = j * bits, byte = bit >> 3, sh = bit & 7u;
    uint32_t v = (uint32_t)row[byte] >> sh;
    if (sh + bits > 8u) v |= (uint32_t)row[byte + 1] << (8u - sh);
    return v & ((1u << bits) - 1u);
}

/* q of element j of a group-quantized row: binary (bits 1) or a bits-wide two's complement field */
EC_INLINE int32_t ec_group_q(const uint8_t *row, uint32_t j, uint32_t bits) {
    const uint32_t c = ec_lowbit_code(row, j, bits);
    if (bits == 1u) return c ? 1 : -1;
    const uint32_t sign = 1u << (bits - 1u);
    return (int32_t)(c ^ sign) - (int32_t)sign;
}

/* sum over the n elements j0 .. j0 + n - 1 of a group-quantized row, whose inputs are x[0], x[stride], ...,
 * of m * q * (x - in_zp): the run is cut at group boundaries and each piece's sum of q * (x - in_zp) is
 * multiplied once by its group's multiplier (mult: the row's). */
EC_INLINE int32_t ec_group_run(const uint8_t *row, const uint8_t *mult, uint32_t bits, uint32_t group_size,
                               uint32_t j0, uint32_t n, const int8_t *x, size_t stride, int32_t in_zp) {
    int32_t acc = 0;
    while (n > 0u) {
        const uint32_t g = j0 / group_size;
        uint32_t len = (g + 1u) * group_size - j0;
        if (len > n) len = n;
        int32_t part = 0;
        for (uint32_t k = 0; k < len; k++)
            part += ec_group_q(row, j0 + k, bits) * ((int32_t)x[(size_t)k * stride] - in_zp);
        acc += (int32_t)mult[g] * part;
        j0 += len;
        n -= len;
        x += (size_t)len * stride;
    }
    return acc;
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
void ec_fully_connected_s8g(const ec_fc_s8g_params_t *p, const int8_t *in, const uint8_t *w,
                            const int32_t *bias, int8_t *out, void *scratch);
void ec_conv2d_s8g(const ec_conv_s8g_params_t *p, const int8_t *in, const uint8_t *w,
                   const int32_t *bias, int8_t *out, void *scratch);
void ec_depthwise_conv2d_s8g(const ec_conv_s8g_params_t *p, const int8_t *in, const uint8_t *w,
                             const int32_t *bias, int8_t *out, void *scratch);

#endif /* EC_LOWBIT_H */
