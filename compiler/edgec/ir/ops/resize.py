"""RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR (NHWC, output size from a constant int32 [2] input).

Bit-exact with TFLite's reference kernels (tensorflow/lite/kernels/internal/reference/
resize_bilinear.h, resize_nearest_neighbor.h), which TFLite Micro shares:
  * float bilinear computes source coordinates and weights in float32;
  * int8/int16 bilinear uses ResizeBilinearInteger: coordinates in 10-bit fixed point, a 20-bit
    weighted sum in int64, rounded half away from zero (TFLITE_SINGLE_ROUNDING off);
  * nearest neighbour computes the source index in float32 (floor, or round-half-away with
    align_corners) for every dtype.
Neither op rescales, so a quantized output shares the input's scale and zero point.
"""
from __future__ import annotations

import numpy as np

from ...errors import EdgecError
from ..quant import round_half_away
from . import CCall, OpDef, register


def _size(op, ins) -> tuple[int, int]:
    t = ins[1] if len(ins) > 1 else None
    if t is None or t.data is None:
        raise ValueError(f"{op.type} needs a constant size input")
    s = [int(v) for v in np.asarray(t.data).reshape(-1)]
    if len(s) != 2 or min(s) < 1:
        raise ValueError(f"{op.type} size {s} must be two positive ints")
    return s[0], s[1]


def _shape(op, ins):
    if len(ins[0].shape) != 4:
        raise ValueError(f"{op.type} needs a 4-D NHWC input, got {list(ins[0].shape)}")
    if op.type == "RESIZE_BILINEAR" and op.attrs.get("align_corners") \
            and op.attrs.get("half_pixel_centers"):
        raise ValueError("RESIZE_BILINEAR: half_pixel_centers requires align_corners=False")
    n, _, _, c = ins[0].shape
    oh, ow = _size(op, ins)
    return [(n, oh, ow, c)]


# -- bilinear --------------------------------------------------------------------------------------

def _scale_f32(n_in: int, n_out: int, align: bool) -> np.float32:
    if align and n_out > 1:
        return np.float32(n_in - 1) / np.float32(n_out - 1)
    return np.float32(n_in) / np.float32(n_out)


def _coords_f32(n_in: int, n_out: int, align: bool, half: bool):
    """ComputeInterpolationValues over every output index: (source coord, lower, upper)."""
    scale = _scale_f32(n_in, n_out, align)
    v = np.arange(n_out, dtype=np.float32)
    if half:
        src = (v + np.float32(0.5)) * scale - np.float32(0.5)
    else:
        src = v * scale
    lo = np.maximum(np.floor(src).astype(np.int64), 0)
    hi = np.minimum(np.ceil(src).astype(np.int64), n_in - 1)
    return src.astype(np.float32), lo, hi


def _bilinear_float(x, oh, ow, align, half):
    x = np.asarray(x, np.float32)
    _, ih, iw, _ = x.shape
    sy, y0, y1 = _coords_f32(ih, oh, align, half)
    sx, x0, x1 = _coords_f32(iw, ow, align, half)
    one = np.float32(1)
    dy = (sy - y0.astype(np.float32))[None, :, None, None]
    dx = (sx - x0.astype(np.float32))[None, None, :, None]
    a = x[:, y0][:, :, x0]
    b = x[:, y1][:, :, x0]
    c = x[:, y0][:, :, x1]
    d = x[:, y1][:, :, x1]
    # the kernel's expression, evaluated left to right in float32
    out = a * (one - dy) * (one - dx) + b * dy * (one - dx) + c * (one - dy) * dx + d * dy * dx
    return out.astype(np.float32)


def _scale_10(n_in: int, n_out: int, align: bool) -> int:
    if align and n_out > 1:
        return ((1 << 10) * (n_in - 1) + (n_out - 1) // 2) // (n_out - 1)
    return ((1 << 10) * n_in + n_out // 2) // n_out


def _tdiv(a, b: int):
    """C integer division (truncates toward zero) for int64 arrays and a positive divisor."""
    a = np.asarray(a, np.int64)
    return np.where(a >= 0, a // b, -((-a) // b))


def _coords_int(n_in: int, n_out: int, align: bool, half: bool):
    """ComputeInterpolationValuesInteger: (source coord * 1024, lower, upper)."""
    s10 = _scale_10(n_in, n_out, align)
    v = np.arange(n_out, dtype=np.int64)
    src = v * s10 + s10 // 2 - (1 << 9) if half else v * s10
    lo = np.maximum(_tdiv(src, 1 << 10), 0)
    hi = np.minimum(_tdiv(src + (1 << 10) - 1, 1 << 10), n_in - 1)
    return src, lo, hi


def _bilinear_int(x, oh, ow, align, half, dtype):
    x = np.asarray(x, np.int64)
    _, ih, iw, _ = x.shape
    sy, y0, y1 = _coords_int(ih, oh, align, half)
    sx, x0, x1 = _coords_int(iw, ow, align, half)
    fy = (sy - (y0 << 10))[None, :, None, None]
    fx = (sx - (x0 << 10))[None, None, :, None]
    one = np.int64(1 << 10)
    acc = (x[:, y0][:, :, x0] * (one - fy) * (one - fx)
           + x[:, y1][:, :, x0] * fy * (one - fx)
           + x[:, y0][:, :, x1] * (one - fy) * fx
           + x[:, y1][:, :, x1] * fy * fx)
    rnd = np.where(acc > 0, np.int64(1 << 19), np.int64(-(1 << 19)))
    # static_cast<T> of the quotient: wraps like C if it ever left T's range
    return _tdiv(acc + rnd, 1 << 20).astype(dtype)


def _bilinear_ref(op, xs, ins, outs):
    oh, ow = _size(op, ins)
    align = bool(op.attrs.get("align_corners", False))
    half = bool(op.attrs.get("half_pixel_centers", False))
    dtype = outs[0].dtype
    if dtype == "float32":
        return [_bilinear_float(xs[0], oh, ow, align, half)]
    if dtype in ("int8", "int16"):
        return [_bilinear_int(xs[0], oh, ow, align, half, dtype)]
    raise NotImplementedError(f"RESIZE_BILINEAR on {dtype}")


def _dims(op, ins):
    n, ih, iw, c = ins[0].shape
    oh, ow = _size(op, ins)
    return {"batches": n, "in_h": ih, "in_w": iw}, c, oh, ow


def _bilinear_c(op, ins, outs, cx):
    dims, c, oh, ow = _dims(op, ins)
    _, ih, iw, _ = ins[0].shape
    align = bool(op.attrs.get("align_corners", False))
    half = bool(op.attrs.get("half_pixel_centers", False))
    dtype = outs[0].dtype
    args = [cx.ptr(op.inputs[0]), cx.ptr(op.outputs[0])]
    fields = {**dims, "channels": c, "out_h": oh, "out_w": ow}
    arr = lambda suffix, v, ctype: cx.array(f"{op.name}_{suffix}", v, ctype)  # noqa: E731
    if dtype == "float32":
        sy, y0, y1 = _coords_f32(ih, oh, align, half)
        sx, x0, x1 = _coords_f32(iw, ow, align, half)
        dy, dx = sy - y0.astype(np.float32), sx - x0.astype(np.float32)   # as _bilinear_float
        return CCall("ec_resize_bilinear_f32", args, ("ec_resize_bilinear_f32_params_t", {
            **fields, "y0": arr("y0", y0, "int32_t"), "y1": arr("y1", y1, "int32_t"), "dy": arr("dy", dy, "float"),
            "x0": arr("x0", x0, "int32_t"), "x1": arr("x1", x1, "int32_t"), "dx": arr("dx", dx, "float")}))
    if dtype == "int8":
        sy, y0, y1 = _coords_int(ih, oh, align, half)
        sx, x0, x1 = _coords_int(iw, ow, align, half)
        fy, fx = sy - (y0 << 10), sx - (x0 << 10)                          # as _bilinear_int
        return CCall("ec_resize_bilinear_s8", args, ("ec_resize_bilinear_s8_params_t", {
            **fields, "y0": arr("y0", y0, "int32_t"), "y1": arr("y1", y1, "int32_t"), "fy": arr("fy", fy, "int32_t"),
            "x0": arr("x0", x0, "int32_t"), "x1": arr("x1", x1, "int32_t"), "fx": arr("fx", fx, "int32_t")}))
    raise EdgecError(f"RESIZE_BILINEAR {op.name}: the C backend runs int8 and float32, not {dtype}")


def _bilinear_tf(op, xs, attrs):
    """TF lowering (edgec.train): the reference's float32 indices and weights, gathered."""
    from ._tfutil import tfm
    tf = tfm()
    oh, ow = (int(v) for v in np.asarray(xs[1]).reshape(-1))
    align = bool(attrs.get("align_corners", False))
    half = bool(attrs.get("half_pixel_centers", False))
    x = xs[0]
    ih, iw = int(x.shape[1]), int(x.shape[2])
    sy, y0, y1 = _coords_f32(ih, oh, align, half)
    sx, x0, x1 = _coords_f32(iw, ow, align, half)
    dy = (sy - y0.astype(np.float32)).reshape(1, -1, 1, 1)
    dx = (sx - x0.astype(np.float32)).reshape(1, 1, -1, 1)
    g = lambda ys, xs_: tf.gather(tf.gather(x, ys.astype(np.int32), axis=1), xs_.astype(np.int32), axis=2)  # noqa: E731
    a, b, c, d = g(y0, x0), g(y1, x0), g(y0, x1), g(y1, x1)
    return [a * (1 - dy) * (1 - dx) + b * dy * (1 - dx) + c * (1 - dy) * dx + d * dy * dx]


# The int16 reference above matches LiteRT, but TFLite Micro has no int16 bilinear kernel; the
# quantizer only picks dtypes every runtime runs, so int16x8 models keep this op in float.
register(OpDef("RESIZE_BILINEAR", _shape, _bilinear_ref, options="ResizeBilinearOptions",
               out_quant="same", quant_dtypes=("int8",), int_operands=(1,), c=_bilinear_c, tf=_bilinear_tf))


# -- nearest neighbour -----------------------------------------------------------------------------

def _nearest_index(n_in: int, n_out: int, align: bool, half: bool) -> np.ndarray:
    """GetNearestNeighbor over every output index, in float32 like the kernel."""
    scale = _scale_f32(n_in, n_out, align)
    offset = np.float32(0.5) if half else np.float32(0.0)
    v = (np.arange(n_out, dtype=np.float32) + offset) * scale
    # TfLiteRound is std::round (half away from zero), exact on the float32 value
    idx = (round_half_away(v) if align else np.floor(v)).astype(np.int64)
    idx = np.minimum(idx, n_in - 1)
    if half:
        idx = np.maximum(idx, 0)
    return idx


def _nearest_ref(op, xs, ins, outs):
    oh, ow = _size(op, ins)
    align = bool(op.attrs.get("align_corners", False))
    half = bool(op.attrs.get("half_pixel_centers", False))
    x = np.asarray(xs[0])
    _, ih, iw, _ = x.shape
    yi = _nearest_index(ih, oh, align, half)
    xi = _nearest_index(iw, ow, align, half)
    return [x[:, yi][:, :, xi]]


def _nearest_c(op, ins, outs, cx):
    # values are only copied, so one element-size-generic kernel serves every dtype
    dims, c, oh, ow = _dims(op, ins)
    _, ih, iw, _ = ins[0].shape
    align = bool(op.attrs.get("align_corners", False))
    half = bool(op.attrs.get("half_pixel_centers", False))
    return CCall("ec_resize_nearest_neighbor_x", [cx.ptr(op.inputs[0]), cx.ptr(op.outputs[0])], (
        "ec_resize_nearest_params_t", {
            **dims, "out_h": oh, "out_w": ow, "pixel_bytes": c * np.dtype(outs[0].dtype).itemsize,
            "y_index": cx.array(op.name + "_y", _nearest_index(ih, oh, align, half), "int32_t"),
            "x_index": cx.array(op.name + "_x", _nearest_index(iw, ow, align, half), "int32_t")}))

def _nearest_tf(op, xs, attrs):
    from ._tfutil import tfm
    tf = tfm()
    oh, ow = (int(v) for v in np.asarray(xs[1]).reshape(-1))
    align = bool(attrs.get("align_corners", False))
    half = bool(attrs.get("half_pixel_centers", False))
    x = xs[0]
    yi = _nearest_index(int(x.shape[1]), oh, align, half).astype(np.int32)
    xi = _nearest_index(int(x.shape[2]), ow, align, half).astype(np.int32)
    return [tf.gather(tf.gather(x, yi, axis=1), xi, axis=2)]


register(OpDef("RESIZE_NEAREST_NEIGHBOR", _shape, _nearest_ref,
               options="ResizeNearestNeighborOptions", out_quant="same",
               quant_dtypes=("int8", "int16"), int_operands=(1,), c=_nearest_c, tf=_nearest_tf))
