/* edgec kernels: the fixed-point arithmetic every integer kernel shares.
 *
 * Requantization follows TFLite / TFLite Micro exactly (tensorflow/lite/kernels/internal/common.h,
 * without TFLITE_SINGLE_ROUNDING): a real multiplier M = mult * 2^(shift - 31), applied as a
 * saturating rounding doubling high multiply then a rounding (half away from zero) right shift.
 * Any other rounding order differs by one LSB on some inputs.
 */
#ifndef EC_COMMON_H
#define EC_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

#if defined(__GNUC__)
#define EC_ALIGN(n) __attribute__((aligned(n)))
#define EC_INLINE static inline __attribute__((always_inline))
#else
#define EC_ALIGN(n)
#define EC_INLINE static inline
#endif

/* a static helper kept a call of its own (and silent when a file does not use it) */
#if defined(__GNUC__)
#define EC_NOINLINE static __attribute__((noinline, unused))
#else
#define EC_NOINLINE static
#endif

EC_INLINE int32_t ec_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }
EC_INLINE int32_t ec_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
EC_INLINE int32_t ec_clamp_i32(int32_t x, int32_t lo, int32_t hi) { return x < lo ? lo : (x > hi ? hi : x); }

EC_INLINE int32_t ec_sat_rounding_doubling_high_mul(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) return INT32_MAX;
    int64_t ab = (int64_t)a * (int64_t)b;
    int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* C division truncates toward zero */
}

EC_INLINE int32_t ec_rounding_divide_by_pot(int32_t x, int exponent) {
    int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * M for M = mult * 2^(shift - 31); shift > 0 scales up before the multiply (TFLite's
 * MultiplyByQuantizedMultiplier). */
EC_INLINE int32_t ec_requantize(int32_t x, int32_t mult, int32_t shift) {
    int left = shift > 0 ? shift : 0;
    int right = shift > 0 ? 0 : -shift;
    return ec_rounding_divide_by_pot(ec_sat_rounding_doubling_high_mul((int32_t)((uint32_t)x << left), mult), right);
}

EC_INLINE int8_t ec_sat_s8(int32_t x) { return (int8_t)ec_clamp_i32(x, -128, 127); }

#endif /* EC_COMMON_H */
