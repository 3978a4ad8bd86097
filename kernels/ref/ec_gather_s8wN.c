#include "ec_lowbit_matmul.h"

/* GATHER (axis 0) from a packed low-bit table (ec_lowbit_matmul.h): each index's row of row_len codes is
 * decoded to int8, value = lut[row * lut_stride + code] (* the row's group multiplier). Equals ec_gather_x
 * on the int8 container bit for bit, out-of-range indices included (they give the zero value). */
void ec_gather_s8wN(const ec_gather_s8wN_params_t *p, const uint8_t *table, const int32_t *indices, int8_t *out) {
    const uint32_t bits = (uint32_t)p->bits, k = (uint32_t)p->row_len;
    const size_t row_bytes = ((size_t)k * bits + 7u) / 8u;
    const uint32_t gs = p->group_size > 0 ? (uint32_t)p->group_size : (k ? k : 1u);
    const size_t groups = ((size_t)k + gs - 1u) / gs;
    for (int32_t i = 0; i < p->num_indices; i++, out += k) {
        const int32_t idx = indices[i];
        if (idx < 0 || idx >= p->num_rows) {
            memset(out, (int8_t)p->zero, (size_t)k);
            continue;
        }
        const uint8_t *row = table + (size_t)idx * row_bytes;
        const int8_t *lut = p->lut + (size_t)idx * (size_t)p->lut_stride;
        const uint8_t *mult = p->group_mult ? p->group_mult + (size_t)idx * groups : NULL;
        for (uint32_t j0 = 0, g = 0; j0 < k; j0 += gs, g++) {
            const int32_t m = mult ? (int32_t)mult[g] : 1;
            const uint32_t j1 = j0 + gs < k ? j0 + gs : k;
            for (uint32_t j = j0; j < j1; j++)
                out[j] = (int8_t)((int32_t)lut[ec_lowbit_code(row, j, bits)] * m);
        }
    }
}
