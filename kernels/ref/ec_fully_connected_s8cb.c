#include "ec_lowbit.h"

/* FULLY_CONNECTED, int8 activations, table-decoded weights: codes of p->bits bits (1..8, little-endian
 * fields, rows of (in_features * bits + 7) / 8 bytes), w = lut[o * lut_stride + code] (kmeans codebooks
 * per tensor or per channel, pow2 and odd-width uniform tables). Otherwise ec_fully_connected_s8. */
void ec_fully_connected_s8cb(const ec_fc_s8cb_params_t *p, const int8_t *in, const uint8_t *w,
                             const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    const ec_fc_s8_params_t *f = &p->fc;
    const int32_t n = f->in_features, in_zp = f->in_zp;
    const uint32_t bits = (uint32_t)p->bits;
    const size_t row_bytes = ((size_t)n * bits + 7u) / 8u;
    for (int32_t b = 0; b < f->batches; b++) {
        const int8_t *x = in + (size_t)b * (size_t)n;
        for (int32_t o = 0; o < f->out_features; o++) {
            const uint8_t *row = w + (size_t)o * row_bytes;
            const int8_t *lut = p->lut + (size_t)o * (size_t)p->lut_stride;
            int32_t acc = bias ? bias[o] : 0;
            if (bits == 4u || bits == 2u || bits == 1u || bits == 8u) {   /* fields never straddle bytes */
                const uint32_t per = 8u / bits, mask = (1u << bits) - 1u;
                int32_t i = 0;
                for (size_t byte = 0; byte < row_bytes; byte++) {
                    uint32_t v = row[byte];
                    for (uint32_t k = 0; k < per && i < n; k++, i++, v >>= bits)
                        acc += (int32_t)lut[v & mask] * ((int32_t)x[i] - in_zp);
                }
            } else {
                for (int32_t i = 0; i < n; i++)
                    acc += (int32_t)lut[ec_lowbit_code(row, (uint32_t)i, bits)] * ((int32_t)x[i] - in_zp);
            }
            acc = ec_requantize(acc, f->mult[o], f->shift[o]) + f->out_zp;
            out[(size_t)b * (size_t)f->out_features + (size_t)o] = (int8_t)ec_clamp_i32(acc, f->act_min, f->act_max);
        }
    }
}
