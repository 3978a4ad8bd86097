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

from . import CCall, OpDef, register
from ...errors import EdgecError
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


def _act_range(op, t):
    """The fused activation's clamp for output tensor t: floats, or output integers."""
    act = op.attrs["fused_activation_function"]
    if t.dtype == "float32":
        return activation_range(act, "float32")
    return activation_range(act, t.dtype, float(np.float32(t.quant.scale[0])), int(t.quant.zero_point[0]))


def _clamp(y, op, t):
    lo, hi = _act_range(op, t)
    return np.clip(y, lo, hi).astype(np.float32 if t.dtype == "float32" else t.dtype)


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


def _pool_c(kind: str):
    """C emitter for ec_<kind>_{s8,f32} (kernels/include/ec_pool.h)."""
    def emit(op, ins, outs, cx):
        it, ot = ins[0], outs[0]
        if len(it.shape) != 4:
            raise EdgecError(f"{op.type} {op.name}: the C backend needs a 4-D NHWC input, got {list(it.shape)}")
        kh, kw, sh, sw, ph, pw, oh, ow = _pool_geometry(op, it.shape)
        n, h, w, c = it.shape
        fields = {"batches": n, "in_h": h, "in_w": w, "channels": c, "out_h": oh, "out_w": ow,
                  "k_h": kh, "k_w": kw, "stride_h": sh, "stride_w": sw, "pad_h": ph, "pad_w": pw}
        args = [cx.ptr(op.inputs[0]), cx.ptr(op.outputs[0])]
        if it.dtype == "float32" and ot.dtype == "float32":
            suffix = "f32"
        elif it.dtype == "int8" and ot.dtype == "int8":
            suffix = "s8"
        else:
            raise EdgecError(f"{op.type} {op.name}: the C backend runs int8 and float32, not {it.dtype}")
        lo, hi = _act_range(op, ot)
        return CCall(f"ec_{kind}_{suffix}", args,
                     (f"ec_pool_{suffix}_params_t", {**fields, "act_min": lo, "act_max": hi}))
    return emit

def _pool_tf(kind: str):
    """TF lowering (edgec.train): TF's SAME pools pad like TFLite and average in-image taps only."""
    def lower(op, xs, attrs):
        from ._tfutil import act, tfm
        tf = tfm()
        a = attrs
        fn = tf.nn.avg_pool2d if kind == "avg" else tf.nn.max_pool2d
        y = fn(xs[0], [a["filter_height"], a["filter_width"]], [a["stride_h"], a["stride_w"]], a["padding"])
        return [act(y, a["fused_activation_function"])]
    return lower


register(OpDef("AVERAGE_POOL_2D", _pool_shape, _avg_ref, options="Pool2DOptions", macs=_pool_macs,
               out_quant="same", quant_dtypes=("int8", "int16"), c=_pool_c("avgpool"), tf=_pool_tf("avg")))
register(OpDef("MAX_POOL_2D", _pool_shape, _max_ref, options="Pool2DOptions", macs=_pool_macs,
               out_quant="same", quant_dtypes=("int8", "int16"), c=_pool_c("maxpool"), tf=_pool_tf("max")))


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


def mean_multiplier(it, ot, count: int) -> tuple[int, int]:
    """QuantizedMeanOrSum's (multiplier, shift) of input_scale / output_scale / count."""
    in_s, out_s = np.float32(it.quant.scale[0]), np.float32(ot.quant.scale[0])
    mult, shift = quantize_multiplier(float(np.float64(in_s) / np.float64(out_s)))
    s = count.bit_length() - 1                                   # 63 - CountLeadingZeros(count)
    s = min(s, 32, 31 + shift)
    return (mult << s) // count, shift - s


def _mean_ref(op, xs, ins, outs):
    x, it, ot = xs[0], ins[0], outs[0]
    axes = _axes(op, ins, xs)
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    if it.dtype == "float32":
        y = x.astype(np.float64).sum(axis=axes) / count if count else np.zeros(ot.shape)
        return [np.asarray(y, np.float32).reshape(ot.shape)]
    total = x.astype(np.int64).sum(axis=axes)
    in_zp, out_zp = int(it.quant.zero_point[0]), int(ot.quant.zero_point[0])
    info = np.iinfo(ot.dtype)
    if count == 0:
        return [np.zeros(ot.shape, ot.dtype)]
    mult, shift = mean_multiplier(it, ot, count)
    shifted = total - in_zp * count
    y = multiply_by_quantized_multiplier(shifted, mult, shift) + out_zp
    return [np.clip(y, info.min, info.max).astype(ot.dtype).reshape(ot.shape)]


def _mean_macs(op, ins, outs):
    return int(np.prod(ins[0].shape, dtype=np.int64))


def _c_array(values) -> str:
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def mean_loops(shape, axes, max_dims: int = 5):
    """The input as (kept dims, their element strides, reduced dims, their strides), each padded in
    front to max_dims with (1, 0): size-1 dims dropped, runs of adjacent kept (reduced) dims merged.
    Kept dims in order are the output's layout; None if either list needs more than max_dims."""
    strides, acc = [0] * len(shape), 1
    for k in reversed(range(len(shape))):
        strides[k], acc = acc, acc * int(shape[k])
    groups: list[list] = []                                      # [reduced?, size, stride]
    for k, d in enumerate(shape):
        if d == 1:
            continue
        red = k in axes
        if groups and groups[-1][0] == red:
            groups[-1][1] *= int(d)
            groups[-1][2] = strides[k]
        else:
            groups.append([red, int(d), strides[k]])
    kept = [(d, s) for r, d, s in groups if not r]
    reduced = [(d, s) for r, d, s in groups if r]
    if len(kept) > max_dims or len(reduced) > max_dims:
        return None
    pad = lambda xs: [(1, 0)] * (max_dims - len(xs)) + xs        # noqa: E731
    kept, reduced = pad(kept), pad(reduced)
    return [d for d, _ in kept], [s for _, s in kept], [d for d, _ in reduced], [s for _, s in reduced]


def _mean_c(op, ins, outs, cx):
    it, ot = ins[0], outs[0]
    try:
        axes = _axes(op, ins)
    except ValueError as e:
        raise EdgecError(f"MEAN {op.name}: {e}") from None
    loops = mean_loops(it.shape, axes)
    if loops is None:
        raise EdgecError(f"MEAN {op.name}: the C backend reduces at most 5 separate dim groups, got {list(it.shape)}")
    od, os_, rd, rs = loops
    count = int(np.prod([it.shape[a] for a in axes], dtype=np.int64))
    fields = {"out_dims": _c_array(od), "out_stride": _c_array(os_), "red_dims": _c_array(rd),
              "red_stride": _c_array(rs), "count": count}
    args = [cx.ptr(op.inputs[0]), cx.ptr(op.outputs[0])]
    if it.dtype == "float32" and ot.dtype == "float32":
        return CCall("ec_mean_f32", args, ("ec_mean_f32_params_t", fields))
    if it.dtype != "int8" or ot.dtype != "int8":
        raise EdgecError(f"MEAN {op.name}: the C backend runs int8 and float32, not {it.dtype}")
    mult, shift = mean_multiplier(it, ot, count) if count else (0, 0)
    return CCall("ec_mean_s8", args, ("ec_mean_s8_params_t", {
        **fields, "in_zp": int(it.quant.zero_point[0]), "out_zp": int(ot.quant.zero_point[0]),
        "mult": mult, "shift": shift}))

def _mean_tf(op, xs, attrs):
    """TF lowering (edgec.train); the axis operand comes as a numpy array."""
    from ._tfutil import fake, tfm
    axes = _axes(op, fake(xs))
    return [tfm().reduce_mean(xs[0], axis=list(axes), keepdims=bool(attrs.get("keep_dims")))]


register(OpDef("MEAN", _mean_shape, _mean_ref, options="ReducerOptions", macs=_mean_macs,
               out_quant="calibrate", quant_dtypes=("int8", "int16"), int_operands=(1,), c=_mean_c, tf=_mean_tf))
