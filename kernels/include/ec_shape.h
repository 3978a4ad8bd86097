/* edgec kernels: data movement (reshape copies, concatenation, padding, slicing, depth/space
 * rearrangement, transposes, resizing) and type conversion (quantize, dequantize).
 *
 * The data movers are element-type generic: they move elements of `elem_size` bytes and never look
 * at values, so one kernel serves float32, int8 and any other dtype. Every shape-dependent number
 * (strides, clamped slice bounds, source indices, interpolation weights) is computed by the
 * compiler from the same functions its numpy reference uses; tensors are dense, row-major (NHWC).
 */
#ifndef EC_SHAPE_H
#define EC_SHAPE_H

#include "ec_common.h"

#define EC_SHAPE_MAX_DIMS 5

/* A reshape that could not be an alias (its output is a graph output): copy n bytes. */
void ec_copy(void *dst, const void *src, size_t n);

/* CONCATENATION: every tensor viewed as [outer][rows]; output row o is input 0's row o, then
 * input 1's row o, ... (rows of an input: its extent on the axis * inner dims * elem_size bytes). */
typedef struct {
    int32_t outer;                   /* product of the dims before the axis */
    int32_t num_inputs;
    const int32_t *row_bytes;        /* num_inputs entries */
} ec_concatenation_params_t;

void ec_concatenation_x(const ec_concatenation_params_t *p, const void *const *inputs, void *out);

/* PAD with a constant: out dim i = pad_before[i] + in_dims[i] + pad_after[i], dims outermost first,
 * unused leading dims 1 with no padding. */
typedef struct {
    int32_t elem_size;
    int32_t in_dims[EC_SHAPE_MAX_DIMS];
    int32_t pad_before[EC_SHAPE_MAX_DIMS];
    int32_t pad_after[EC_SHAPE_MAX_DIMS];
    const void *pad_value;           /* one element: 0.0f for float, the zero point when quantized */
} ec_pad_params_t;

void ec_pad_x(const ec_pad_params_t *p, const void *in, void *out);

/* A 6-D strided gather into a dense output (STRIDED_SLICE, DEPTH_TO_SPACE, SPACE_TO_DEPTH, TRANSPOSE):
 * out[i0]..[i5] = in_bytes[offset + sum_k i_k * step[k]] for i_k < count[k]. The compiler drops
 * extent-1 dims and merges output dims that are neighbours in the input too (so the innermost step
 * is often elem_size: whole rows are copied), padding the front with count 1. */
#define EC_STRIDED_MAX_DIMS 6

typedef struct {
    int32_t elem_size;
    int32_t count[EC_STRIDED_MAX_DIMS];  /* output extent per dim, outermost first */
    int32_t step[EC_STRIDED_MAX_DIMS];   /* input byte step per output index (may be negative) */
    int32_t offset;                      /* input byte offset of the first output element */
} ec_strided_copy_params_t;

void ec_strided_copy_x(const ec_strided_copy_params_t *p, const void *in, void *out);

/* RESIZE_NEAREST_NEIGHBOR: out[b][y][x][:] = in[b][y_index[y]][x_index[x]][:]. */
typedef struct {
    int32_t batches;
    int32_t in_h, in_w;
    int32_t out_h, out_w;
    int32_t pixel_bytes;             /* channels * elem_size */
    const int32_t *y_index;          /* out_h source rows */
    const int32_t *x_index;          /* out_w source columns */
} ec_resize_nearest_params_t;

void ec_resize_nearest_neighbor_x(const ec_resize_nearest_params_t *p, const void *in, void *out);

/* RESIZE_BILINEAR, int8 (TFLite's ResizeBilinearInteger): per output row the two source rows and
 * the fraction of the way from y0 in 1/1024 steps (fy, in [-512, 1024)); likewise per column. */
typedef struct {
    int32_t batches;
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    const int32_t *y0, *y1, *fy;     /* out_h entries each */
    const int32_t *x0, *x1, *fx;     /* out_w entries each */
} ec_resize_bilinear_s8_params_t;

void ec_resize_bilinear_s8(const ec_resize_bilinear_s8_params_t *p, const int8_t *in, int8_t *out);

/* RESIZE_BILINEAR, float32: the weights dy = src_y - y0 and dx = src_x - x0 in float32. */
typedef struct {
    int32_t batches;
    int32_t in_h, in_w, channels;
    int32_t out_h, out_w;
    const int32_t *y0, *y1;
    const float *dy;
    const int32_t *x0, *x1;
    const float *dx;
} ec_resize_bilinear_f32_params_t;

void ec_resize_bilinear_f32(const ec_resize_bilinear_f32_params_t *p, const float *in, float *out);

/* QUANTIZE float32 -> int8: q = clamp(round_half_away(x / scale) + zero_point), the division in
 * float32 (TFLite's AffineQuantize). */
typedef struct {
    int32_t size;
    float scale;
    int32_t zero_point;
} ec_quantize_f32_s8_params_t;

void ec_quantize_f32_s8(const ec_quantize_f32_s8_params_t *p, const float *in, int8_t *out);

/* QUANTIZE int8 -> int8 (requantize): q = clamp(requant(x - in_zp) + out_zp). */
typedef struct {
    int32_t size;
    int32_t in_zp, out_zp;
    int32_t mult, shift;
} ec_quantize_s8_s8_params_t;

void ec_quantize_s8_s8(const ec_quantize_s8_s8_params_t *p, const int8_t *in, int8_t *out);

/* DEQUANTIZE int8 -> float32: y = scale * (float)(q - zero_point). */
typedef struct {
    int32_t size;
    float scale;
    int32_t zero_point;
} ec_dequantize_s8_f32_params_t;

void ec_dequantize_s8_f32(const ec_dequantize_s8_f32_params_t *p, const int8_t *in, float *out);

#endif /* EC_SHAPE_H */
