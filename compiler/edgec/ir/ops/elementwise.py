"""Binary elementwise arithmetic: ADD, SUB, MUL, with numpy broadcasting and fused activations.

Integer semantics are TFLite Micro's reference kernels (add_common.cc, sub_common.cc, mul_common.cc
with reference/add.h, sub.h, integer_ops/mul.h), which LiteRT's BUILTIN_REF kernels share except for
how the real multipliers are computed at prepare time:

  ADD, SUB  both compute the multipliers in double (older TFLM sub_common.cc did it in float;
            the TFLM we test against matches the double computation on every value).
  MUL       TFLM computes s1 * s2 / so in double; LiteRT multiplies and divides the floats. The
            Q31 multipliers then differ in their low bits and LiteRT can be 1 LSB off TFLM on a
            few values.

We follow TFLM (the C backend must equal it). int16 ("16x8") operands are symmetric; ADD/SUB int16
always take the general-scale path (left shift 15) as TFLM does -- LiteRT switches to a power-of-two
path (shift the finer input, saturating add) when pot_scale_int16 is set (the schema default) and
every scale is a power of two, a case TFLM does not have; there LiteRT is 1 LSB off on ~10% of the
values. Measured LiteRT-vs-TFLM differences for MUL over 2000 random quantizations: int8 66 of 131M
values (9 quantizations affected), int16 15882 of 131M, never more than 1 LSB.
"""
from __future__ import annotations

import numpy as np

from . import CCall, OpDef, register
from ...errors import EdgecError
from ..graph import Op
from ..quant import activation_range, multiply_by_quantized_multiplier, quantize_multiplier
from ..tensor import Tensor


def _scale(t: Tensor) -> np.float32:
    return np.float32(t.quant.scale[0])


def _zp(t: Tensor) -> int:
    return int(t.quant.zero_point[0])


def _binary_shape(op: Op, ins):
    return [tuple(np.broadcast_shapes(ins[0].shape, ins[1].shape))]


def _out_size(op: Op, ins, outs) -> int:
    return int(np.prod(outs[0].shape, dtype=np.int64))


def _act(op: Op) -> str:
    return op.attrs.get("fused_activation_function", "NONE")


def _float_act(y: np.ndarray, act: str) -> np.ndarray:
    lo, hi = activation_range(act, "float32")
    if act != "NONE":
        y = np.clip(y, np.float32(lo), np.float32(hi))
    return y.astype(np.float32)


def _quant_act(y: np.ndarray, act: str, out: Tensor) -> np.ndarray:
    lo, hi = activation_range(act, out.dtype, _scale(out), _zp(out))
    return np.clip(y, lo, hi).astype(out.dtype)


def _check_quant(ins, outs):
    for t in (*ins[:2], outs[0]):
        if t.quant is None or t.quant.per_channel:
            raise ValueError(f"{t.name}: quantized elementwise ops need per-tensor quantization")
    if outs[0].dtype == "int16" and any(_zp(t) != 0 for t in (*ins[:2], outs[0])):
        raise ValueError("int16 elementwise ops need zero points of 0 (symmetric 16x8)")


# -- ADD / SUB --------------------------------------------------------------------------------------

def add_sub_params(in1: Tensor, in2: Tensor, out: Tensor):
    """(left_shift, (m1, s1), (m2, s2), (mo, so)) as TFLM's CalculateOpDataAdd / CalculateOpDataSub:
    input multipliers s_i / (2 max(s1, s2)) and output multiplier 2 max(s1, s2) / (2^left_shift so),
    all in double."""
    left_shift = 15 if out.dtype == "int16" else 20
    a, b, o = float(_scale(in1)), float(_scale(in2)), float(_scale(out))
    twice = 2.0 * max(a, b)
    r1, r2 = a / twice, b / twice
    ro = twice / (float(1 << left_shift) * o)
    mults = [quantize_multiplier(r) for r in (r1, r2, ro)]
    for m, s in mults:
        if s > 0:  # QuantizeMultiplierSmallerThanOneExp's TFLITE_CHECK
            raise ValueError("ADD/SUB rescale multiplier >= 1: output scale too small for the inputs")
    return left_shift, mults[0], mults[1], mults[2]


def _add_sub_ref(sub: bool):
    def ref(op: Op, xs, ins, outs):
        out = outs[0]
        a, b = xs[0], xs[1]
        if out.dtype == "float32":
            y = np.subtract(a, b, dtype=np.float32) if sub else np.add(a, b, dtype=np.float32)
            return [_float_act(y, _act(op))]
        _check_quant(ins, outs)
        ls, (m1, s1), (m2, s2), (mo, so) = add_sub_params(ins[0], ins[1], out)
        va = (np.asarray(a, np.int64) - _zp(ins[0])) << ls
        vb = (np.asarray(b, np.int64) - _zp(ins[1])) << ls
        sa = multiply_by_quantized_multiplier(va, m1, s1)
        sb = multiply_by_quantized_multiplier(vb, m2, s2)
        raw = sa - sb if sub else sa + sb
        y = multiply_by_quantized_multiplier(raw, mo, so) + _zp(out)
        return [_quant_act(y, _act(op), out)]
    return ref


# -- MUL --------------------------------------------------------------------------------------------

def mul_params(in1: Tensor, in2: Tensor, out: Tensor) -> tuple[int, int]:
    """TFLM's mul_common.cc: s1 * s2 / so in double (LiteRT's mul.cc multiplies the floats)."""
    return quantize_multiplier(float(_scale(in1)) * float(_scale(in2)) / float(_scale(out)))


def _mul_ref(op: Op, xs, ins, outs):
    out = outs[0]
    if out.dtype == "float32":
        return [_float_act(np.multiply(xs[0], xs[1], dtype=np.float32), _act(op))]
    _check_quant(ins, outs)
    m, s = mul_params(ins[0], ins[1], out)
    prod = (np.asarray(xs[0], np.int64) - _zp(ins[0])) * (np.asarray(xs[1], np.int64) - _zp(ins[1]))
    y = multiply_by_quantized_multiplier(prod, m, s) + _zp(out)
    return [_quant_act(y, _act(op), out)]


# -- C emitters (kernels/include/ec_elementwise.h) ------------------------------------------------

def broadcast_loops(shapes, out_shape, max_dims: int = 5):
    """numpy broadcasting as a strided loop: (dims, [element strides per input]) over at most
    max_dims output dims, padded in front with (1, stride 0). Size-1 output dims are dropped and
    adjacent dims merged wherever every input is contiguous (or broadcast) across them, so equal
    shapes become one contiguous dim; a broadcast input has stride 0. None if more dims remain."""
    r = len(out_shape)
    per_input = []
    for shape in shapes:
        shape = (1,) * (r - len(shape)) + tuple(shape)
        st, acc = [0] * r, 1
        for k in reversed(range(r)):
            st[k] = acc if shape[k] != 1 else 0
            acc *= int(shape[k])
        per_input.append(st)
    dims: list[int] = []
    strides: list[list[int]] = [[] for _ in shapes]
    for k in range(r):
        d = int(out_shape[k])
        if d == 1:
            continue
        if dims and all(s[-1] == st[k] * d for s, st in zip(strides, per_input)):
            dims[-1] *= d
            for s, st in zip(strides, per_input):
                s[-1] = st[k]
            continue
        dims.append(d)
        for s, st in zip(strides, per_input):
            s.append(st[k])
    if len(dims) > max_dims:
        return None
    pad = max_dims - len(dims)
    return [1] * pad + dims, [[0] * pad + s for s in strides]


def _c_array(values) -> str:
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def _binary_c(kind: str):
    """C emitter for ec_<kind>_{s8,f32}."""
    def emit(op: Op, ins, outs, cx):
        a, b, out = ins[0], ins[1], outs[0]
        loops = broadcast_loops([a.shape, b.shape], out.shape)
        if loops is None:
            raise EdgecError(f"{op.type} {op.name}: the C backend broadcasts over at most 5 dims, "
                             f"got {list(a.shape)} and {list(b.shape)}")
        dims, (s1, s2) = loops
        fields = {"dims": _c_array(dims), "str1": _c_array(s1), "str2": _c_array(s2)}
        args = [cx.ptr(op.inputs[0]), cx.ptr(op.inputs[1]), cx.ptr(op.outputs[0])]
        act = _act(op)
        dtypes = {a.dtype, b.dtype, out.dtype}
        if dtypes == {"float32"}:
            lo, hi = activation_range(act, "float32")
            return CCall(f"ec_{kind}_f32", args, ("ec_binary_f32_params_t", {**fields, "act_min": lo, "act_max": hi}))
        if dtypes != {"int8"}:
            raise EdgecError(f"{op.type} {op.name}: the C backend runs int8 and float32, not {out.dtype}")
        try:
            _check_quant(ins, outs)
            lo, hi = activation_range(act, out.dtype, _scale(out), _zp(out))
            fields.update({"in1_zp": _zp(a), "in2_zp": _zp(b), "out_zp": _zp(out)})
            if kind == "mul":
                m, s = mul_params(a, b, out)
                return CCall("ec_mul_s8", args, ("ec_mul_s8_params_t", {
                    **fields, "mult": m, "shift": s, "act_min": lo, "act_max": hi}))
            ls, (m1, sh1), (m2, sh2), (mo, so) = add_sub_params(a, b, out)
        except (ValueError, KeyError) as e:
            raise EdgecError(f"{op.type} {op.name}: {e}") from None
        return CCall(f"ec_{kind}_s8", args, ("ec_add_s8_params_t", {
            **fields, "left_shift": ls, "mult1": m1, "shift1": sh1, "mult2": m2, "shift2": sh2,
            "out_mult": mo, "out_shift": so, "act_min": lo, "act_max": hi}))
    return emit


def _binary_tf(kind: str):
    """TF lowering (edgec.train) of ADD/SUB/MUL with the fused activation."""
    def lower(op: Op, xs, attrs):
        from ._tfutil import act
        a, b = xs[0], xs[1]
        y = a + b if kind == "add" else a - b if kind == "sub" else a * b
        return [act(y, attrs.get("fused_activation_function", "NONE"))]
    return lower


# The kernels read both inputs of an element before writing it: the output may take input 0's memory.
register(OpDef("ADD", _binary_shape, _add_sub_ref(False), options="AddOptions", macs=_out_size,
               quant_dtypes=("int8", "int16"), c=_binary_c("add"), inplace="elementwise", tf=_binary_tf("add")))
register(OpDef("SUB", _binary_shape, _add_sub_ref(True), options="SubOptions", macs=_out_size,
               quant_dtypes=("int8", "int16"), c=_binary_c("sub"), inplace="elementwise", tf=_binary_tf("sub")))
register(OpDef("MUL", _binary_shape, _mul_ref, options="MulOptions", macs=_out_size,
               quant_dtypes=("int8", "int16"), c=_binary_c("mul"), inplace="elementwise", tf=_binary_tf("mul")))
