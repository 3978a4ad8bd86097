/* edgec kernels: everything generated code may call. One public function per kernel file. */
#ifndef EC_KERNELS_H
#define EC_KERNELS_H

#include "ec_common.h"
#include "ec_conv.h"
#include "ec_pool.h"
#include "ec_elementwise.h"
#include "ec_activation.h"
#include "ec_shape.h"
#include "ec_opt.h"
#include "ec_lowbit.h"
#include "ec_sparse.h"
#include "ec_hash.h"
#include "ec_matmul.h"
#include "ec_lowbit_matmul.h"

#endif /* EC_KERNELS_H */
