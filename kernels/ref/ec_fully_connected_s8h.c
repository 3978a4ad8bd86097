#include "ec_hash.h"

/* out[b][o] = clamp(out_zp + requant(bias[o] + sum_i sign(o, i) * buckets[h(o, i)] * (in[b][i] - in_zp))),
 * the hash computed on the fly (ec_hash.h). */
void ec_fully_connected_s8h(const ec_fc_s8h_params_t *p, const int8_t *in, const int8_t *buckets,
                            const int32_t *bias, int8_t *out, void *scratch) {
    (void)scratch;
    const int32_t n_in = p->fc.in_features, in_zp = p->fc.in_zp;
    const int32_t blk = p->block > 0 ? p->block : 1;
    const uint32_t blocks_per_row = (uint32_t)((n_in + blk - 1) / blk);
    for (int32_t b = 0; b < p->fc.batches; b++) {
        const int8_t *x = in + (size_t)b * (size_t)n_in;
        for (int32_t o = 0; o < p->fc.out_features; o++) {
            int32_t acc = bias ? bias[o] : 0;
            if (p->level == EC_HASH_BLOCK) {
                for (int32_t i0 = 0; i0 < n_in; i0 += blk) {
                    const uint32_t h = ec_fmix32(((uint32_t)o * blocks_per_row + (uint32_t)(i0 / blk)) ^ p->salt);
                    const int8_t *v = buckets + (size_t)ec_hash_range(h, p->buckets) * (size_t)blk;
                    const int32_t end = n_in - i0 < blk ? n_in - i0 : blk;
                    int32_t s = 0;
                    for (int32_t j = 0; j < end; j++) s += (int32_t)v[j] * ((int32_t)x[i0 + j] - in_zp);
                    acc += (h & 1u) ? -s : s;
                }
            } else {
                const uint32_t key0 = (uint32_t)o * (uint32_t)n_in;
                const int8_t *row = p->level == EC_HASH_ROW ? buckets + (size_t)o * p->buckets : buckets;
                for (int32_t i = 0; i < n_in; i++) {
                    const uint32_t h = ec_fmix32((key0 + (uint32_t)i) ^ p->salt);
                    const int32_t t = (int32_t)row[ec_hash_range(h, p->buckets)] * ((int32_t)x[i] - in_zp);
                    acc += (h & 1u) ? -t : t;
                }
            }
            acc = ec_requantize(acc, p->fc.mult[o], p->fc.shift[o]) + p->fc.out_zp;
            out[(size_t)b * (size_t)p->fc.out_features + (size_t)o] =
                (int8_t)ec_clamp_i32(acc, p->fc.act_min, p->fc.act_max);
        }
    }
}
