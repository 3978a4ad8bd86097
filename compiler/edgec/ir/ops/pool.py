"""Pooling and reductions: AVERAGE_POOL_2D, MAX_POOL_2D, MEAN.

Reference semantics are TFLite Micro's (reference/integer_ops/pooling.h, micro/kernels/
reduce_common.cc + reference/reduce.h):
- pools read only in-image taps; the integer average is sum / count rounded half away from zero
  with C's truncating division, then the fused-activation clamp; input and output quantization must
  be equal (the kernels never rescale).
- integer MEAN is always QuantizedMeanOrSum (also when input and output quantization are equal:
  older TFLM releases then truncated sum / count, current TFLM and LiteRT do not): the multiplier of
  input_scale / output_scale absorbs 1/count as (multiplier << s) / count with
  s = floor(log2(count)) (clamped to 32 and to 31 + shift), applied to sum(q) - input_zp * count,
  then + output_zp and a clamp to the type's range. MEAN has no fused activation.
"""
from __future__ import annotations

import numpy as np

from . import OpDef, register
from ..quant import activation_range, multiply_by_quantized_multiplier, quantize_multiplier
from .conv import out_size, pad_before, windows


# ------------------------------------------------------------------------------------------------
# AVERAGE_POOL_2D / MAX_POOL_2D (Pool2DOptions)

def _pool_geometry(op, ishape):
    a = op.attrs
    _, h, w, _ = ishape
    kh, kw = a["filter_height"], a["filter_width"]
    sh, sw = a["stride_h"], a["stride_w"]
    oh = out_size(a["padding"], h, kh, sh)
    ow = out_size(a["padding"], w, kw, sw)
    return kh, kw, sh, sw, pad_before(h, kh, sh, 1, oh), pad_before(w, kw, sw, 1, ow), oh, ow


def _pool_shape(op, ins):
    x = ins[0]
    *_, oh, ow = _pool_geometry(op, x.shape)
    return [(x.shape[0], oh, ow, x.shape[3])]


def _clamp(y, op, t):
    act = op.attrs["fused_activation_function"]
    if t.dtype == "float32":
        lo, hi = activation_range(act, "float32")
        return np.clip(y, lo, hi).astype(np.float32)
    lo, hi = activation_range(act, t.dtype, float(np.float32(t.quant.scale[0])),
                              int(t.quant.zero_point[0]))
    return np.clip(y, lo, hi).astype(t.dtype)


def _avg_ref(op, xs, ins, outs):
    x = xs[0]
    kh, kw, sh, sw, ph, pw, oh, ow = _pool_geometry(op, x.shape)
    float_ = ins[0].dtype == "float32"
    xv = x.astype(np.float64 if float_ else np.int64)
    total = windows(xv, kh, kw, sh, sw, 1, 1, ph, pw, oh, ow, 0).sum(axis=(3, 4))
    ones = np.ones((1,) + x.shape[1:3] + (1,), np.int64)
    count = windows(ones, kh, kw, sh, sw, 1, 1, ph, pw, oh, ow, 0).sum(axis=(3, 4))
    if float_:
        y = total.astype(np.float32) / count.astype(np.float32)
    else:
        half = count // 2
        num = np.where(total > 0, total + half, total - half)
        y = np.sign(num) * (np.abs(num) // count)      # C division truncates toward zero
    return [_clamp(y, op, outs[0])]


def _max_ref(op, xs, ins, outs):
    x = xs[0]
    kh, kw, sh, sw, ph, pw, oh, ow = _pool_geometry(op, x.shape)
    fill = -np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min
    y = windows(x, kh, kw, sh, sw, 1, 1, ph, pw, oh, ow, fill).max(axis=(3, 4))
    return [_clamp(y, op, outs[0])]


def _pool_macs(op, ins, outs):
    # additions/comparisons, one per tap: what the pool costs on a MAC unit
    taps = op.attrs["filter_height"] * op.attrs["filter_width"]
    return int(np.prod(outs[0].shape, dtype=np.int64)) * taps


register(OpDef("AVERAGE_POOL_2D", _pool_shape, _avg_ref, options="Pool2DOptions", macs=_pool_macs,
               out_quant="same", quant_dtypes=("int8", "int16")))
register(OpDef("MAX_POOL_2D", _pool_shape, _max_ref, options="Pool2DOptions", macs=_pool_macs,
               out_quant="same", quant_dtypes=("int8", "int16")))


# ------------------------------------------------------------------------------------------------
# MEAN: inputs (data, axis int32); ReducerOptions.keep_dims

def _axes(op, ins, xs=None) -> tuple[int, ...]:
    rank = len(ins[0].shape)
    raw = xs[1] if xs is not None and xs[1] is not None else ins[1].data
    if raw is None:
        raise ValueError("MEAN needs a constant axis operand")
    axes: list[int] = []
    for v in np.asarray(raw).reshape(-1):
        a = int(v) + rank if int(v) < 0 else int(v)
        if not 0 <= a < rank:
            raise ValueError(f"MEAN axis {int(v)} out of range for rank {rank}")
        if a not in axes:
            axes.append(a)
    return tuple(axes)


def _mean_shape(op, ins):
    shape = ins[0].shape
    axes = _axes(op, ins)
    if op.attrs.get("keep_dims"):
        return [tuple(1 if i in axes else d for i, d in enumerate(shape))]
    return [tuple(d for i, d in enumerate(shape) if i not in axes)]


def _mean_ref(op, xs, ins, outs):
    x, it, ot = xs[0], ins[0], outs[0]
    axes = _axes(op, ins, xs)
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    if it.dtype == "float32":
        y = x.astype(np.float64).sum(axis=axes) / count if count else np.zeros(ot.shape)
        return [np.asarray(y, np.float32).reshape(ot.shape)]
    total = x.astype(np.int64).sum(axis=axes)
    in_s, out_s = np.float32(it.quant.scale[0]), np.float32(ot.quant.scale[0])
    in_zp, out_zp = int(it.quant.zero_point[0]), int(ot.quant.zero_point[0])
    info = np.iinfo(ot.dtype)
    if count == 0:
        return [np.zeros(ot.shape, ot.dtype)]
    mult, shift = quantize_multiplier(float(np.float64(in_s) / np.float64(out_s)))
    s = count.bit_length() - 1                                   # 63 - CountLeadingZeros(count)
    s = min(s, 32, 31 + shift)
    mult = (mult << s) // count
    shift -= s
    shifted = total - in_zp * count
    y = multiply_by_quantized_multiplier(shifted, mult, shift) + out_zp
    return [np.clip(y, info.min, info.max).astype(ot.dtype).reshape(ot.shape)]


def _mean_macs(op, ins, outs):
    return int(np.prod(ins[0].shape, dtype=np.int64))


register(OpDef("MEAN", _mean_shape, _mean_ref, options="ReducerOptions", macs=_mean_macs,
               out_quant="calibrate", quant_dtypes=("int8", "int16"), int_operands=(1,)))
