/* edgec host harness: timing inside C for `edgec run --bench` (loaded with ctypes). */
#define _POSIX_C_SOURCE 199309L
#include <time.h>

#include "model.h"

/* Runs the model `iters` times on the same buffers; us[i] = wall microseconds of run i. */
int ec_host_bench(uint8_t *arena, const void *const *inputs, void *const *outputs, int iters, double *us) {
    for (int i = 0; i < iters; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        int rc = model_invoke_v(arena, inputs, outputs);
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (rc != 0) return rc;
        us[i] = (double)(b.tv_sec - a.tv_sec) * 1e6 + (double)(b.tv_nsec - a.tv_nsec) / 1e3;
    }
    return 0;
}
