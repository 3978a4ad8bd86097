/* edgec kernels: convolution-like ops (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV).
 * Parameters are computed by the compiler (Python) and stored as const structs in flash; kernels
 * only compute. Tensors are NHWC at batch 1; filters OHWI (conv, transpose conv), 1HWC (depthwise),
 * [out][in] (FC). Integer kernels follow TFLite Micro's reference kernels bit for bit.
 *
 * TRANSPOSE_CONV reuses the conv structs: in_* is its input, out_* its output, pad_h/pad_w the
 * leading padding cropped from the full (scattered) output, dil_* and depth_mult are 1.
 */
#ifndef EC_CONV_H
#define EC_CONV_H

#include "ec_common.h"

typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_h, pad_w;            /* leading (top, left) padding */
    int32_t depth_mult;              /* depthwise: out_c = in_c * depth_mult; conv: 1 */
    int32_t in_zp, out_zp;           /* zero points (the input offset applied is -in_zp) */
    int32_t act_min, act_max;        /* fused activation clamp, in output integers */
    const int32_t *mult;             /* per output channel (per-tensor: out_c copies) */
    const int32_t *shift;
} ec_conv_s8_params_t;

typedef struct {
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_h, pad_w;
    int32_t depth_mult;
    float act_min, act_max;
} ec_conv_f32_params_t;

typedef struct {
    int32_t batches;                 /* rows of the input flattened to [batches, in_features] */
    int32_t in_features, out_features;
    int32_t in_zp, out_zp;
    int32_t act_min, act_max;
    const int32_t *mult;             /* per output feature (per-tensor: out_features copies) */
    const int32_t *shift;
} ec_fc_s8_params_t;

typedef struct {
    int32_t batches;
    int32_t in_features, out_features;
    float act_min, act_max;
} ec_fc_f32_params_t;

/* Grouped CONV_2D (TFLite's groups = in_c / filter depth > 1): filter [out_c][k_h][k_w][in_c / groups];
 * output channel oc reads input channels [g * in_c / groups, (g + 1) * in_c / groups) with
 * g = oc / (out_c / groups). A separate kernel, so that ec_conv2d_* variants need not handle groups. */
typedef struct {
    ec_conv_s8_params_t conv;
    int32_t groups;
} ec_conv_grouped_s8_params_t;

typedef struct {
    ec_conv_f32_params_t conv;
    int32_t groups;
} ec_conv_grouped_f32_params_t;

/* The taps k in [*lo, *hi) whose position start + k * dil lies in [0, size): the kernel rows (or
 * columns) of a window that fall inside the image; TFLite Micro skips the others (padding). */
EC_INLINE void ec_tap_range(int32_t start, int32_t dil, int32_t size, int32_t k, int32_t *lo, int32_t *hi) {
    int32_t a = start < 0 ? (-start + dil - 1) / dil : 0;
    int32_t b = size - start > 0 ? (size - start + dil - 1) / dil : 0;
    *lo = a;
    *hi = b < k ? b : k;
}

/* scratch: a caller-provided buffer of ec_<kernel>_get_buffer_size(p) bytes (may be NULL when 0) */
void ec_conv2d_s8(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                  int8_t *out, void *scratch);
void ec_conv2d_f32(const ec_conv_f32_params_t *p, const float *in, const float *w, const float *bias,
                   float *out, void *scratch);
void ec_depthwise_conv2d_s8(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *w,
                            const int32_t *bias, int8_t *out, void *scratch);
void ec_depthwise_conv2d_f32(const ec_conv_f32_params_t *p, const float *in, const float *w,
                             const float *bias, float *out, void *scratch);
void ec_conv2d_grouped_s8(const ec_conv_grouped_s8_params_t *p, const int8_t *in, const int8_t *w,
                          const int32_t *bias, int8_t *out, void *scratch);
void ec_conv2d_grouped_f32(const ec_conv_grouped_f32_params_t *p, const float *in, const float *w,
                           const float *bias, float *out, void *scratch);
void ec_transpose_conv_s8(const ec_conv_s8_params_t *p, const int8_t *in, const int8_t *w, const int32_t *bias,
                          int8_t *out, void *scratch);
void ec_transpose_conv_f32(const ec_conv_f32_params_t *p, const float *in, const float *w, const float *bias,
                           float *out, void *scratch);
void ec_fully_connected_s8(const ec_fc_s8_params_t *p, const int8_t *in, const int8_t *w,
                           const int32_t *bias, int8_t *out, void *scratch);
void ec_fully_connected_f32(const ec_fc_f32_params_t *p, const float *in, const float *w,
                            const float *bias, float *out, void *scratch);

#endif /* EC_CONV_H */
