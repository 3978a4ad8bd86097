/* edgec profiling: forced into model.c (-include) so each layer calls a marker the emulator watches.
 * ec_layer_mark(2k) before layer k, ec_layer_mark(2k + 1) after it. */
#ifndef EC_PROFILE_HOOKS_H
#define EC_PROFILE_HOOKS_H

void ec_layer_mark(int mark);
#define EC_LAYER_BEGIN(index, name) ec_layer_mark(2 * (index))
#define EC_LAYER_END(index, name) ec_layer_mark(2 * (index) + 1)

#endif /* EC_PROFILE_HOOKS_H */
