/* edgec kernels: int8 FULLY_CONNECTED with hashed weights (HashedNets, Chen et al. 2015).
 *
 * Weight [out O][in I]: W[o][i] = sign(o, i) * buckets[h(o, i)], with only the `buckets` int8 values in
 * flash; the kernel computes the hash for every weight it uses. Definitions (identical in
 * compiler/edgec/weight_hashing.py, which trains and checks them):
 *   h = fmix32(key ^ salt)  (murmur3's 32-bit finalizer; salt precomputed from the seed)
 *   range(h, n) = (h * n) >> 32  (64-bit product: Lemire's range reduction, from the high bits)
 *   sign = (h & 1) ? -1 : +1
 *   level tensor: key = o * I + i, bucket = range(h, buckets)
 *   level row:    key = o * I + i, bucket = o * buckets + range(h, buckets)   (buckets per row)
 *   level block:  key = o * ceil(I / block) + i / block,
 *                 bucket = range(h, buckets) * block + i % block          (buckets counted in blocks)
 * Arithmetic: exactly ec_fully_connected_s8 (TFLite Micro) on the expanded weights: the int32 sum of
 * w * (x - in_zp) plus bias, ec_requantize, + out_zp, clamp. No scratch. */
#ifndef EC_HASH_H
#define EC_HASH_H

#include "ec_conv.h"

#define EC_HASH_TENSOR 0
#define EC_HASH_ROW 1
#define EC_HASH_BLOCK 2

typedef struct {
    ec_fc_s8_params_t fc;
    int32_t level;                   /* EC_HASH_TENSOR, EC_HASH_ROW or EC_HASH_BLOCK */
    uint32_t buckets;                /* the range of the hash: all / per row / in blocks (see above) */
    int32_t block;                   /* weights per block (block level; else 1) */
    uint32_t salt;
} ec_fc_s8h_params_t;

EC_INLINE uint32_t ec_fmix32(uint32_t x) {
    x ^= x >> 16;
    x *= 0x85EBCA6Bu;
    x ^= x >> 13;
    x *= 0xC2B2AE35u;
    x ^= x >> 16;
    return x;
}

EC_INLINE uint32_t ec_hash_range(uint32_t h, uint32_t n) { return (uint32_t)(((uint64_t)h * n) >> 32); }

void ec_fully_connected_s8h(const ec_fc_s8h_params_t *p, const int8_t *in, const int8_t *buckets,
                            const int32_t *bias, int8_t *out, void *scratch);

#endif /* EC_HASH_H */
