/* edgec kernels: entropy-coded constant arrays (compiler/edgec/backends/c/entropy.py).
 *
 * A coded array is a static rANS stream (order 0, one frequency table per array, byte-wise
 * renormalisation, 32-bit state):
 *   byte 0        symbol width `bits` (1, 2, 4 or 8): the decoded bytes are cut into bits-bit fields,
 *                 field j of a byte being bits [j * bits, (j + 1) * bits)
 *   byte 1        prec: the frequencies sum to 2^prec; always EC_RANS_PREC (15) -- the decoder refuses
 *                 others, so its shifts and masks are constants
 *   byte 2        nsym - 1: the number of distinct symbols, less one
 *   nsym bytes    the symbols, ascending -- omitted when all 2^bits are present (index = symbol)
 *   2 (nsym - 1)  cum[1 .. nsym-1], uint16 little-endian (cum[0] = 0, cum[nsym] = 2^prec; increasing)
 *   4 bytes       the initial state x, uint32 little-endian, >= EC_RANS_L
 *   the rest      refill bytes
 * Per symbol: slot = x & (2^prec - 1); k such that cum[k] <= slot < cum[k+1];
 * x = (cum[k+1] - cum[k]) * (x >> prec) + slot - cum[k]; while x < EC_RANS_L: x = (x << 8) | next byte.
 * The encoder starts at x = EC_RANS_L, so a correct decode ends there having read every byte.
 */
#ifndef EC_ENTROPY_H
#define EC_ENTROPY_H

#include <stddef.h>
#include <stdint.h>

#define EC_RANS_PREC 15
#define EC_RANS_L (1u << 23)

/* Decodes the `src_len`-byte stream `src` into the `dst_len` bytes at `dst`. Returns 0, or -1 if the
 * stream is malformed, too short, or does not end in the encoder's initial state having consumed all
 * of its bytes (a corrupt payload or frequency table). Stack: ~0.8 KB (cum[257], a 256-entry guess table
 * from slots to symbols). Cortex-M4: ~0.9k instructions of set-up (+ ~8 per distinct symbol), then
 * ~22-25 per byte of 8-bit symbols, ~43-46 per byte of 4-bit ones. */
int ec_rans_decode(const uint8_t *src, size_t src_len, uint8_t *dst, size_t dst_len);

#endif /* EC_ENTROPY_H */
