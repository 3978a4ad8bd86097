/* edgec host harness: a standalone program for sanitizer runs.
 * usage: model_main IN0.bin [IN1.bin ...] OUT0.bin [OUT1.bin ...]  (raw tensor bytes, batch 1) */
#include <stdio.h>
#include <stdlib.h>

#include "model.h"

static const size_t in_bytes[] = MODEL_INPUT_BYTES;
static const size_t out_bytes[] = MODEL_OUTPUT_BYTES;

int main(int argc, char **argv) {
    if (argc != 1 + MODEL_NUM_INPUTS + MODEL_NUM_OUTPUTS) {
        fprintf(stderr, "usage: %s %d input files then %d output files\n", argv[0], MODEL_NUM_INPUTS, MODEL_NUM_OUTPUTS);
        return 2;
    }
    const void *inputs[MODEL_NUM_INPUTS];
    void *outputs[MODEL_NUM_OUTPUTS];
    for (int k = 0; k < MODEL_NUM_INPUTS; k++) {
        void *buf = malloc(in_bytes[k]);
        FILE *f = fopen(argv[1 + k], "rb");
        if (!buf || !f || fread(buf, 1, in_bytes[k], f) != in_bytes[k]) { fprintf(stderr, "cannot read %s\n", argv[1 + k]); return 2; }
        fclose(f);
        inputs[k] = buf;
    }
    for (int k = 0; k < MODEL_NUM_OUTPUTS; k++) outputs[k] = malloc(out_bytes[k]);
    uint8_t *block = malloc(MODEL_ARENA_SIZE + 16);
    uint8_t *arena = block + ((16 - ((uintptr_t)block & 15u)) & 15u);   /* 16-byte aligned */
    if (!block) return 2;
    int rc = model_invoke_v(arena, inputs, outputs);
    if (rc != 0) { fprintf(stderr, "model_invoke failed: %d\n", rc); return 1; }
    for (int k = 0; k < MODEL_NUM_OUTPUTS; k++) {
        FILE *f = fopen(argv[1 + MODEL_NUM_INPUTS + k], "wb");
        if (!f || fwrite(outputs[k], 1, out_bytes[k], f) != out_bytes[k]) { fprintf(stderr, "cannot write\n"); return 2; }
        fclose(f);
        free(outputs[k]);
    }
    for (int k = 0; k < MODEL_NUM_INPUTS; k++) free((void *)inputs[k]);
    free(block);
    return 0;
}
