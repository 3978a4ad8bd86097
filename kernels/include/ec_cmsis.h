/* edgec kernels: helpers shared by the Cortex-M DSP-extension kernels (kernels/cmsis/), as CMSIS-NN
 * keeps arm_nnsupportfunctions.h. Only meaningful where __ARM_FEATURE_DSP is set. */
#ifndef EC_CMSIS_H
#define EC_CMSIS_H

#include "ec_common.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP && !defined(__ARM_BIG_ENDIAN) && !defined(EC_NO_DSP)
#define EC_CMSIS_DSP 1
#include <arm_acle.h>

/* an unaligned 32-bit load (Cortex-M3 and up allow unaligned LDR; memcpy tells the compiler so) */
EC_INLINE int32_t ec_rd32(const void *p) {
    int32_t v;
    __builtin_memcpy(&v, p, 4);
    return v;
}

/* SXTB16 / SXTAB16 of x rotated right by 8 (bytes 1 and 3), one instruction each */
EC_INLINE uint32_t ec_sxtb16_ror8(uint32_t x) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

EC_INLINE uint32_t ec_sxtab16_ror8(uint32_t a, uint32_t x) {
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}

/* TFLite's MultiplyByQuantizedMultiplier for mult >= 0: a single nudge of 2^30 and a floor shift
 * equal its sign-dependent nudge and truncating division, and the saturating case (both operands
 * INT32_MIN) cannot occur. */
EC_INLINE int32_t ec_cm_requantize(int32_t x, int32_t mult, int32_t shift) {
    const int32_t left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    int64_t ab = (int64_t)(int32_t)((uint32_t)x << left) * mult + ((int64_t)1 << 30);
    int32_t y = (int32_t)(ab >> 31);
    if (right > 0) {
        const int32_t mask = (int32_t)(((uint32_t)1 << right) - 1u);
        const int32_t threshold = (mask >> 1) + (y < 0);
        const int32_t rem = y & mask;
        y = (y >> right) + (rem > threshold);
    }
    return y;
}
#endif

#endif /* EC_CMSIS_H */
