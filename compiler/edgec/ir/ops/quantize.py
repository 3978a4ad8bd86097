"""QUANTIZE, DEQUANTIZE and DENSIFY.

QUANTIZE follows tensorflow/lite/kernels/internal/reference/quantize.h and requantize.h (shared by
LiteRT's reference kernels and TFLite Micro):
  * float32 -> int: q = clamp(round_half_away(x / float(scale)) + zp), the division in float32,
    per tensor or (LiteRT only) per channel;
  * int -> int (requantize): q = clamp(MultiplyByQuantizedMultiplier(x - zp_in, M) + zp_out) with
    M = QuantizeMultiplier(double(scale_in) / double(scale_out)).
DEQUANTIZE computes float(scale) * float(q - zp) in float32 (reference/dequantize.h); float16 ->
float32 is exact (how TFLite stores fp16 models: fp16 constants behind DEQUANTIZE).
DENSIFY turns a sparse constant into a dense tensor; the IR keeps constants dense (the TFLite
writer re-encodes tensors marked `meta["tflite_sparsity"]`), so its reference is a copy.
"""
from __future__ import annotations

import numpy as np

from ..quant import INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier, quantize_multiplier, \
    round_half_away
from . import OpDef, register

_INTS = ("int8", "uint8", "int16", "int32")


def _same_shape(op, ins):
    return [tuple(ins[0].shape)]


def _channel_params(q, ndim: int):
    """(scale float32, zero point int64) shaped to broadcast over a tensor of `ndim` dims."""
    scale = np.asarray(q.scale, np.float32)
    zp = np.asarray(q.zero_point, np.int64)
    if q.axis is not None and scale.size > 1:
        shape = [1] * ndim
        shape[q.axis] = -1
        return scale.reshape(shape), zp.reshape(shape)
    return scale[0], zp[0]


def affine_quantize(x, q, dtype: str) -> np.ndarray:
    """AffineQuantize / PerChannelQuantize: float32 -> `dtype` as TFLite's reference does."""
    x = np.asarray(x, np.float32)
    scale, zp = _channel_params(q, x.ndim)
    r = round_half_away(x / scale)  # float32 division, std::round on the float32 quotient
    # static_cast<int32_t>: saturate out-of-range values (as on Arm; NaN -> 0)
    r = np.nan_to_num(np.clip(r, INT32_MIN, INT32_MAX), nan=0.0).astype(np.int64)
    info = np.iinfo(dtype)
    return np.clip(r + zp, info.min, info.max).astype(dtype)


def requantize(x, q_in, q_out, dtype: str) -> np.ndarray:
    """reference_ops::Requantize with the effective scale computed in double."""
    mult, shift = quantize_multiplier(float(np.float64(q_in.scale[0]) / np.float64(q_out.scale[0])))
    acc = np.asarray(x, np.int64) - int(q_in.zero_point[0])
    y = multiply_by_quantized_multiplier(acc, mult, shift) + int(q_out.zero_point[0])
    info = np.iinfo(dtype)
    return np.clip(y, info.min, info.max).astype(dtype)


def _quantize_ref(op, xs, ins, outs):
    tin, tout = ins[0], outs[0]
    if tout.quant is None or tout.dtype not in _INTS:
        raise ValueError(f"QUANTIZE output must be a quantized integer tensor, got {tout.dtype}")
    if tin.dtype in ("float32", "float16"):
        return [affine_quantize(np.asarray(xs[0], np.float32), tout.quant, tout.dtype)]
    if tin.dtype in _INTS and tin.quant is not None:
        if tin.quant.per_channel or tout.quant.per_channel:
            raise NotImplementedError("QUANTIZE requantizes per-tensor parameters only")
        return [requantize(xs[0], tin.quant, tout.quant, tout.dtype)]
    raise NotImplementedError(f"QUANTIZE from {tin.dtype} to {tout.dtype}")


register(OpDef("QUANTIZE", _same_shape, _quantize_ref, options="QuantizeOptions",
               quant_dtypes=("int8", "int16")))


def _dequantize_ref(op, xs, ins, outs):
    tin = ins[0]
    x = np.asarray(xs[0])
    if tin.dtype == "float16":
        return [x.astype(np.float32)]
    if tin.quant is None:
        raise ValueError(f"DEQUANTIZE input {tin.name!r} ({tin.dtype}) has no quantization")
    scale, zp = _channel_params(tin.quant, x.ndim)
    centred = (x.astype(np.int64) - zp).astype(np.float32)  # int32 (val - zp) -> float
    return [(scale * centred).astype(np.float32)]


register(OpDef("DEQUANTIZE", _same_shape, _dequantize_ref, options="DequantizeOptions",
               quant_dtypes=("int8", "int16")))


def _densify_ref(op, xs, ins, outs):
    return [np.array(xs[0], copy=True)]


register(OpDef("DENSIFY", _same_shape, _densify_ref, options="DensifyOptions", out_quant="same",
               quant_dtypes=("int8",)))
