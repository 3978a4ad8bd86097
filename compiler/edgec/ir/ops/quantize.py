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
from ...errors import EdgecError
from . import CCall, OpDef, register

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


def requantize_multiplier(q_in, q_out) -> tuple[int, int]:
    """The effective scale scale_in / scale_out, computed in double, as (multiplier, shift)."""
    return quantize_multiplier(float(np.float64(q_in.scale[0]) / np.float64(q_out.scale[0])))


def requantize(x, q_in, q_out, dtype: str) -> np.ndarray:
    """reference_ops::Requantize with the effective scale computed in double."""
    mult, shift = requantize_multiplier(q_in, q_out)
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


def _per_tensor(q) -> bool:
    return q is not None and np.asarray(q.scale).size == 1


def _quantize_c(op, ins, outs, cx):
    tin, tout = ins[0], outs[0]
    args = [cx.ptr(op.inputs[0]), cx.ptr(op.outputs[0])]
    if tout.dtype == "int8" and _per_tensor(tout.quant):
        if tin.dtype == "float32":
            return CCall("ec_quantize_f32_s8", args, ("ec_quantize_f32_s8_params_t", {
                "size": tout.size, "scale": np.float32(tout.quant.scale[0]),
                "zero_point": int(tout.quant.zero_point[0])}))
        if tin.dtype == "int8" and _per_tensor(tin.quant):
            mult, shift = requantize_multiplier(tin.quant, tout.quant)
            return CCall("ec_quantize_s8_s8", args, ("ec_quantize_s8_s8_params_t", {
                "size": tout.size, "in_zp": int(tin.quant.zero_point[0]),
                "out_zp": int(tout.quant.zero_point[0]), "mult": mult, "shift": shift}))
    raise EdgecError(f"QUANTIZE {op.name}: the C backend runs per-tensor float32 -> int8 and int8 -> int8, "
                     f"not {tin.dtype} -> {tout.dtype}")


register(OpDef("QUANTIZE", _same_shape, _quantize_ref, options="QuantizeOptions",
               quant_dtypes=("int8", "int16"), c=_quantize_c, inplace="elementwise"))


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


def _dequantize_c(op, ins, outs, cx):
    tin = ins[0]
    if tin.dtype == "int8" and _per_tensor(tin.quant) and outs[0].dtype == "float32":
        return CCall("ec_dequantize_s8_f32", [cx.ptr(op.inputs[0]), cx.ptr(op.outputs[0])], (
            "ec_dequantize_s8_f32_params_t", {"size": tin.size, "scale": np.float32(tin.quant.scale[0]),
                                              "zero_point": int(tin.quant.zero_point[0])}))
    raise EdgecError(f"DEQUANTIZE {op.name}: the C backend runs per-tensor int8 -> float32, not {tin.dtype} "
                     f"(constant float16 weights are folded before code generation)")

def _dequantize_tf(op, xs, attrs):
    """TF lowering (edgec.train) for float graphs: float16 constants widened to float32."""
    from ._tfutil import tfm
    tf = tfm()
    if xs[0].dtype != tf.float16:
        raise NotImplementedError("DEQUANTIZE of integer tensors has no float lowering")
    return [tf.cast(xs[0], tf.float32)]


register(OpDef("DEQUANTIZE", _same_shape, _dequantize_ref, options="DequantizeOptions",
               quant_dtypes=("int8", "int16"), c=_dequantize_c, tf=_dequantize_tf))


def _densify_ref(op, xs, ins, outs):
    return [np.array(xs[0], copy=True)]


def _densify_c(op, ins, outs, cx):
    raise EdgecError(f"DENSIFY {op.name}: its input must be constant (the compiler folds it before code "
                     f"generation)")

def _densify_tf(op, xs, attrs):
    from ._tfutil import tfm
    return [tfm().identity(xs[0])]


register(OpDef("DENSIFY", _same_shape, _densify_ref, options="DensifyOptions", out_quant="same",
               quant_dtypes=("int8",), c=_densify_c, tf=_densify_tf))
