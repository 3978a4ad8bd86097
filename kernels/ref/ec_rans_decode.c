/* Static rANS decoder for entropy-coded constant arrays (stream format: ec_entropy.h). */
#include "ec_entropy.h"

#define EC_RANS_MASK ((1u << EC_RANS_PREC) - 1u)

/* One symbol: its index k (cum[k] <= slot < cum[k+1]), the state update and the byte-wise refill.
 * guess[slot >> (EC_RANS_PREC - 8)] is the first symbol whose range reaches into that 1/256th of the
 * slots, so a forward scan of a step or two finds the owner (a rare symbol costs a longer scan only
 * as often as it occurs). */
#define EC_RANS_STEP(k)                                                                  \
    do {                                                                                 \
        const uint32_t slot_ = x & EC_RANS_MASK;                                         \
        uint32_t hi_;                                                                    \
        (k) = guess[slot_ >> (EC_RANS_PREC - 8)];                                        \
        while ((hi_ = cum[(k) + 1u]) <= slot_) ++(k);                                    \
        x = (hi_ - cum[k]) * (x >> EC_RANS_PREC) + slot_ - cum[k];                       \
        while (x < EC_RANS_L) {                                                          \
            if (p == end) return -1;                                                     \
            x = (x << 8) | *p++;                                                         \
        }                                                                                \
    } while (0)

int ec_rans_decode(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_len)
{
    uint16_t cum[257];
    uint8_t guess[256];
    uint8_t value[16];
    const uint8_t *p, *end, *sym = NULL;
    uint32_t bits, nsym, x, k, i;

    if (src == NULL || src_len < 7u) return -1;
    end = src + src_len;
    bits = src[0];
    nsym = (uint32_t)src[2] + 1u;
    if ((bits != 1u && bits != 2u && bits != 4u && bits != 8u) || src[1] != EC_RANS_PREC || nsym > (1u << bits))
        return -1;
    p = src + 3;
    if (nsym < (1u << bits)) {
        if ((size_t)(end - p) < nsym) return -1;
        sym = p;
        p += nsym;
    }
    if ((size_t)(end - p) < 2u * (nsym - 1u) + 4u) return -1;
    cum[0] = 0;
    for (k = 1; k < nsym; ++k, p += 2) {
        cum[k] = (uint16_t)(p[0] | (p[1] << 8));
        if (cum[k] <= cum[k - 1u]) return -1;
    }
    cum[nsym] = (uint16_t)(1u << EC_RANS_PREC);
    if (cum[nsym - 1u] >= cum[nsym]) return -1;
    x = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
    p += 4;
    if (x < EC_RANS_L || x >= 0x80000000u) return -1;
    /* bucket i starts at slot i << (EC_RANS_PREC - 8): inside symbol k's range while i < the first
     * bucket starting at or after cum[k + 1] */
    for (k = 0, i = 0; k < nsym; ++k) {
        const uint32_t stop = (cum[k + 1u] + (1u << (EC_RANS_PREC - 8)) - 1u) >> (EC_RANS_PREC - 8);
        for (; i < stop; ++i) guess[i] = (uint8_t)k;
    }

    if (bits == 8u && sym == NULL) {          /* every byte value present: index = byte */
        for (i = 0; i < dst_len; ++i) {
            EC_RANS_STEP(k);
            dst[i] = (uint8_t)k;
        }
    } else if (bits == 8u) {
        for (i = 0; i < dst_len; ++i) {
            EC_RANS_STEP(k);
            dst[i] = sym[k];
        }
    } else {
        for (k = 0; k < nsym; ++k) {
            value[k] = sym != NULL ? sym[k] : (uint8_t)k;
            if (value[k] >= (1u << bits)) return -1;
        }
        if (bits == 4u) {
            for (i = 0; i < dst_len; ++i) {
                uint32_t lo;
                EC_RANS_STEP(k);
                lo = value[k];
                EC_RANS_STEP(k);
                dst[i] = (uint8_t)(lo | ((uint32_t)value[k] << 4));
            }
        } else {
            for (i = 0; i < dst_len; ++i) {
                uint32_t b = 0, j;
                for (j = 0; j < 8u; j += bits) {
                    EC_RANS_STEP(k);
                    b |= (uint32_t)value[k] << j;
                }
                dst[i] = (uint8_t)b;
            }
        }
    }
    return (x == EC_RANS_L && p == end) ? 0 : -1;
}
