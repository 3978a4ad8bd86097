/* edgec kernels: data movement (reshape copies, concatenation, padding, slicing, resizing) and
 * type conversion (quantize, dequantize). */
#ifndef EC_SHAPE_H
#define EC_SHAPE_H

#include "ec_common.h"

/* A reshape that could not be an alias (its output is a graph output): copy n bytes. */
void ec_copy(void *dst, const void *src, size_t n);

#endif /* EC_SHAPE_H */
