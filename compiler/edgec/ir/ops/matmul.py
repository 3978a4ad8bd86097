"""Word vectors and matmul weights: GATHER (embedding lookup) and BATCH_MATMUL.

GATHER follows tensorflow/lite/kernels/internal/reference/gather.h (LiteRT) and
micro/kernels/gather.cc (TFLite Micro): out = params taken at `indices` along `axis` (batch_dims 0
only). Quantized tables are moved, never rescaled: the output's parameters must be the table's
(out_quant "same"). Both runtimes return an error for an index outside [0, axis size); the
reference raises ValueError there, and the C kernel (which cannot fail) writes the zero value
(0.0 / the output zero point) for such an index instead of reading out of bounds.

BATCH_MATMUL follows reference_ops::BatchMatMul (tensorflow/lite/kernels/internal/reference/
batch_matmul.h): lhs [..., M, K] (adj_x: [..., K, M]) times rhs [..., K, N] (adj_y: [..., N, K]),
batch dims broadcast numpy-style (rank <= 5). int8: per-tensor scales on both operands, int32
accumulation of (lhs - lhs_zp) * (rhs - rhs_zp), MultiplyByQuantizedMultiplier with the multiplier
of double(float(lhs_scale * rhs_scale)) / double(out_scale) (GetQuantizedConvolutionMultipler),
+ out_zp, clamp to int8 (no fused activation exists on this op).
"""
from __future__ import annotations

import numpy as np

from . import CCall, OpDef, register
from ...errors import EdgecError
from ..quant import multiply_by_quantized_multiplier, quantize_multipliers
from ..tensor import Tensor

MAX_RANK = 5


def _carr(values) -> str:
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def _zp(t: Tensor) -> int:
    return int(t.quant.zero_point[0])


# ------------------------------------------------------------------------------------------------
# packed low-bit tables / rhs (docs/quantization.md; kernels/include/ec_lowbit_matmul.h)

def _packed_rows(t: Tensor, rows: np.ndarray | None, op_type: str):
    """(packed uint8 rows, field bits, lut, lut_stride, group_size, multipliers uint8 [R * G] or None)
    of low-bit constant `t` cut into `rows` [R, K], or None where the int8 container is as small
    (not low-bit, not symmetric, or packing plus tables would not save bytes)."""
    from ...backends.c import pack_weights as pw
    if rows is None or not pw.is_lowbit(t) or np.any(t.quant.zero_point != 0):
        return None
    codes, fb, lut, stride = pw.encode(t, rows, op_type)     # grouped: the codes of q = v / multiplier
    gs, mult = 0, None
    if pw.is_grouped(t):
        _, mult, gs = pw.group_levels(t, rows)
        mult = mult.reshape(-1)
    data = pw.pack_codes(codes, fb).reshape(-1)
    if data.size + np.asarray(lut).size + (0 if mult is None else mult.size) >= np.asarray(rows).size:
        return None
    return data, fb, np.asarray(lut, np.int8), stride, gs, mult


def _bmm_rhs_rows(op, bt: Tensor) -> np.ndarray:
    """The constant rhs as [batch matrices * N, K]: one row per output column, K contiguous."""
    b = np.asarray(bt.data)
    if not op.attrs.get("adj_y"):
        b = np.swapaxes(b, -1, -2)
    return b.reshape(-1, b.shape[-1])


# ------------------------------------------------------------------------------------------------
# GATHER: inputs (params, indices int32); output params.shape[:axis] + indices.shape + params.shape[axis+1:]

def _gather_axis(op, params: Tensor) -> int:
    a = op.attrs
    if int(a.get("batch_dims", 0) or 0) != 0:
        raise NotImplementedError("GATHER: only batch_dims 0 is supported")
    axis = int(a.get("axis", 0) or 0)
    rank = len(params.shape)
    if axis < 0:
        axis += rank
    if not 0 <= axis < rank:
        raise ValueError(f"GATHER axis {a.get('axis')} out of range for rank {rank}")
    return axis


def _gather_shape(op, ins):
    p, idx = ins[0], ins[1]
    if idx.dtype not in ("int32", "int64"):
        raise ValueError(f"GATHER indices must be int32 or int64, not {idx.dtype}")
    axis = _gather_axis(op, p)
    return [tuple(p.shape[:axis]) + tuple(idx.shape) + tuple(p.shape[axis + 1:])]


def _gather_ref(op, xs, ins, outs):
    p, idx = xs[0], np.asarray(xs[1]).astype(np.int64)
    axis = _gather_axis(op, ins[0])
    n = p.shape[axis]
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = idx[(idx < 0) | (idx >= n)].reshape(-1)[0]
        raise ValueError(f"GATHER {op.name}: index {int(bad)} out of range [0, {n})")
    return [np.take(p, idx, axis=axis).astype(outs[0].dtype).reshape(outs[0].shape)]


def _gather_c(op, ins, outs, cx):
    p, idx, out = ins[0], ins[1], outs[0]
    if idx.dtype != "int32":
        raise EdgecError(f"GATHER {op.name}: the C backend takes int32 indices, not {idx.dtype}")
    if p.dtype != out.dtype:
        raise EdgecError(f"GATHER {op.name}: table {p.dtype} != output {out.dtype}")
    axis = _gather_axis(op, p)
    zero = _zp(out) if out.quant is not None and out.dtype in ("int8", "int16") else 0
    if axis == 0 and p.dtype == "int8":
        # a low-bit table is packed one row per lookup; other axes fetch strided pieces of rows, so
        # their tables stay in the int8 container path below (exact, unpacked)
        packed = _packed_rows(p, p.data.reshape(p.shape[0], -1) if p.is_const else None, "GATHER")
        if packed is not None:
            data, fb, lut, stride, gs, mult = packed
            return CCall("ec_gather_s8wN", [cx.array(op.name + "_wpacked", data, "uint8_t", weight=True),
                                            cx.ptr(op.inputs[1]), cx.ptr(op.outputs[0])],
                         ("ec_gather_s8wN_params_t", {
                             "num_rows": int(p.shape[0]), "num_indices": int(idx.size),
                             "row_len": int(p.size // max(p.shape[0], 1)), "bits": fb, "lut_stride": stride,
                             "group_size": gs, "zero": zero, "lut": cx.array(op.name + "_wlut", lut, "int8_t", weight=True),
                             "group_mult": "NULL" if mult is None else
                             cx.array(op.name + "_wmult", mult, "uint8_t", weight=True)}))
    es = np.dtype(p.dtype).itemsize
    outer = int(np.prod(p.shape[:axis], dtype=np.int64))
    inner = int(np.prod(p.shape[axis + 1:], dtype=np.int64))
    zero_bytes = np.asarray([zero], out.dtype).view(np.uint8)
    return CCall("ec_gather_x", [cx.ptr(op.inputs[0]), cx.ptr(op.inputs[1]), cx.ptr(op.outputs[0])],
                 ("ec_gather_params_t", {
                     "outer": outer, "axis_size": int(p.shape[axis]), "num_indices": int(idx.size),
                     "inner_bytes": inner * es, "elem_size": es,
                     "zero": _carr(list(zero_bytes) + [0] * (8 - len(zero_bytes)))}))


def _gather_tf(op, xs, attrs):
    from ._tfutil import tfm
    tf = tfm()
    p, idx = xs[0], xs[1]
    if int(attrs.get("batch_dims", 0) or 0) != 0:
        raise NotImplementedError("GATHER: only batch_dims 0 is supported")
    return [tf.gather(p, tf.cast(idx, tf.int32), axis=int(attrs.get("axis", 0) or 0))]


register(OpDef(
    "GATHER", _gather_shape, _gather_ref, options="GatherOptions", weights={0: None}, out_quant="same",
    quant_dtypes=("int8",), int_operands=(1,), c=_gather_c, tf=_gather_tf))


# ------------------------------------------------------------------------------------------------
# BATCH_MATMUL

def _bmm_dims(op, a_shape, b_shape):
    """(batch shape, M, K, N) of lhs a_shape x rhs b_shape, else ValueError."""
    adj_x, adj_y = bool(op.attrs.get("adj_x")), bool(op.attrs.get("adj_y"))
    if not (2 <= len(a_shape) <= MAX_RANK and 2 <= len(b_shape) <= MAX_RANK):
        raise ValueError(f"BATCH_MATMUL operands must have rank 2..{MAX_RANK}, got {list(a_shape)} x {list(b_shape)}")
    m, k = (a_shape[-1], a_shape[-2]) if adj_x else (a_shape[-2], a_shape[-1])
    kb, n = (b_shape[-1], b_shape[-2]) if adj_y else (b_shape[-2], b_shape[-1])
    if k != kb:
        raise ValueError(f"BATCH_MATMUL contraction mismatch: {list(a_shape)} x {list(b_shape)} "
                         f"(adj_x={adj_x}, adj_y={adj_y})")
    try:
        batch = np.broadcast_shapes(tuple(a_shape[:-2]), tuple(b_shape[:-2]))
    except ValueError:
        raise ValueError(f"BATCH_MATMUL batch dims do not broadcast: {list(a_shape)} x {list(b_shape)}") from None
    return tuple(int(d) for d in batch), int(m), int(k), int(n)


def _bmm_shape(op, ins):
    batch, m, _, n = _bmm_dims(op, ins[0].shape, ins[1].shape)
    return [batch + (m, n)]


def _bmm_operands(op, a, b):
    if op.attrs.get("adj_x"):
        a = np.swapaxes(a, -1, -2)
    if op.attrs.get("adj_y"):
        b = np.swapaxes(b, -1, -2)
    return a, b


def bmm_multiplier(at: Tensor, bt: Tensor, ot: Tensor):
    """GetQuantizedConvolutionMultipler: a float32 product of the operand scales over the output's."""
    prod = np.float64(np.float32(np.float32(at.quant.scale[0]) * np.float32(bt.quant.scale[0])))
    m, s = quantize_multipliers([prod / np.float64(np.float32(ot.quant.scale[0]))])
    return int(m[0]), int(s[0])


def _check_per_tensor(op, *ts):
    for t in ts:
        if t.quant is None or t.quant.scale.size != 1:
            raise NotImplementedError(f"BATCH_MATMUL {op.name}: integer operands need per-tensor quantization")


def _bmm_ref(op, xs, ins, outs):
    at, bt, ot = ins[0], ins[1], outs[0]
    a, b = _bmm_operands(op, xs[0], xs[1])
    if at.dtype == "float32":
        if bt.dtype != "float32":
            raise NotImplementedError(f"BATCH_MATMUL {op.name}: hybrid ({bt.dtype} rhs) kernels are not supported")
        return [np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.float32).reshape(ot.shape)]
    if not (at.dtype == bt.dtype == ot.dtype == "int8"):
        raise NotImplementedError(f"BATCH_MATMUL {op.name}: no integer kernel for {at.dtype} x {bt.dtype} -> {ot.dtype}")
    _check_per_tensor(op, at, bt, ot)
    ai = a.astype(np.float64) - _zp(at)
    bi = b.astype(np.float64) - _zp(bt)
    acc = np.rint(np.matmul(ai, bi)).astype(np.int64)      # exact: |acc| < 2^53
    acc = ((acc + 2 ** 31) & 0xFFFFFFFF) - 2 ** 31          # int32 accumulator
    mult, shift = bmm_multiplier(at, bt, ot)
    y = multiply_by_quantized_multiplier(acc, mult, shift) + _zp(ot)
    return [np.clip(y, -128, 127).astype(np.int8).reshape(ot.shape)]


def _bmm_macs(op, ins, outs):
    batch, m, k, n = _bmm_dims(op, ins[0].shape, ins[1].shape)
    return int(np.prod(batch, dtype=np.int64)) * m * k * n


def _bmm_geometry(op, a_shape, b_shape) -> dict:
    """The kernel's loops: 3 broadcast batch dims (outermost first) with each operand's element
    stride per batch index (0 where it broadcasts), and the element strides of lhs (m, k) and rhs (k, n)."""
    batch, m, k, n = _bmm_dims(op, a_shape, b_shape)
    if len(batch) > 3:
        raise EdgecError(f"BATCH_MATMUL {op.name}: at most 3 batch dims")
    batch3 = (1,) * (3 - len(batch)) + batch

    def strides(shape):
        mat = int(shape[-1]) * int(shape[-2])
        dims = (1,) * (3 - (len(shape) - 2)) + tuple(int(d) for d in shape[:-2])
        out, s = [0, 0, 0], mat
        for i in (2, 1, 0):
            out[i] = s if dims[i] != 1 else 0
            s *= dims[i]
        return out

    adj_x, adj_y = bool(op.attrs.get("adj_x")), bool(op.attrs.get("adj_y"))
    return {"batch": _carr(batch3), "lhs_batch_stride": _carr(strides(a_shape)),
            "rhs_batch_stride": _carr(strides(b_shape)), "m": m, "k": k, "n": n,
            "lhs_stride_m": 1 if adj_x else k, "lhs_stride_k": m if adj_x else 1,
            "rhs_stride_k": 1 if adj_y else n, "rhs_stride_n": k if adj_y else 1}


def _bmm_args(op, cx, rhs: str | None = None) -> list[str]:
    """lhs, rhs, out pointers; `rhs` (a packed array) stands for the rhs tensor, whose int8 copy
    cx.ptr would otherwise emit."""
    return [cx.ptr(op.inputs[0]), rhs or cx.ptr(op.inputs[1]), cx.ptr(op.outputs[0])]


def _bmm_c(op, ins, outs, cx):
    at, bt, ot = ins[0], ins[1], outs[0]
    geo = _bmm_geometry(op, at.shape, bt.shape)
    if at.dtype == bt.dtype == ot.dtype == "float32":
        return CCall("ec_batch_matmul_f32", _bmm_args(op, cx), ("ec_batch_matmul_f32_params_t", {
            **{"dims." + k: v for k, v in geo.items()}}))
    if at.dtype == bt.dtype == ot.dtype == "int8":
        try:
            _check_per_tensor(op, at, bt, ot)
        except NotImplementedError as e:
            raise EdgecError(str(e)) from None
        mult, shift = bmm_multiplier(at, bt, ot)
        fields = {**{"dims." + k: v for k, v in geo.items()}, "lhs_zp": _zp(at), "rhs_zp": _zp(bt),
                  "out_zp": _zp(ot), "mult": mult, "shift": shift}
        packed = _packed_rows(bt, _bmm_rhs_rows(op, bt) if bt.is_const else None, "BATCH_MATMUL")
        if packed is None:
            return CCall("ec_batch_matmul_s8", _bmm_args(op, cx), ("ec_batch_matmul_s8_params_t", fields))
        data, fb, lut, stride, gs, gmult = packed
        # the rhs batch strides count packed rows: a matrix's K * N elements are N rows of K
        row_strides = [int(v) // geo["k"] for v in geo["rhs_batch_stride"].strip("{}").split(",")]
        fields = {"mm." + f: v for f, v in fields.items()}
        fields["mm.dims.rhs_batch_stride"] = _carr(row_strides)
        rhs = cx.array(op.name + "_wpacked", data, "uint8_t", weight=True)
        return CCall("ec_batch_matmul_s8wN", _bmm_args(op, cx, rhs), ("ec_batch_matmul_s8wN_params_t", {
            **fields, "bits": fb, "lut_stride": stride, "group_size": gs,
            "lut": cx.array(op.name + "_wlut", lut, "int8_t", weight=True),
            "group_mult": "NULL" if gmult is None else cx.array(op.name + "_wmult", gmult, "uint8_t", weight=True)}))
    raise EdgecError(f"BATCH_MATMUL {op.name}: the C backend runs int8 and float32, not "
                     f"{at.dtype} x {bt.dtype} -> {ot.dtype}")


def _bmm_tf(op, xs, attrs):
    from ._tfutil import tfm
    tf = tfm()
    return [tf.linalg.matmul(xs[0], xs[1], adjoint_a=bool(attrs.get("adj_x")),
                             adjoint_b=bool(attrs.get("adj_y")))]


register(OpDef(
    "BATCH_MATMUL", _bmm_shape, _bmm_ref, options="BatchMatMulOptions", macs=_bmm_macs,
    weights={1: None}, out_quant="calibrate", quant_dtypes=("int8",), c=_bmm_c, tf=_bmm_tf))
