/* edgec kernels: pool ops. */
#ifndef EC_POOL_H
#define EC_POOL_H

#include "ec_common.h"

#endif /* EC_POOL_H */
