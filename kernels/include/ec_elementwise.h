/* edgec kernels: elementwise ops. */
#ifndef EC_ELEMENTWISE_H
#define EC_ELEMENTWISE_H

#include "ec_common.h"

#endif /* EC_ELEMENTWISE_H */
