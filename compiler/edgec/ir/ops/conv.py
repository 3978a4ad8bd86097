"""Convolution-like ops: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, TRANSPOSE_CONV.

Reference semantics are those of TFLite Micro's kernels (tensorflow/lite/kernels/internal/reference/
integer_ops/{conv,depthwise_conv,fully_connected,transpose_conv}.h, driven by micro/kernels/
*_common.cc): int32 accumulation of filter * (input - input_zp) for int8, int64 accumulation of
filter * input for int16x8 (zero points 0), bias added to the accumulator, per-channel
requantization with multipliers from double(input_scale) * double(filter_scale) /
double(output_scale) (except per-tensor FULLY_CONNECTED, whose multiplier is
double(float(input_scale * filter_scale)) / double(output_scale)), then + output_zp and the
fused-activation clamp.

Everything is vectorised: integer dot products run as float64 matmuls, which are exact because every
partial sum is an integer far below 2^53 (int8: |acc| < 2^31; int16x8: |acc| < 2^40).
"""
from __future__ import annotations

import numpy as np

from . import CCall, OpDef, register
from ...errors import EdgecError
from ..graph import Op
from ..quant import (activation_range, multiply_by_quantized_multiplier,
                     multiply_by_quantized_multiplier_int64, quantize_multipliers)
from ..tensor import Tensor


# ------------------------------------------------------------------------------------------------
# Geometry shared with pool.py (tensorflow/lite/kernels/padding.h)

def out_size(padding: str, size: int, k: int, stride: int, dilation: int = 1) -> int:
    """ComputeOutSize: the conv output extent along one axis."""
    eff = (k - 1) * dilation + 1
    if stride <= 0:
        raise ValueError(f"stride must be positive, got {stride}")
    if padding == "SAME":
        return (size + stride - 1) // stride
    if padding == "VALID":
        return max(0, (size + stride - eff) // stride)
    raise ValueError(f"unsupported padding {padding!r}")


def pad_before(size: int, k: int, stride: int, dilation: int, out: int) -> int:
    """ComputePaddingWithOffset's leading padding (the odd pixel, the offset, goes after)."""
    eff = (k - 1) * dilation + 1
    return max(0, (out - 1) * stride + eff - size) // 2


def windows(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, dh: int, dw: int,
            ph: int, pw: int, oh: int, ow: int, fill) -> np.ndarray:
    """Sliding windows of an NHWC array: a read-only view [N, OH, OW, KH, KW, C] where taps that
    fall outside the image read `fill`."""
    n, h, w, c = x.shape
    need_h = (oh - 1) * sh + (kh - 1) * dh + 1 if oh > 0 else 0
    need_w = (ow - 1) * sw + (kw - 1) * dw + 1 if ow > 0 else 0
    after_h = max(0, need_h - ph - h)
    after_w = max(0, need_w - pw - w)
    if ph or pw or after_h or after_w:
        xp = np.full((n, h + ph + after_h, w + pw + after_w, c), fill, dtype=x.dtype)
        xp[:, ph:ph + h, pw:pw + w, :] = x
    else:
        xp = np.ascontiguousarray(x)
    s = xp.strides
    return np.lib.stride_tricks.as_strided(
        xp, shape=(n, oh, ow, kh, kw, c),
        strides=(s[0], s[1] * sh, s[2] * sw, s[1] * dh, s[2] * dw, s[3]), writeable=False)


# ------------------------------------------------------------------------------------------------
# Quantization helpers

def _scale(t: Tensor) -> np.float32:
    return np.float32(t.quant.scale[0])


def _zp(t: Tensor) -> int:
    return int(t.quant.zero_point[0])


def _channel_scales(w: Tensor, n: int) -> np.ndarray:
    s = np.asarray(w.quant.scale, np.float32)
    return np.full(n, s[0], np.float32) if s.size == 1 else s


def conv_multipliers(inp: Tensor, w: Tensor, out: Tensor, n: int):
    """PopulateConvolutionQuantizationParams: per output channel (multiplier, shift), per-tensor
    filter scales broadcast along the channels."""
    eff = (np.float64(_scale(inp)) * _channel_scales(w, n).astype(np.float64)
           / np.float64(_scale(out)))
    return quantize_multipliers(eff)


def _wrap32(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.int64)
    return ((x + 2 ** 31) & 0xFFFFFFFF) - 2 ** 31


def requantize(acc: np.ndarray, mult, shift, out: Tensor, act: str, wide: bool,
               out_offset: bool) -> np.ndarray:
    """acc (int64, channels last) -> output integers: rescale, + zp (int8 kernels only), clamp."""
    if wide:   # int64 accumulator: the reduced 16-bit multiplier variant
        y = _wrap32(multiply_by_quantized_multiplier_int64(acc, mult, shift))
    else:      # int32 accumulator
        y = multiply_by_quantized_multiplier(_wrap32(acc), mult, shift)
    if out_offset:
        y = y + _zp(out)
    lo, hi = activation_range(act, out.dtype, float(_scale(out)), _zp(out))
    return np.clip(y, lo, hi).astype(out.dtype)


def _int_mode(op: Op, inp: Tensor, bias: Tensor | None, int32_bias_ok: bool = True):
    """(wide accumulator?, subtract input/add output zero points?) for an integer kernel."""
    if inp.dtype == "int8":
        return False, True
    if inp.dtype == "int16":
        # 16x8 kernels assume zero points of 0 and accumulate in the bias type: int64, also when
        # there is no bias (measured on TFLM), or int32 for models with int32 biases
        # (quantized_bias_type INT32), which only CONV_2D and FULLY_CONNECTED implement in TFLM.
        if bias is not None and bias.dtype == "int32":
            if not int32_bias_ok:
                raise NotImplementedError(f"{op.type}: TFLM has no int16x8 kernel with int32 bias")
            return False, False
        return True, False
    raise NotImplementedError(f"{op.type}: no integer kernel for {inp.dtype} activations")


def _float_act(y: np.ndarray, act: str) -> np.ndarray:
    lo, hi = activation_range(act, "float32")
    return np.clip(y, lo, hi).astype(np.float32)


def _idot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Exact integer a @ b via float64 BLAS (see the module docstring)."""
    return np.rint(a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)


def _bias(xs, k):
    return xs[k] if len(xs) > k else None


def _tensor(ins, k):
    return ins[k] if len(ins) > k else None


# ------------------------------------------------------------------------------------------------
# C emitters (backends/c): parameters computed here with the reference's own helpers

C_ACTIVATIONS = ("NONE", "RELU", "RELU6", "RELU_N1_TO_1")


def _packed(t: Tensor) -> bool:
    """Whether the C backend stores weight `t` packed (low-bit: backends/c/pack_weights.py)."""
    from ...backends.c.pack_weights import is_lowbit
    return is_lowbit(t)


def _c_scratch(cx, kernel: str, fields: dict) -> int:
    """Scratch bytes the target's variant of `kernel` needs (backends/c/scratch.py; ref: none)."""
    try:
        from ...backends.c.scratch import scratch_bytes
    except ImportError:     # no optimized variant sizes known
        return 0
    return scratch_bytes(kernel, cx.variant(kernel), fields)


# kernels/opt/ (ec_opt.h): weights (and some biases) re-laid out at compile time so that the kernels'
# inner loops are fixed-shape loops the C compiler vectorizes:
#   int8 CONV_2D / FULLY_CONNECTED   int16 [ceil4(out)][ceil16(K)] rows (K = kh * kw * in_c or in_features),
#                                    zero padded; biases as for ref
#   int8 DEPTHWISE_CONV_2D           per multiplier, channel blocks [block][kh][kw][width] (16 wide; a last
#                                    block of <= 8 channels is 8 wide), zero padded; bias folds in the
#                                    input zero point: bias - in_zp * sum(w), padded, never NULL
#   float32 (all three)              [block][K][width] blocks of output channels (depthwise: per
#                                    multiplier, over the input channels); bias padded or NULL

OPT_BLOCK = 16


def opt_blocks(n: int) -> list[tuple[int, int]]:
    """(first channel, width) of the opt kernels' channel blocks over n channels (ec_opt_block_width)."""
    blocks, s = [], 0
    while s < n:
        w = OPT_BLOCK if n - s > 8 else 8
        blocks.append((s, w))
        s += w
    return blocks


def opt_pack(mat: np.ndarray) -> np.ndarray:
    """[channels, K] -> the flat [block][K][width] layout, padded channels zero."""
    n, k = mat.shape
    parts = []
    for s, w in opt_blocks(n):
        blk = np.zeros((w, k), mat.dtype)
        blk[:min(w, n - s)] = mat[s:s + w]
        parts.append(blk.T.reshape(-1))
    return np.concatenate(parts) if parts else np.zeros(0, mat.dtype)


def opt_pad(v: np.ndarray) -> np.ndarray:
    """A per-channel vector padded with zeros to the opt blocks' total width."""
    width = sum(w for _, w in opt_blocks(len(v)))
    return np.concatenate([v, np.zeros(width - len(v), v.dtype)])


def opt_rows_s16(mat: np.ndarray) -> np.ndarray:
    """int8 [out, K] -> int16 [ceil4(out)][ceil16(K)], zero padded (the int8 conv / FC dot-product rows)."""
    o, k = mat.shape
    rows = np.zeros(((o + 3) // 4 * 4, (k + 15) // 16 * 16), np.int16)
    rows[:o, :k] = mat
    return rows.reshape(-1)


def _opt_folded_bias(bias: np.ndarray | None, wsum: np.ndarray, in_zp: int) -> np.ndarray:
    """bias - in_zp * sum(w) per channel, modulo 2^32 like the kernels' accumulator."""
    b = np.zeros(len(wsum), np.int64) if bias is None else bias.astype(np.int64)
    return _wrap32(b - np.int64(in_zp) * wsum.astype(np.int64)).astype(np.int32)


def _opt_const(op: Op, t: Tensor, what: str) -> np.ndarray:
    if not t.is_const:
        raise EdgecError(f"{op.type} {op.name}: the opt kernels (kernels/opt/) need constant {what}; "
                         f"compile for a target without the opt variant")
    return np.asarray(t.data)


def _opt_args(op: Op, cx, suffix: str, ft: Tensor, bt: Tensor | None, bias_name: str | None, in_zp: int,
              depth_mult: int = 0) -> tuple[str, str]:
    """(weights, bias) C expressions of an opt kernel call: conv (depth_mult 0: filter OHWI) or fully
    connected ([out, in]), or depthwise (filter [1, kh, kw, in_c * depth_mult])."""
    f = _opt_const(op, ft, "weights")
    if suffix == "s8" and not depth_mult:
        w = cx.array(op.name + "_opt_w", opt_rows_s16(f.reshape(f.shape[0], -1)), "int16_t", weight=True)
        return f"(const int8_t *){w}", cx.ptr(bias_name)
    b = None if bt is None else _opt_const(op, bt, "biases")
    if depth_mult:   # per multiplier m: [in_c, kh * kw] blocks over the input channels
        oc = f.shape[3]
        mats = [f[0].reshape(-1, oc)[:, m::depth_mult].T for m in range(depth_mult)]
        bs = [None if b is None else b[m::depth_mult] for m in range(depth_mult)]
    else:
        mats, bs = [f.reshape(f.shape[0], -1)], [b]
    w = np.concatenate([opt_pack(m) for m in mats])
    if suffix == "s8":
        bias = np.concatenate([opt_pad(_opt_folded_bias(bb, m.astype(np.int64).sum(axis=1), in_zp))
                               for m, bb in zip(mats, bs)])
        ctypes = ("int8_t", "int32_t")
    else:
        bias = None if b is None else np.concatenate([opt_pad(bb.astype(np.float32)) for bb in bs])
        ctypes = ("float", "float")
    wsym = cx.array(op.name + "_opt_w", w, ctypes[0], weight=True)
    bsym = "NULL" if bias is None else cx.array(op.name + "_opt_bias", bias, ctypes[1], weight=True)
    return wsym, bsym


def _c_check(op: Op, it: Tensor, ft: Tensor, bt: Tensor | None, ot: Tensor) -> tuple[str, str]:
    """(dtype suffix "f32"/"s8", activation) for a conv-family op the C kernels run, else EdgecError."""
    where = f"{op.type} {op.name}"
    act = op.attrs.get("fused_activation_function", "NONE") or "NONE"
    if act not in C_ACTIVATIONS:
        raise EdgecError(f"{where}: the C backend has no fused {act} activation")
    if len(it.shape) != 4 or it.shape[0] != 1 or ot.shape[0] != 1:
        raise EdgecError(f"{where}: the C kernels run batch 1 NHWC, got input {list(it.shape)}")
    if it.dtype == ft.dtype == ot.dtype == "float32" and (bt is None or bt.dtype == "float32"):
        return "f32", act
    if (it.dtype == ft.dtype == ot.dtype == "int8" and (bt is None or bt.dtype == "int32")
            and it.quant is not None and ft.quant is not None and ot.quant is not None):
        return "s8", act
    raise EdgecError(f"{where}: the C backend runs int8 (int32 bias) and float32 only, got {it.dtype} "
                     f"input, {ft.dtype} filter, {bt.dtype if bt is not None else 'no'} bias, {ot.dtype} output")


def _conv_family_c(op: Op, cx, kernel: str, it: Tensor, ft: Tensor, bt: Tensor | None, ot: Tensor,
                   geometry: tuple, depth_mult: int, groups: int, in_name: str, bias_name: str | None):
    """The CCall of a conv-like kernel taking ec_conv_{s8,f32}_params_t (or its grouped wrapper)."""
    suffix, act = _c_check(op, it, ft, bt, ot)
    kh, kw, sh, sw, dh, dw, ph, pw = geometry
    _, h, w, c = it.shape
    _, oh, ow, oc = ot.shape
    fields = {"in_h": h, "in_w": w, "in_c": c, "out_h": oh, "out_w": ow, "out_c": oc, "k_h": kh, "k_w": kw,
              "stride_h": sh, "stride_w": sw, "dil_h": dh, "dil_w": dw, "pad_h": ph, "pad_w": pw,
              "depth_mult": depth_mult}
    if suffix == "f32":
        lo, hi = activation_range(act, "float32")
        fields.update(act_min=lo, act_max=hi)
    else:
        mult, shift = conv_multipliers(it, ft, ot, oc)
        lo, hi = activation_range(act, ot.dtype, float(_scale(ot)), _zp(ot))
        fields.update(in_zp=_zp(it), out_zp=_zp(ot), act_min=lo, act_max=hi,
                      mult=cx.array(op.name + "_mult", mult, "int32_t"),
                      shift=cx.array(op.name + "_shift", shift, "int32_t"))
    from ...backends.c.sparse_weights import conv_sparse_call
    call = conv_sparse_call(op, cx, kernel, suffix, groups, ft, bt, fields, in_name)   # sparse int8 CONV_2D weights
    if call:
        return call
    from ...backends.c.pack_weights import conv_lowbit_call, is_lowbit
    if (suffix == "s8" and groups == 1 and kernel in ("ec_conv2d", "ec_depthwise_conv2d")
            and is_lowbit(ft)):   # packed sub-byte / codebook weights: kernels/include/ec_lowbit.h
        lname, largs, lparams, lscratch = conv_lowbit_call(
            op, cx, kernel, ft, [cx.ptr(in_name), None, cx.ptr(bias_name), cx.ptr(op.outputs[0]),
                                 cx.scratch_expr], fields, _c_scratch)
        return CCall(lname, largs, lparams, scratch=lscratch)
    name, struct = f"{kernel}_{suffix}", f"ec_conv_{suffix}_params_t"
    if groups > 1:   # a kernel of its own, so that optimized ec_conv2d_* variants need not handle groups
        name, struct = f"ec_conv2d_grouped_{suffix}", f"ec_conv_grouped_{suffix}_params_t"
        scratch = _c_scratch(cx, name, {**fields, "groups": groups})
        fields = {**{f"conv.{k}": v for k, v in fields.items()}, "groups": groups}
    else:
        scratch = _c_scratch(cx, name, fields)
    if groups == 1 and cx.variant(name) == "opt":   # weights re-laid out for kernels/opt/ (ec_opt.h)
        if kernel == "ec_conv2d" and not (ft.is_const and (bt is None or bt.is_const)):
            # runtime filters cannot be re-laid out: the grouped kernel (ref layout) with one group
            name, struct = f"ec_conv2d_grouped_{suffix}", f"ec_conv_grouped_{suffix}_params_t"
            scratch = _c_scratch(cx, name, {**fields, "groups": 1})
            fields = {**{f"conv.{k}": v for k, v in fields.items()}, "groups": 1}
        else:
            wsym, bsym = _opt_args(op, cx, suffix, ft, bt, bias_name, fields.get("in_zp", 0),
                                   depth_mult if kernel == "ec_depthwise_conv2d" else 0)
            args = [cx.ptr(in_name), wsym, bsym, cx.ptr(op.outputs[0]), cx.scratch_expr]
            return CCall(name, args, (struct, fields), scratch=scratch)
    args = [cx.ptr(in_name), cx.ptr(op.inputs[1]), cx.ptr(bias_name), cx.ptr(op.outputs[0]), cx.scratch_expr]
    return CCall(name, args, (struct, fields), scratch=scratch)


# ------------------------------------------------------------------------------------------------
# CONV_2D: input NHWC, filter OHWI (I may be C / groups), bias [O]

def _conv_geometry(op: Op, ishape, fshape):
    a = op.attrs
    _, h, w, _ = ishape
    _, kh, kw, _ = fshape
    sh, sw = a["stride_h"], a["stride_w"]
    dh, dw = a.get("dilation_h_factor", 1) or 1, a.get("dilation_w_factor", 1) or 1
    oh = out_size(a["padding"], h, kh, sh, dh)
    ow = out_size(a["padding"], w, kw, sw, dw)
    ph = pad_before(h, kh, sh, dh, oh)
    pw = pad_before(w, kw, sw, dw, ow)
    return kh, kw, sh, sw, dh, dw, ph, pw, oh, ow


def _conv_shape(op, ins):
    x, f = ins[0], ins[1]
    *_, oh, ow = _conv_geometry(op, x.shape, f.shape)
    return [(x.shape[0], oh, ow, f.shape[0])]


def _conv_acc(op, x, f, fill_zero_input):
    """Sum over taps and input channels; x already offset (x - zp) for integers."""
    kh, kw, sh, sw, dh, dw, ph, pw, oh, ow = _conv_geometry(op, x.shape, f.shape)
    n, c = x.shape[0], x.shape[3]
    o, ci = f.shape[0], f.shape[3]
    groups = c // ci
    if groups * ci != c or o % groups:
        raise ValueError(f"CONV_2D: input depth {c} is not a multiple of filter depth {ci}")
    win = windows(x, kh, kw, sh, sw, dh, dw, ph, pw, oh, ow, fill_zero_input)
    per = o // groups
    outs = []
    for g in range(groups):
        cols = win[..., g * ci:(g + 1) * ci].reshape(n * oh * ow, kh * kw * ci)
        wm = f[g * per:(g + 1) * per].reshape(per, kh * kw * ci).T
        if x.dtype.kind == "f":
            outs.append(cols.astype(np.float64) @ wm.astype(np.float64))
        else:
            outs.append(_idot(cols, wm))
    acc = outs[0] if groups == 1 else np.concatenate(outs, axis=1)
    return acc.reshape(n, oh, ow, o)


def _conv_ref(op, xs, ins, outs):
    x, f, b = xs[0], xs[1], _bias(xs, 2)
    it, ft, bt, ot = ins[0], ins[1], _tensor(ins, 2), outs[0]
    act = op.attrs["fused_activation_function"]
    if it.dtype == "float32":
        acc = _conv_acc(op, x.astype(np.float64), f, 0.0)
        if b is not None:
            acc = acc + b.astype(np.float64)
        return [_float_act(acc, act)]
    wide, offsets = _int_mode(op, it, bt)
    xi = x.astype(np.int64) - (_zp(it) if offsets else 0)
    acc = _conv_acc(op, xi, f.astype(np.int64), 0)
    if b is not None:
        acc = acc + b.astype(np.int64)
    mult, shift = conv_multipliers(it, ft, ot, f.shape[0])
    return [requantize(acc, mult, shift, ot, act, wide, offsets)]


def _conv_macs(op, ins, outs):
    f = ins[1]
    return int(np.prod(outs[0].shape, dtype=np.int64)) * f.shape[1] * f.shape[2] * f.shape[3]


def _conv_c(op, ins, outs, cx):
    it, ft, bt, ot = ins[0], ins[1], _tensor(ins, 2), outs[0]
    _c_check(op, it, ft, bt, ot)
    c, o, ci = it.shape[3], ft.shape[0], ft.shape[3]
    groups = c // ci if ci else 0
    if ci == 0 or groups * ci != c or o % groups:
        raise EdgecError(f"CONV_2D {op.name}: input depth {c} is not a multiple of filter depth {ci} "
                         f"dividing {o} filters")
    geometry = _conv_geometry(op, it.shape, ft.shape)[:8]
    return _conv_family_c(op, cx, "ec_conv2d", it, ft, bt, ot, geometry, 1, groups, op.inputs[0],
                          _tensor(op.inputs, 2))


def _conv_tf(op, xs, attrs):
    """TF lowering (edgec.train): explicit padding exactly as `windows` pads; groups split."""
    from ._tfutil import act, fake, tfm
    tf = tfm()
    x, f, b = xs[0], xs[1], _bias(xs, 2)
    it = fake(xs)[0]
    kh, kw, sh, sw, dh, dw, ph, pw, oh, ow = _conv_geometry(op, it.shape, tuple(f.shape))
    _, h, w, c = it.shape
    ci = int(f.shape[3])
    pads = [[0, 0], [ph, max(0, (oh - 1) * sh + (kh - 1) * dh + 1 - ph - h)],
            [pw, max(0, (ow - 1) * sw + (kw - 1) * dw + 1 - pw - w)], [0, 0]]
    groups = c // ci
    fk = tf.transpose(f, (1, 2, 3, 0))                     # [O, KH, KW, I] -> [KH, KW, I, O]
    xg = tf.split(x, groups, axis=3) if groups > 1 else [x]
    fg = tf.split(fk, groups, axis=3) if groups > 1 else [fk]
    ys = [tf.nn.conv2d(a, k, strides=[1, sh, sw, 1], padding=pads, dilations=[1, dh, dw, 1])
          for a, k in zip(xg, fg)]
    y = (ys[0] if groups == 1 else tf.concat(ys, axis=3))[:, :oh, :ow, :]
    if b is not None:
        y = y + b
    return [act(y, attrs["fused_activation_function"])]


register(OpDef(
    "CONV_2D", _conv_shape, _conv_ref, options="Conv2DOptions", macs=_conv_macs,
    weights={1: 0}, bias=2, out_quant="calibrate", quant_dtypes=("int8", "int16"), c=_conv_c, tf=_conv_tf))


# ------------------------------------------------------------------------------------------------
# DEPTHWISE_CONV_2D: filter [1, KH, KW, C * depth_multiplier]; output channel oc reads input
# channel oc // depth_multiplier

def _dw_shape(op, ins):
    x, f = ins[0], ins[1]
    *_, oh, ow = _conv_geometry(op, x.shape, f.shape)
    return [(x.shape[0], oh, ow, f.shape[3])]


def _dw_acc(op, x, f):
    kh, kw, sh, sw, dh, dw, ph, pw, oh, ow = _conv_geometry(op, x.shape, f.shape)
    c, oc = x.shape[3], f.shape[3]
    m = oc // c
    if m * c != oc:
        raise ValueError(f"DEPTHWISE_CONV_2D: {oc} output channels for {c} input channels")
    win = windows(x, kh, kw, sh, sw, dh, dw, ph, pw, oh, ow, 0)
    acc = np.zeros((x.shape[0], oh, ow, oc), x.dtype)
    for i in range(kh):
        for j in range(kw):
            tap = win[:, :, :, i, j, :]
            if m > 1:
                tap = np.repeat(tap, m, axis=3)
            acc += tap * f[0, i, j, :]
    return acc


def _dw_ref(op, xs, ins, outs):
    x, f, b = xs[0], xs[1], _bias(xs, 2)
    it, ft, bt, ot = ins[0], ins[1], _tensor(ins, 2), outs[0]
    act = op.attrs["fused_activation_function"]
    if it.dtype == "float32":
        acc = _dw_acc(op, x.astype(np.float64), f.astype(np.float64))
        if b is not None:
            acc = acc + b.astype(np.float64)
        return [_float_act(acc, act)]
    wide, offsets = _int_mode(op, it, bt, int32_bias_ok=False)
    xi = x.astype(np.int64) - (_zp(it) if offsets else 0)
    acc = _dw_acc(op, xi, f.astype(np.int64))
    if b is not None:
        acc = acc + b.astype(np.int64)
    mult, shift = conv_multipliers(it, ft, ot, f.shape[3])
    return [requantize(acc, mult, shift, ot, act, wide, offsets)]


def _dw_macs(op, ins, outs):
    f = ins[1]
    return int(np.prod(outs[0].shape, dtype=np.int64)) * f.shape[1] * f.shape[2]


def _dw_c(op, ins, outs, cx):
    it, ft, bt, ot = ins[0], ins[1], _tensor(ins, 2), outs[0]
    _c_check(op, it, ft, bt, ot)
    c, oc = it.shape[3], ft.shape[3]
    m = oc // c if c else 0
    if m == 0 or m * c != oc or ft.shape[0] != 1:
        raise EdgecError(f"DEPTHWISE_CONV_2D {op.name}: filter {list(ft.shape)} is not [1, kh, kw, {c} * multiplier]")
    geometry = _conv_geometry(op, it.shape, ft.shape)[:8]
    return _conv_family_c(op, cx, "ec_depthwise_conv2d", it, ft, bt, ot, geometry, m, 1, op.inputs[0],
                          _tensor(op.inputs, 2))


def _dw_tf(op, xs, attrs):
    """TF lowering: IR filter [1, KH, KW, C*M] (channel c*M + j reads input c) is TF's [KH, KW, C, M]."""
    from ._tfutil import act, fake, tfm
    tf = tfm()
    x, f, b = xs[0], xs[1], _bias(xs, 2)
    it = fake(xs)[0]
    kh, kw, sh, sw, dh, dw, ph, pw, oh, ow = _conv_geometry(op, it.shape, tuple(f.shape))
    _, h, w, c = it.shape
    m = int(f.shape[3]) // c
    pads = [[0, 0], [ph, max(0, (oh - 1) * sh + (kh - 1) * dh + 1 - ph - h)],
            [pw, max(0, (ow - 1) * sw + (kw - 1) * dw + 1 - pw - w)], [0, 0]]
    if dh > 1 or dw > 1:   # TF's depthwise takes no strides with dilation: pad, then dilate explicitly
        x = tf.pad(x, pads)
        y = tf.nn.depthwise_conv2d(x, tf.reshape(f[0], (kh, kw, c, m)), [1, 1, 1, 1], "VALID",
                                   dilations=[dh, dw])[:, ::sh, ::sw, :]
    else:
        y = tf.nn.depthwise_conv2d(tf.pad(x, pads), tf.reshape(f[0], (kh, kw, c, m)), [1, sh, sw, 1], "VALID")
    y = y[:, :oh, :ow, :]
    if b is not None:
        y = y + b
    return [act(y, attrs["fused_activation_function"])]


register(OpDef(
    "DEPTHWISE_CONV_2D", _dw_shape, _dw_ref, options="DepthwiseConv2DOptions", macs=_dw_macs,
    weights={1: 3}, bias=2, out_quant="calibrate", quant_dtypes=("int8", "int16"), c=_dw_c, tf=_dw_tf))


# ------------------------------------------------------------------------------------------------
# FULLY_CONNECTED: weights [O, I]; the input is flattened to [-1, I] unless keep_num_dims

def _fc_shape(op, ins):
    x, w = ins[0], ins[1]
    o, i = w.shape
    if op.attrs.get("keep_num_dims"):
        return [tuple(x.shape[:-1]) + (o,)]
    return [(int(np.prod(x.shape, dtype=np.int64)) // i, o)]


def fc_multipliers(inp: Tensor, w: Tensor, out: Tensor, n: int):
    """Per-channel weights: as conv. Per-tensor weights: GetQuantizedConvolutionMultipler, whose
    input * filter scale product is a float32 one."""
    if w.quant.scale.size > 1:
        return conv_multipliers(inp, w, out, n)
    prod = np.float64(np.float32(_scale(inp) * np.float32(w.quant.scale[0])))
    m, s = quantize_multipliers([prod / np.float64(_scale(out))])
    return np.full(n, m[0]), np.full(n, s[0])


def _fc_ref(op, xs, ins, outs):
    x, w, b = xs[0], xs[1], _bias(xs, 2)
    it, wt, bt, ot = ins[0], ins[1], _tensor(ins, 2), outs[0]
    act = op.attrs["fused_activation_function"]
    o, i = w.shape
    if it.dtype == "float32":
        acc = x.reshape(-1, i).astype(np.float64) @ w.astype(np.float64).T
        if b is not None:
            acc = acc + b.astype(np.float64)
        return [_float_act(acc, act).reshape(ot.shape)]
    wide, offsets = _int_mode(op, it, bt)
    xi = x.reshape(-1, i).astype(np.int64) - (_zp(it) if offsets else 0)
    wi = w.astype(np.int64)
    if wt.quant.scale.size == 1:   # per-tensor kernels still apply the (normally 0) filter offset
        wi = wi - _zp(wt)
    acc = _idot(xi, wi.T)
    if b is not None:
        acc = acc + b.astype(np.int64)
    mult, shift = fc_multipliers(it, wt, ot, o)
    return [requantize(acc, mult, shift, ot, act, wide, offsets).reshape(ot.shape)]


def _fc_macs(op, ins, outs):
    o, i = ins[1].shape
    return int(np.prod(ins[0].shape, dtype=np.int64)) // i * o * i


def _fc_c(op, ins, outs, cx):
    it, wt, bt, ot = ins[0], ins[1], _tensor(ins, 2), outs[0]
    o, i = wt.shape
    act = op.attrs["fused_activation_function"]
    if act not in C_ACTIVATIONS:
        raise EdgecError(f"FULLY_CONNECTED {op.name}: the C backend has no fused {act} activation")
    from ...backends.c.hash_weights import fc_hashed_call
    from ...backends.c.sparse_weights import fc_sparse_call
    call = fc_hashed_call(op, cx, it, wt, bt, ot) or \
        fc_sparse_call(op, cx, it, wt, bt, ot)      # hashed weights as their buckets; sparse where smaller
    if call:
        return call
    dims = {"batches": it.size // i, "in_features": i, "out_features": o}
    kernel = "ec_fully_connected_f32" if it.dtype == "float32" else "ec_fully_connected_s8"
    opt = cx.variant(kernel) == "opt"   # weights re-laid out for kernels/opt/ (ec_opt.h), added below
    args = [cx.ptr(op.inputs[0]), None, None, cx.ptr(op.outputs[0]), cx.scratch_expr] if opt or _packed(wt) else \
        [cx.ptr(op.inputs[0]), cx.ptr(op.inputs[1]), cx.ptr(_tensor(op.inputs, 2)), cx.ptr(op.outputs[0]),
         cx.scratch_expr]
    if it.dtype == "float32":
        if wt.dtype != "float32" or ot.dtype != "float32" or (bt is not None and bt.dtype != "float32"):
            raise EdgecError(f"FULLY_CONNECTED {op.name}: the C backend runs float32 with float32 weights, "
                             f"not {wt.dtype} (hybrid) weights")
        lo, hi = activation_range(act, "float32")
        fields = {**dims, "act_min": lo, "act_max": hi}
        if opt:
            args[1:3] = _opt_args(op, cx, "f32", wt, bt, _tensor(op.inputs, 2), 0)
        return CCall("ec_fully_connected_f32", args, ("ec_fc_f32_params_t", fields),
                     scratch=_c_scratch(cx, "ec_fully_connected_f32", fields))
    if (it.dtype != "int8" or wt.dtype != "int8" or ot.dtype != "int8" or (wt.quant.scale.size == 1 and _zp(wt) != 0)
            or (bt is not None and bt.dtype != "int32")):
        raise EdgecError(f"FULLY_CONNECTED {op.name}: the C backend runs int8 (symmetric weights) and float32")
    mult, shift = fc_multipliers(it, wt, ot, o)
    lo, hi = activation_range(act, ot.dtype, float(_scale(ot)), _zp(ot))
    fields = {**dims, "in_zp": _zp(it), "out_zp": _zp(ot), "act_min": lo, "act_max": hi,
              "mult": cx.array(op.name + "_mult", mult, "int32_t"),
              "shift": cx.array(op.name + "_shift", shift, "int32_t")}
    from ...backends.c.pack_weights import fc_lowbit_call, is_lowbit
    if is_lowbit(wt):   # packed sub-byte / codebook weights: kernels/include/ec_lowbit.h
        kernel, largs, lparams, lscratch = fc_lowbit_call(
            op, cx, wt, [cx.ptr(op.inputs[0]), None, cx.ptr(_tensor(op.inputs, 2)), cx.ptr(op.outputs[0]),
                         cx.scratch_expr], fields, _c_scratch)
        return CCall(kernel, largs, lparams, scratch=lscratch)
    if opt:
        args[1:3] = _opt_args(op, cx, "s8", wt, bt, _tensor(op.inputs, 2), _zp(it))
    return CCall("ec_fully_connected_s8", args, ("ec_fc_s8_params_t", fields),
                 scratch=_c_scratch(cx, "ec_fully_connected_s8", fields))


def _fc_tf(op, xs, attrs):
    """TF lowering: rows of `i` features; keep_num_dims keeps the leading dims."""
    from ._tfutil import act, tfm
    tf = tfm()
    x, w, b = xs[0], xs[1], _bias(xs, 2)
    o, i = (int(d) for d in w.shape)
    y = tf.matmul(tf.reshape(x, (-1, i)), w, transpose_b=True)
    if b is not None:
        y = y + b
    y = act(y, attrs["fused_activation_function"])
    if attrs.get("keep_num_dims"):
        y = tf.reshape(y, tf.concat([tf.shape(x)[:-1], [o]], 0))
    return [y]


register(OpDef(
    "FULLY_CONNECTED", _fc_shape, _fc_ref, options="FullyConnectedOptions", macs=_fc_macs,
    weights={1: None}, bias=2, out_quant="calibrate", quant_dtypes=("int8", "int16"), c=_fc_c, tf=_fc_tf))


# ------------------------------------------------------------------------------------------------
# TRANSPOSE_CONV: inputs (output_shape int32, weights OHWI, input NHWC, optional bias [O]).
# Scatter: input pixel (y, x) adds input * W[:, ky, kx, :] to output
# (y*s - pad + ky, x*s - pad + kx), pad computed by ComputePaddingHeightWidth on the *output* size;
# out-of-range taps are dropped.

def _tconv_shape(op, ins):
    shape_t = ins[0]
    if shape_t.data is None:
        raise ValueError("TRANSPOSE_CONV needs a constant output_shape")
    out = tuple(int(v) for v in np.asarray(shape_t.data).reshape(-1))
    x, f, a = ins[2], ins[1], op.attrs
    for axis, k, s in ((1, f.shape[1], a["stride_h"]), (2, f.shape[2], a["stride_w"])):
        if out_size(a["padding"], out[axis], k, s) != x.shape[axis]:   # LiteRT checks this too
            raise ValueError(f"TRANSPOSE_CONV output_shape {list(out)} does not invert a "
                             f"{a['padding']} conv to input {list(x.shape)}")
    return [out]


def _tconv_acc(op, x, f, out_shape):
    a = op.attrs
    sh, sw = a["stride_h"], a["stride_w"]
    n, h, w, c = x.shape
    o, kh, kw, ci = f.shape
    _, oh, ow, _ = out_shape
    ph = pad_before(oh, kh, sh, 1, out_size(a["padding"], oh, kh, sh))
    pw = pad_before(ow, kw, sw, 1, out_size(a["padding"], ow, kw, sw))
    full_h = max((h - 1) * sh + kh, ph + oh)
    full_w = max((w - 1) * sw + kw, pw + ow)
    buf = np.zeros((n, full_h, full_w, o), np.float64)
    xm = x.reshape(n * h * w, c).astype(np.float64)
    for i in range(kh):
        for j in range(kw):
            contrib = (xm @ f[:, i, j, :].astype(np.float64).T).reshape(n, h, w, o)
            buf[:, i:i + (h - 1) * sh + 1:sh, j:j + (w - 1) * sw + 1:sw, :] += contrib
    return buf[:, ph:ph + oh, pw:pw + ow, :]


def _tconv_ref(op, xs, ins, outs):
    f, x, b = xs[1], xs[2], _bias(xs, 3)
    ft, it, bt, ot = ins[1], ins[2], _tensor(ins, 3), outs[0]
    act = op.attrs.get("fused_activation_function", "NONE")
    if it.dtype == "float32":
        acc = _tconv_acc(op, x, f, ot.shape)
        if b is not None:
            acc = acc + b.astype(np.float64)
        return [_float_act(acc, act)]
    wide, offsets = _int_mode(op, it, bt, int32_bias_ok=False)
    xi = x.astype(np.int64) - (_zp(it) if offsets else 0)
    acc = np.rint(_tconv_acc(op, xi, f, ot.shape)).astype(np.int64)
    if b is not None:
        acc = acc + b.astype(np.int64)
    mult, shift = conv_multipliers(it, ft, ot, f.shape[0])
    return [requantize(acc, mult, shift, ot, act, wide, offsets)]


def _tconv_macs(op, ins, outs):
    f, x = ins[1], ins[2]
    return int(np.prod(x.shape, dtype=np.int64)) * f.shape[0] * f.shape[1] * f.shape[2]


def _tconv_c(op, ins, outs, cx):
    ft, it, bt, ot = ins[1], ins[2], _tensor(ins, 3), outs[0]
    _c_check(op, it, ft, bt, ot)
    if ft.shape[3] != it.shape[3]:
        raise EdgecError(f"TRANSPOSE_CONV {op.name}: filter depth {ft.shape[3]} != input depth {it.shape[3]}")
    a = op.attrs
    _, kh, kw, _ = ft.shape
    _, oh, ow, _ = ot.shape
    sh, sw = a["stride_h"], a["stride_w"]
    ph = pad_before(oh, kh, sh, 1, out_size(a["padding"], oh, kh, sh))     # as _tconv_acc
    pw = pad_before(ow, kw, sw, 1, out_size(a["padding"], ow, kw, sw))
    return _conv_family_c(op, cx, "ec_transpose_conv", it, ft, bt, ot, (kh, kw, sh, sw, 1, 1, ph, pw), 1, 1,
                          op.inputs[2], _tensor(op.inputs, 3))


def _tconv_tf(op, xs, attrs):
    """TF lowering: a VALID conv2d_transpose over the full extent, then the reference's crop."""
    from ._tfutil import act, tfm
    tf = tfm()
    out_shape, f, x, b = xs[0], xs[1], xs[2], _bias(xs, 3)
    a = attrs
    sh, sw = a["stride_h"], a["stride_w"]
    _, oh, ow, _ = (int(v) for v in np.asarray(out_shape).reshape(-1))
    o, kh, kw, _ = (int(d) for d in f.shape)
    h, w = int(x.shape[1]), int(x.shape[2])
    ph = pad_before(oh, kh, sh, 1, out_size(a["padding"], oh, kh, sh))
    pw = pad_before(ow, kw, sw, 1, out_size(a["padding"], ow, kw, sw))
    vh, vw = (h - 1) * sh + kh, (w - 1) * sw + kw
    y = tf.nn.conv2d_transpose(x, tf.transpose(f, (1, 2, 0, 3)), tf.stack([tf.shape(x)[0], vh, vw, o]),
                               [1, sh, sw, 1], "VALID")
    y = tf.pad(y, [[0, 0], [0, max(vh, ph + oh) - vh], [0, max(vw, pw + ow) - vw], [0, 0]])
    y = y[:, ph:ph + oh, pw:pw + ow, :]
    if b is not None:
        y = y + b
    return [act(y, a.get("fused_activation_function", "NONE"))]


register(OpDef(
    "TRANSPOSE_CONV", _tconv_shape, _tconv_ref, options="TransposeConvOptions", macs=_tconv_macs,
    weights={1: 0}, bias=3, out_quant="calibrate", quant_dtypes=("int8", "int16"),
    int_operands=(0,), c=_tconv_c, tf=_tconv_tf))
