/* edgec kernels: activation ops. */
#ifndef EC_ACTIVATION_H
#define EC_ACTIVATION_H

#include "ec_common.h"

#endif /* EC_ACTIVATION_H */
