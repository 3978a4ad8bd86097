"""Ops that only move values: RESHAPE, SQUEEZE, CONCATENATION, PAD, STRIDED_SLICE, TRANSPOSE,
DEPTH_TO_SPACE, SPACE_TO_DEPTH.

Quantized tensors pass through as raw integers (the output shares the input's scale and zero point),
so one implementation serves float32, int8 and int16. The index logic follows TFLite's kernels:
tensorflow/lite/kernels/{reshape,squeeze,concatenation,pad,strided_slice,transpose,depth_to_space,
space_to_depth}.cc and strided_slice_logic.h.
"""
from __future__ import annotations

import math

import numpy as np

from ...errors import EdgecError
from ..quant import activation_range
from . import CCall, OpDef, register

_Q = ("int8", "int16")


def _const_ints(t, op, what: str) -> list[int]:
    if t is None or t.data is None:
        raise ValueError(f"{op.type} needs a constant {what} operand")
    return [int(v) for v in np.asarray(t.data).reshape(-1)]


# -- RESHAPE ---------------------------------------------------------------------------------------

def _reshape_target(op, ins) -> list[int]:
    # TFLite's reshape.cc: the 2nd input wins when it is a 1-D int32 tensor, else the options'
    # new_shape; a new_shape of [0] is the legacy spelling of a scalar.
    shp = ins[1] if len(ins) > 1 else None
    if shp is not None and len(shp.shape) == 1 and shp.dtype == "int32":
        return _const_ints(shp, op, "shape")
    new_shape = op.attrs.get("new_shape")
    if new_shape is None:
        raise ValueError("RESHAPE has neither a shape input nor new_shape")
    new_shape = [int(d) for d in new_shape]
    if new_shape == [0]:
        return []
    return new_shape


def _reshape_shape(op, ins):
    target = _reshape_target(op, ins)
    n_in = ins[0].size
    unknown = [i for i, d in enumerate(target) if d == -1]
    if len(unknown) > 1:
        raise ValueError(f"RESHAPE shape {target} has more than one -1")
    known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
    if any(d < -1 for d in target):
        raise ValueError(f"RESHAPE shape {target} has a negative size")
    if unknown:
        if known == 0 or n_in % known:
            raise ValueError(f"RESHAPE cannot infer -1 in {target} from {n_in} elements")
        target[unknown[0]] = n_in // known
    elif known != n_in:
        raise ValueError(f"RESHAPE to {target} ({known} elements) from {n_in} elements")
    return [tuple(target)]


def _reshape_ref(op, xs, ins, outs):
    return [np.reshape(xs[0], outs[0].shape)]


def _copy_c(op, ins, outs, cx):
    # Only emitted when the planner could not alias the output onto the input (graph outputs,
    # constant inputs): a byte copy.
    n = outs[0].size * _itemsize(outs[0])
    return CCall("ec_copy", [cx.ptr(op.outputs[0]), cx.ptr(op.inputs[0]), str(n)])

def _reshape_tf(op, xs, attrs):
    """TF lowering (edgec.train) of RESHAPE and SQUEEZE: the IR output shape with a free batch."""
    from ._tfutil import batched, fake, tfm
    shape_fn = _reshape_shape if op.type == "RESHAPE" else _squeeze_shape
    return [tfm().reshape(xs[0], batched(shape_fn(op, fake(xs))[0]))]


register(OpDef("RESHAPE", _reshape_shape, _reshape_ref, options="ReshapeOptions",
               out_quant="same", quant_dtypes=_Q, int_operands=(1,), c=_copy_c, inplace="alias", tf=_reshape_tf))


# -- SQUEEZE ---------------------------------------------------------------------------------------

def _squeeze_shape(op, ins):
    shape = ins[0].shape
    dims = op.attrs.get("squeeze_dims") or []
    if not dims:
        return [tuple(d for d in shape if d != 1)]
    drop = set()
    for d in dims:
        d = int(d)
        a = d + len(shape) if d < 0 else d
        if not 0 <= a < len(shape) or shape[a] != 1:
            raise ValueError(f"SQUEEZE dim {d} is not a size-1 dim of {list(shape)}")
        drop.add(a)
    return [tuple(s for i, s in enumerate(shape) if i not in drop)]


def _squeeze_ref(op, xs, ins, outs):
    return [np.reshape(xs[0], outs[0].shape)]


register(OpDef("SQUEEZE", _squeeze_shape, _squeeze_ref, options="SqueezeOptions",
               out_quant="same", quant_dtypes=_Q, c=_copy_c, inplace="alias", tf=_reshape_tf))


# -- CONCATENATION ---------------------------------------------------------------------------------

def _concat_axis(op, rank: int) -> int:
    axis = int(op.attrs.get("axis", 0))
    a = axis + rank if axis < 0 else axis
    if not 0 <= a < rank:
        raise ValueError(f"CONCATENATION axis {axis} out of range for rank {rank}")
    return a


def _concat_shape(op, ins):
    ts = [t for t in ins if t is not None]
    rank = len(ts[0].shape)
    axis = _concat_axis(op, rank)
    out = list(ts[0].shape)
    for t in ts[1:]:
        if len(t.shape) != rank or any(a != b for i, (a, b) in enumerate(zip(t.shape, ts[0].shape))
                                       if i != axis):
            raise ValueError(f"CONCATENATION inputs {[list(t.shape) for t in ts]} do not match "
                             f"off axis {axis}")
        out[axis] += t.shape[axis]
    return [tuple(out)]


def _concat_check_quant(ins, out):
    if out.quant is not None:
        for t in ins:
            if t is not None and not out.quant.same_as(t.quant):
                raise ValueError(f"CONCATENATION input {t.name!r} has other quantization than the "
                                 f"output {out.name!r}; TFLite copies raw values")


def _concat_ref(op, xs, ins, outs):
    # Integer inputs are copied as raw values: LiteRT and TFLite Micro both require every input
    # to share the output's scale and zero point.
    out = outs[0]
    _concat_check_quant(ins, out)
    axis = _concat_axis(op, len(outs[0].shape))
    y = np.concatenate([np.asarray(x) for x in xs if x is not None], axis=axis)
    act = op.attrs.get("fused_activation_function", "NONE")
    if act != "NONE":
        if out.dtype == "float32":
            lo, hi = activation_range(act, "float32")
            y = np.clip(y, np.float32(lo), np.float32(hi)).astype(np.float32)
        else:
            q = out.quant
            lo, hi = activation_range(act, out.dtype, float(q.scale[0]), int(q.zero_point[0]))
            y = np.clip(y, lo, hi).astype(out.dtype)
    return [y]


def _concat_c(op, ins, outs, cx):
    out = outs[0]
    act = op.attrs.get("fused_activation_function", "NONE")
    if act != "NONE":
        raise EdgecError(f"CONCATENATION {op.name}: the C backend has no fused {act} (neither "
                         f"LiteRT nor TFLite Micro runs one)")
    try:
        _concat_check_quant(ins, out)
    except ValueError as e:
        raise EdgecError(str(e)) from None
    axis = _concat_axis(op, len(out.shape))
    outer = int(np.prod(out.shape[:axis], dtype=np.int64))
    inner = int(np.prod(out.shape[axis + 1:], dtype=np.int64)) * _itemsize(out)
    names = [n for n in op.inputs if n is not None]
    row_bytes = [cx.g.t(n).shape[axis] * inner for n in names]
    inputs = "(const void *const[]){" + ", ".join(cx.ptr(n) for n in names) + "}"
    return CCall("ec_concatenation_x", [inputs, cx.ptr(op.outputs[0])], ("ec_concatenation_params_t", {
        "outer": outer, "num_inputs": len(names),
        "row_bytes": cx.array(op.name + "_rows", row_bytes, "int32_t")}))

def _concat_tf(op, xs, attrs):
    from ._tfutil import act, tfm
    tf = tfm()
    ts = [x for x in xs if x is not None]
    n = tf.reduce_max(tf.stack([tf.shape(t)[0] for t in ts]))   # constants (batch 1) follow the batch
    ts = [tf.broadcast_to(t, tf.concat([[n], tf.shape(t)[1:]], 0)) if t.shape[0] == 1 else t for t in ts]
    y = tf.concat(ts, axis=_concat_axis(op, len(ts[0].shape)))
    return [act(y, attrs.get("fused_activation_function", "NONE"))]


register(OpDef("CONCATENATION", _concat_shape, _concat_ref, options="ConcatenationOptions",
               out_quant="same", quant_dtypes=_Q, c=_concat_c, tf=_concat_tf))


# -- PAD -------------------------------------------------------------------------------------------

def _paddings(op, ins) -> np.ndarray:
    p = np.asarray(_const_ints(ins[1], op, "paddings"), np.int64)
    rank = len(ins[0].shape)
    if p.size != 2 * rank:
        raise ValueError(f"PAD paddings hold {p.size} values, a rank-{rank} input needs {2 * rank}")
    p = p.reshape(rank, 2)
    if (p < 0).any():
        raise ValueError(f"PAD paddings {p.tolist()} are negative")
    return p


def _pad_shape(op, ins):
    p = _paddings(op, ins)
    return [tuple(int(d + a + b) for d, (a, b) in zip(ins[0].shape, p))]


def _pad_ref(op, xs, ins, outs):
    p = _paddings(op, ins)
    return [np.pad(np.asarray(xs[0]), [tuple(r) for r in p], constant_values=_pad_value(outs[0]))]


def _pad_value(out) -> int:
    # Quantized PAD fills with the output's zero point (the quantized 0.0), float PAD with 0.
    return int(out.quant.zero_point[0]) if out.quant is not None and out.dtype != "float32" else 0


def _pad_c(op, ins, outs, cx):
    from ...backends.c.emit import CTYPES
    pads = _paddings(op, ins)
    # Compact the layout: size-1 unpadded dims vanish, an unpadded dim folds into the one before
    # it (its padding scales by the dim), so NHWC padded on H and W becomes [H][W*C].
    dims = [[int(d), int(a), int(b)] for d, (a, b) in zip(ins[0].shape, pads) if not (d == 1 and a == b == 0)]
    for k in range(len(dims) - 1, 0, -1):
        d, a, b = dims[k]
        if a == b == 0:
            dims[k - 1] = [dims[k - 1][0] * d, dims[k - 1][1] * d, dims[k - 1][2] * d]
            del dims[k]
    if len(dims) > 5:
        raise EdgecError(f"PAD {op.name}: the C backend pads up to 5 dims, not {len(dims)}")
    dims = [[1, 0, 0]] * (5 - len(dims)) + dims
    out = outs[0]
    value = cx.array(op.name + "_pad_value", np.asarray([_pad_value(out)], out.dtype), CTYPES[out.dtype])
    return CCall("ec_pad_x", [cx.ptr(op.inputs[0]), cx.ptr(op.outputs[0])], ("ec_pad_params_t", {
        "elem_size": _itemsize(out), "in_dims": _carr(d[0] for d in dims),
        "pad_before": _carr(d[1] for d in dims), "pad_after": _carr(d[2] for d in dims),
        "pad_value": value}))

def _pad_tf(op, xs, attrs):
    from ._tfutil import fake, tfm
    return [tfm().pad(xs[0], _paddings(op, fake(xs)).tolist())]


register(OpDef("PAD", _pad_shape, _pad_ref, options="PadOptions", out_quant="same",
               quant_dtypes=_Q, int_operands=(1,), c=_pad_c, tf=_pad_tf))


# -- STRIDED_SLICE ---------------------------------------------------------------------------------

def _bit(mask: int, i: int) -> bool:
    return bool(mask & (1 << i))


def _strided_slice_plan(op, ins):
    """TFLite's strided_slice.cc: expand ellipsis/new-axis masks into per-dim params over the
    "effective" input (input with the new axes inserted), then StridedSliceStartForAxis /
    StridedSliceEndForAxis per dim. Returns (effective shape, [(start, stop, stride, shrink)],
    output shape)."""
    a = op.attrs
    in_shape = list(ins[0].shape)
    begin = _const_ints(ins[1], op, "begin")
    end = _const_ints(ins[2], op, "end")
    strides = _const_ints(ins[3], op, "strides")
    if not len(begin) == len(end) == len(strides):
        raise ValueError("STRIDED_SLICE begin, end and strides differ in length")
    bm, em, elm, nam, sam = (int(a.get(k, 0)) for k in
                             ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask",
                              "shrink_axis_mask"))
    offset = bool(a.get("offset", False))
    in_dims, count = len(in_shape), len(begin)
    num_add = sum(1 for i in range(count) if not _bit(elm, i) and _bit(nam, i))
    eff_dims = in_dims + num_add

    eff_ellipsis = eff_new = 0
    ellipsis_start, expanded = eff_dims, 0
    i = 0
    while i < eff_dims:
        if _bit(elm, i):
            ellipsis_start = i
            stop = max(i + 1, min(i + 1 + num_add + in_dims - count, eff_dims))
            expanded = stop - ellipsis_start - 1
            while i < stop:
                eff_ellipsis |= 1 << i
                i += 1
            continue
        if _bit(nam, i - expanded):
            eff_new |= 1 << i
        i += 1

    eff_shape, starts, stops, strd = [], [], [], []
    pbm = pem = psam = 0
    added_ellipsis = added_axes = 0
    for i in range(eff_dims):
        if _bit(eff_ellipsis, i):
            added_ellipsis = max(0, i - ellipsis_start)
            pbm |= 1 << i
            pem |= 1 << i
            starts.append(0), stops.append(0), strd.append(1)
            eff_shape.append(in_shape[i - added_axes])
        elif _bit(eff_new, i):
            starts.append(0), stops.append(1), strd.append(1)
            eff_shape.append(1)
            added_axes += 1
        elif i >= count + expanded:
            starts.append(0), stops.append(0), strd.append(1)
            pbm |= 1 << i
            pem |= 1 << i
            eff_shape.append(in_shape[i - added_axes])
        else:
            k = i - added_ellipsis
            starts.append(begin[k]), stops.append(end[k]), strd.append(strides[k])
            pbm |= (1 << i) if _bit(bm, k) else 0
            pem |= (1 << i) if _bit(em, k) else 0
            psam |= (1 << i) if _bit(sam, k) else 0
            eff_shape.append(in_shape[i - added_axes])
    if eff_dims > 5:
        raise ValueError("STRIDED_SLICE supports up to 5 dims including added axes")

    def clamp(v, lo, hi):
        return hi if v > hi else lo if v < lo else v

    axes, out_shape = [], []
    for i in range(eff_dims):
        size, stride = eff_shape[i], strd[i]
        if stride == 0:
            raise ValueError("STRIDED_SLICE stride must be non-zero")
        start = starts[i] + size if starts[i] < 0 else starts[i]
        start = clamp(start, 0, size) if stride > 0 else clamp(start, -1, size - 1)
        if _bit(pbm, i):
            start = 0 if stride > 0 else size - 1
        shrink = _bit(psam, i)
        if shrink:
            if not 0 <= start < size:
                raise ValueError(f"STRIDED_SLICE shrinks dim {i} (size {size}) at index {start}")
            stop = start + 1
        else:
            stop = stops[i] + start if offset else stops[i]
            stop = stop + size if stop < 0 else stop
            stop = clamp(stop, 0, size) if stride > 0 else clamp(stop, -1, size - 1)
            if _bit(pem, i):
                stop = size if stride > 0 else -1
        axes.append((start, stop, stride, shrink))
        if shrink:
            continue
        # ResizeOutputTensor: with offset the size is end[i] itself (not clamped to the input).
        if offset and i >= len(end):
            raise ValueError("STRIDED_SLICE with offset needs an end entry per output dim")
        n = end[i] if offset else stop - start
        dim = max(0, math.ceil(n / stride))
        if offset and dim != len(range(start, stop, stride)):
            raise ValueError(f"STRIDED_SLICE with offset: dim {i} slice leaves the input")
        out_shape.append(dim)
    return eff_shape, axes, tuple(out_shape)


def _strided_slice_shape(op, ins):
    return [_strided_slice_plan(op, ins)[2]]


def _strided_slice_ref(op, xs, ins, outs):
    eff_shape, axes, out_shape = _strided_slice_plan(op, ins)
    x = np.reshape(xs[0], eff_shape)
    idx = []
    for start, stop, stride, shrink in axes:
        # a shrunk axis takes the one element at `start` (TFLite's kernels use stride 1 there)
        idx.append(np.arange(start, stop) if shrink else np.arange(start, stop, stride))
    y = x[np.ix_(*idx)] if idx else x
    return [np.reshape(y, out_shape)]


def _strided_slice_c(op, ins, outs, cx):
    eff_shape, axes, _ = _strided_slice_plan(op, ins)
    in_strides = _row_major_strides(eff_shape)
    dims, offset = [], 0
    for (start, stop, stride, shrink), s in zip(axes, in_strides):
        n = 1 if shrink else len(range(start, stop, stride))
        dims.append((n, (1 if shrink else stride) * s))
        offset += start * s
    return _strided_copy(op, cx, dims, offset, _itemsize(outs[0]))

def _strided_slice_tf(op, xs, attrs):
    """TF lowering: the plan's indices gathered axis by axis behind a free batch axis."""
    from ._tfutil import batched, fake, tfm
    tf = tfm()
    eff_shape, axes, out_shape = _strided_slice_plan(op, fake(xs))
    y = tf.reshape(xs[0], [-1] + list(eff_shape))
    for k, (start, stop, stride, shrink) in enumerate(axes):
        idx = np.arange(start, stop) if shrink else np.arange(start, stop, stride)
        if not (len(idx) == eff_shape[k] and (idx == np.arange(eff_shape[k])).all()):
            y = tf.gather(y, idx.astype(np.int32), axis=k + 1)
    return [tf.reshape(y, batched(list(out_shape)) if len(eff_shape) and eff_shape[0] == 1
                       and axes and len(range(*axes[0][:3])) == 1 and not axes[0][3] else [-1] + list(out_shape))]


register(OpDef("STRIDED_SLICE", _strided_slice_shape, _strided_slice_ref,
               options="StridedSliceOptions", out_quant="same", quant_dtypes=_Q,
               int_operands=(1, 2, 3), c=_strided_slice_c, tf=_strided_slice_tf))


# -- TRANSPOSE -------------------------------------------------------------------------------------

TRANSPOSE_MAX_RANK = 6     # LiteRT's kTransposeMaxDimensions; TFLite Micro runs up to 5 of them


def _perm(op, ins) -> list[int]:
    """The permutation operand: output dim k is input dim perm[k] (transpose.cc: a constant int32
    vector of one entry per input dim, each in [0, rank); duplicates are no permutation)."""
    p = ins[1]
    if p is not None and p.dtype != "int32":
        raise ValueError(f"TRANSPOSE perm must be int32, not {p.dtype}")
    perm = _const_ints(p, op, "perm")
    rank = len(ins[0].shape)
    if rank > TRANSPOSE_MAX_RANK:
        raise ValueError(f"TRANSPOSE supports up to {TRANSPOSE_MAX_RANK} dims, not {rank}")
    if sorted(perm) != list(range(rank)):
        raise ValueError(f"TRANSPOSE perm {perm} is not a permutation of the {rank} input dims")
    return perm


def _transpose_shape(op, ins):
    perm = _perm(op, ins)
    return [tuple(ins[0].shape[p] for p in perm)]


def _transpose_ref(op, xs, ins, outs):
    return [np.ascontiguousarray(np.transpose(xs[0], _perm(op, ins)))]


def _transpose_c(op, ins, outs, cx):
    # out[i_0]..[i_r-1] = in[sum_k i_k * in_stride[perm[k]]]: a strided copy, whose extent-1 dims
    # vanish and whose output dims that stay neighbours in the input merge, so NHWC <-> NCHW of a
    # [1, H, W, C] map is a 2-D [HW][C] -> [C][HW] transpose.
    x = ins[0]
    strides = _row_major_strides(x.shape)
    return _strided_copy(op, cx, [(int(x.shape[p]), strides[p]) for p in _perm(op, ins)], 0, _itemsize(outs[0]))


def _transpose_tf(op, xs, attrs):
    """TF lowering: a perm that keeps the batch axis first transposes the batch as it is; otherwise
    each sample is transposed on its own (a batch axis in front of the IR's, then dropped again)."""
    from ._tfutil import batched, fake, ir_shape, tfm
    tf = tfm()
    ins = fake(xs)
    perm = _perm(op, ins)
    if perm[0] == 0:
        return [tf.transpose(xs[0], perm)]
    x = tf.reshape(xs[0], [-1] + list(ir_shape(xs[0])))
    y = tf.transpose(x, [0] + [p + 1 for p in perm])
    return [tf.reshape(y, batched(_transpose_shape(op, ins)[0]))]


register(OpDef("TRANSPOSE", _transpose_shape, _transpose_ref, options="TransposeOptions",
               out_quant="same", quant_dtypes=_Q, int_operands=(1,), c=_transpose_c, tf=_transpose_tf))


# -- DEPTH_TO_SPACE / SPACE_TO_DEPTH ---------------------------------------------------------------

def _block(op) -> int:
    b = int(op.attrs.get("block_size", 0))
    if b < 1:
        raise ValueError(f"{op.type} block_size {b} must be >= 1")
    return b


def _d2s_shape(op, ins):
    n, h, w, c = ins[0].shape
    b = _block(op)
    if c % (b * b):
        raise ValueError(f"DEPTH_TO_SPACE depth {c} is not a multiple of block_size^2 = {b * b}")
    return [(n, h * b, w * b, c // (b * b))]


def _d2s_ref(op, xs, ins, outs):
    n, h, w, c = ins[0].shape
    b = _block(op)
    co = c // (b * b)
    # output[n, h*b + by, w*b + bx, c] = input[n, h, w, (by*b + bx)*co + c]
    y = np.reshape(xs[0], (n, h, w, b, b, co)).transpose(0, 1, 3, 2, 4, 5)
    return [y.reshape(n, h * b, w * b, co)]


def _s2d_shape(op, ins):
    n, h, w, c = ins[0].shape
    b = _block(op)
    if h % b or w % b:
        raise ValueError(f"SPACE_TO_DEPTH spatial size {h}x{w} is not a multiple of block_size {b}")
    return [(n, h // b, w // b, c * b * b)]


def _s2d_ref(op, xs, ins, outs):
    n, h, w, c = ins[0].shape
    b = _block(op)
    y = np.reshape(xs[0], (n, h // b, b, w // b, b, c)).transpose(0, 1, 3, 2, 4, 5)
    return [y.reshape(n, h // b, w // b, b * b * c)]


def _d2s_c(op, ins, outs, cx):
    # output [n*h][by][w][bx][co] gathers input [n*h][w][(by*b + bx)*co + c]
    n, h, w, c = ins[0].shape
    b = _block(op)
    co = c // (b * b)
    dims = [(n * h, w * c), (b, b * co), (w, c), (b, co), (co, 1)]
    return _strided_copy(op, cx, dims, 0, _itemsize(outs[0]))


def _s2d_c(op, ins, outs, cx):
    # output [n*h/b][w/b][by][bx][c] gathers input [n*h/b*b + by][w/b*b + bx][c]
    n, h, w, c = ins[0].shape
    b = _block(op)
    dims = [(n * h // b, b * w * c), (w // b, b * c), (b, w * c), (b, c), (c, 1)]
    return _strided_copy(op, cx, dims, 0, _itemsize(outs[0]))

def _d2s_tf(op, xs, attrs):
    from ._tfutil import tfm
    tf = tfm()
    _, h, w, c = (int(d) if d is not None else -1 for d in xs[0].shape)
    b = _block(op)
    co = c // (b * b)
    y = tf.transpose(tf.reshape(xs[0], (-1, h, w, b, b, co)), (0, 1, 3, 2, 4, 5))
    return [tf.reshape(y, (-1, h * b, w * b, co))]


def _s2d_tf(op, xs, attrs):
    from ._tfutil import tfm
    tf = tfm()
    _, h, w, c = (int(d) if d is not None else -1 for d in xs[0].shape)
    b = _block(op)
    y = tf.transpose(tf.reshape(xs[0], (-1, h // b, b, w // b, b, c)), (0, 1, 3, 2, 4, 5))
    return [tf.reshape(y, (-1, h // b, w // b, b * b * c))]


register(OpDef("DEPTH_TO_SPACE", _d2s_shape, _d2s_ref, options="DepthToSpaceOptions",
               out_quant="same", quant_dtypes=("int8",), c=_d2s_c, tf=_d2s_tf))
register(OpDef("SPACE_TO_DEPTH", _s2d_shape, _s2d_ref, options="SpaceToDepthOptions",
               out_quant="same", quant_dtypes=("int8",), c=_s2d_c, tf=_s2d_tf))


# -- C emission helpers ----------------------------------------------------------------------------

def _itemsize(t) -> int:
    return np.dtype(t.dtype).itemsize


def _carr(values) -> str:
    """A C initializer for an array field of a params struct."""
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def _row_major_strides(shape) -> list[int]:
    strides, s = [], 1
    for d in reversed(list(shape)):
        strides.append(s)
        s *= int(d)
    return strides[::-1]


STRIDED_MAX_DIMS = 6   # kernels/include/ec_shape.h EC_STRIDED_MAX_DIMS


def _strided_copy(op, cx, dims, offset: int, es: int) -> CCall:
    """ec_strided_copy_x over `dims` = [(output count, input step in elements)], outermost first,
    from input element `offset`: count-1 dims dropped, dims that continue their inner neighbour
    merged, padded to 6 dims."""
    if any(n == 0 for n, _ in dims):
        dims, offset = [(0, 0)], 0
    merged = []
    for n, step in dims:
        if n == 1:
            continue
        if merged and merged[-1][1] == n * step:
            merged[-1] = (merged[-1][0] * n, step)
        else:
            merged.append((n, step))
    merged = merged or [(1, 1)]
    if len(merged) > STRIDED_MAX_DIMS:
        raise EdgecError(f"{op.type} {op.name}: the C backend gathers up to {STRIDED_MAX_DIMS} dims, "
                         f"not {len(merged)}")
    merged = [(1, 0)] * (STRIDED_MAX_DIMS - len(merged)) + merged
    return CCall("ec_strided_copy_x", [cx.ptr(op.inputs[0]), cx.ptr(op.outputs[0])], ("ec_strided_copy_params_t", {
        "elem_size": es, "count": _carr(n for n, _ in merged), "step": _carr(s * es for _, s in merged),
        "offset": offset * es}))
