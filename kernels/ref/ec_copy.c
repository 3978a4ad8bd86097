#include "ec_shape.h"

void ec_copy(void *dst, const void *src, size_t n) {
    if (dst != src) memmove(dst, src, n);
}
