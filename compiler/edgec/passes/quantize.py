"""quantize: float32 graph -> int8 (per-channel weights, per-tensor activations), int16x8 (int16
activations, int8 weights, int64 bias) or float16 (weights stored as float16 behind DEQUANTIZE).

Follows the TFLite quantization spec: weights symmetric in [-127, 127], int8 activations asymmetric
with an exactly representable zero, int16 activations symmetric, biases int32 (int64 for int16x8)
at scale input_scale * weight_scale. Ops whose output TFLite requires to share the input's
parameters (pooling, reshapes) get them; ops with fixed output ranges (softmax, logistic, tanh) get
those. An op the integer kernels do not cover for the chosen dtype stays float between a DEQUANTIZE
and a QUANTIZE, and the report lists it.
"""
from __future__ import annotations

import numpy as np

from ..errors import EdgecError
from ..ir import Graph, Op, QuantParams, Tensor
from ..ir import ops as opreg
from ..ir.ops import default_attrs
from .manager import PassContext, register_pass

DTYPES = ("int8", "int16x8", "float16")
METHODS = ("minmax", "percentile", "mse")


@register_pass("quantize", dtype="int8", calibration="minmax", percentile=99.99, per_channel=True, io="int")
def quantize(g: Graph, ctx: PassContext) -> Graph:
    o = ctx.options
    if o["dtype"] not in DTYPES:
        raise EdgecError(f"quantize: unknown dtype {o['dtype']!r}; choose one of {', '.join(DTYPES)}")
    if o["io"] not in ("int", "float"):
        raise EdgecError(f"quantize: io must be 'int' or 'float', not {o['io']!r}")
    if o["dtype"] == "float16":
        return _to_float16(g, ctx)
    if o["calibration"] not in METHODS:
        raise EdgecError(f"quantize: unknown calibration {o['calibration']!r}; choose one of {', '.join(METHODS)}")
    if ctx.observe is None:
        raise EdgecError(f"{o['dtype']} quantization needs calibration data (--calibration D.npz)")
    stats = ctx.observe(g)
    ctx.report["calibration"] = o["calibration"]
    return _to_integer(g, ctx, stats)


# Kernels turn a fused activation's bound into integers as round(bound / scale) in int32
# (TFLite's CalculateActivationRangeQuantized refuses the model when that overflows): RELU6 needs
# scale >= 6 / 2^31. Near-dead layers (e.g. untrained networks) calibrate to smaller ranges, so
# scales are floored here.
MIN_SCALE = 1e-8


def _act_params(lo: float, hi: float, act: str) -> QuantParams:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    if act == "int16":
        return QuantParams(max(max(abs(lo), abs(hi)) / 32767.0, MIN_SCALE), 0, bits=16)
    if hi - lo < 255 * MIN_SCALE:
        hi = lo + 255 * MIN_SCALE
    scale = (hi - lo) / 255.0
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return QuantParams(scale, zp)


def _weight_params(w: np.ndarray, axis: int | None) -> QuantParams:
    if axis is None:
        m = np.array([np.abs(w).max()])
    else:
        m = np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).max(axis=1)
    scale = np.where(m > 0, m / 127.0, 1.0).astype(np.float32)
    return QuantParams(scale, np.zeros_like(scale, dtype=np.int64), axis)


def _to_integer(g: Graph, ctx: PassContext, stats) -> Graph:
    act = "int16" if ctx.options["dtype"] == "int16x8" else "int8"
    consumers = g.consumers()
    producers = g.producers()
    qp: dict[str, QuantParams] = {}
    fallback: list[Op] = []

    def from_stats(name: str, op: Op | None) -> QuantParams:
        if name not in stats:
            raise EdgecError(f"no calibration statistics for tensor {name!r}")
        opts = ctx.op_options(op) if op is not None else ctx.options
        lo, hi = stats[name].range(opts["calibration"], opts["percentile"], 16 if act == "int16" else 8,
                                   symmetric=act == "int16")
        return _act_params(lo, hi, act)

    for name in g.inputs:
        if g.tensors[name].dtype == "float32":
            qp[name] = from_stats(name, None)
    for op in g.ops:
        d = opreg.get(op.type)
        if act not in d.quant_dtypes:
            fallback.append(op)
            for out in op.outputs:
                if g.tensors[out].dtype == "float32" and (out in g.outputs or any(
                        u not in fallback for u in consumers.get(out, []))):
                    qp[out] = from_stats(out, op)
            continue
        for out in op.outputs:
            if g.tensors[out].dtype != "float32":
                continue
            if isinstance(d.out_quant, dict):
                scale, zp = d.out_quant[act]
                qp[out] = QuantParams(scale, zp, bits=16 if act == "int16" else 8)
            elif d.out_quant == "same" and op.inputs[0] in qp and _single_activation_input(g, op):
                qp[out] = qp[op.inputs[0]]
            else:
                qp[out] = from_stats(out, op)
        if d.out_quant == "same" and not _single_activation_input(g, op):
            # CONCATENATION-like: every input must carry the output's parameters. Producers whose
            # only reader is this op take them over; the others are requantized below.
            for i in _activation_inputs(g, op):
                p = producers.get(i)
                if p is not None and len(consumers.get(i, [])) == 1 and i not in g.outputs \
                        and opreg.get(p.type).out_quant == "calibrate" and p not in fallback:
                    qp[i] = qp[op.outputs[0]]

    # int16 ADD/SUB: TFLM has only the general-scale path; the schema's default (power-of-two
    # scales) would make LiteRT take a shift-only path that rounds differently.
    if act == "int16":
        for op in g.ops:
            if "pot_scale_int16" in op.attrs and op not in fallback:
                op.attrs = {**op.attrs, "pot_scale_int16": False}
    # rewrite tensors: activations get their params and the integer dtype
    for name, q in qp.items():
        t = g.tensors[name]
        t.quant = q
        t.dtype = act
    _quantize_constants(g, ctx, act, fallback)
    _insert_requantize(g, fallback)
    _insert_conversions(g, act, fallback)
    if ctx.options["io"] == "float":
        _float_io(g)
    ctx.report["fallback_ops"] = [f"{op.type}:{op.name}" for op in fallback]
    return g


def _single_activation_input(g: Graph, op: Op) -> bool:
    return len(_activation_inputs(g, op)) == 1


def _activation_inputs(g: Graph, op: Op) -> list[str]:
    return [i for i in op.inputs if i is not None and not g.tensors[i].is_const]


def _quantize_constants(g: Graph, ctx: PassContext, act: str, fallback: list[Op]) -> None:
    done: dict[str, str] = {}   # float constant -> its quantized copy, per role
    for op in g.ops:
        if op in fallback:
            continue
        d = opreg.get(op.type)
        opts = ctx.op_options(op)
        for k, name in enumerate(op.inputs):
            if name is None or k in d.int_operands:
                continue
            t = g.tensors[name]
            if not t.is_const or t.dtype != "float32":
                continue
            if k in d.weights:
                axis = d.weights[k] if opts["per_channel"] else None
                q = _weight_params(t.data, axis)
                key = (name, "w", axis)
                dtype = "int8"
            elif k == d.bias:   # scale = activation input scale x weight scale (per channel)
                x = g.tensors[_activation_inputs(g, op)[0]]
                w = g.tensors[op.inputs[min(d.weights)]]
                scale = (x.quant.scale.astype(np.float64) * w.quant.scale.astype(np.float64)).astype(np.float32)
                q = QuantParams(scale, np.zeros(scale.size, np.int64), 0 if scale.size > 1 else None,
                                bits=32 if act == "int8" else 64)
                key = (name, "b", tuple(scale))
                dtype = "int32" if act == "int8" else "int64"
            else:  # a constant operand of an activation op (ADD of a constant, ...)
                q = _act_params(float(t.data.min()), float(t.data.max()), act)
                key = (name, "a")
                dtype = act
            if key not in done:
                data = q.quantize(t.data, dtype) if dtype not in ("int32", "int64") else \
                    _quantize_bias(t.data, q.scale, dtype)
                done[key] = g.const(name + "_q", data, q)
            op.inputs[k] = done[key]
    g.prune_unused()


def _insert_requantize(g: Graph, fallback: list[Op]) -> None:
    """Ops that need every input at the output's parameters (CONCATENATION) read a requantized
    copy of the inputs whose parameters differ."""
    new_ops: list[Op] = []
    for op in g.ops:
        d = opreg.get(op.type)
        if op not in fallback and d.out_quant == "same" and not _single_activation_input(g, op):
            want = g.tensors[op.outputs[0]].quant
            for k, name in enumerate(op.inputs):
                t = g.t(name)
                if t is None or t.quant is None or t.quant.same_as(want):
                    continue
                if t.is_const:
                    data = want.quantize(t.quant.dequantize(t.data), t.dtype)
                    op.inputs[k] = g.const(name + "_rq", data, want)
                    continue
                rq = g.unique_name(name + "_requant")
                g.add_tensor(Tensor(rq, t.shape, t.dtype, quant=want))
                new_ops.append(Op("QUANTIZE", [name], [rq], default_attrs("QUANTIZE")))
                op.inputs[k] = rq
        new_ops.append(op)
    g.ops = new_ops


def _quantize_bias(b: np.ndarray, scale: np.ndarray, dtype: str) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.clip(np.round(b.astype(np.float64) / scale.astype(np.float64)), info.min, info.max).astype(dtype)


def _insert_conversions(g: Graph, act: str, fallback: list[Op]) -> None:
    """Float islands: DEQUANTIZE integer inputs of fallback ops, QUANTIZE their float outputs
    that integer ops (or the graph output) read."""
    if not fallback:
        return
    new_ops: list[Op] = []
    for op in g.ops:
        if op not in fallback:
            new_ops.append(op)
            continue
        for k, name in enumerate(op.inputs):
            if name is None or g.tensors[name].dtype == "float32" or k in opreg.get(op.type).int_operands:
                continue
            t = g.tensors[name]
            if t.is_const:
                fl = g.const(name + "_f", t.quant.dequantize(t.data))
            else:
                fl = g.unique_name(name + "_f")
                g.add_tensor(Tensor(fl, t.shape, "float32"))
                new_ops.append(Op("DEQUANTIZE", [name], [fl], default_attrs("DEQUANTIZE")))
            op.inputs[k] = fl
        outs = []
        for name in op.outputs:
            t = g.tensors[name]
            if t.dtype == act:  # this output was given integer params: compute float, then quantize
                fl = g.unique_name(name + "_f")
                g.add_tensor(Tensor(fl, t.shape, "float32"))
                outs.append((fl, name))
        op.outputs = [dict((n, f) for f, n in outs).get(n, n) for n in op.outputs]
        new_ops.append(op)
        for fl, name in outs:
            new_ops.append(Op("QUANTIZE", [fl], [name], default_attrs("QUANTIZE")))
    g.ops = new_ops


def _float_io(g: Graph) -> None:
    """Keep a float interface: QUANTIZE each integer input, DEQUANTIZE each integer output."""
    head, tail = [], []
    for k, name in enumerate(g.inputs):
        t = g.tensors[name]
        if t.quant is None:
            continue
        q = g.unique_name(name + "_int")
        g.add_tensor(Tensor(q, t.shape, t.dtype, quant=t.quant))
        g.replace_uses(name, q)
        t.dtype, t.quant = "float32", None
        head.append(Op("QUANTIZE", [name], [q], default_attrs("QUANTIZE")))
    for k, name in enumerate(list(g.outputs)):
        t = g.tensors[name]
        if t.quant is None:
            continue
        f = g.unique_name(name + "_float")
        g.add_tensor(Tensor(f, t.shape, "float32"))
        tail.append(Op("DEQUANTIZE", [name], [f], default_attrs("DEQUANTIZE")))
        g.outputs[k] = f
    g.ops = head + g.ops + tail


def _to_float16(g: Graph, ctx: PassContext) -> Graph:
    """TFLite's float16 format: each float constant an op reads becomes float16 + DEQUANTIZE."""
    converted: dict[str, str] = {}
    new_ops: list[Op] = []
    for op in g.ops:
        d = opreg.get(op.type)
        for k, name in enumerate(op.inputs):
            if name is None or k in d.int_operands:
                continue
            t = g.tensors[name]
            if not t.is_const or t.dtype != "float32":
                continue
            if name not in converted:
                half = g.const(name + "_fp16", t.data.astype(np.float16))
                full = g.unique_name(name + "_dequant")
                g.add_tensor(Tensor(full, t.shape, "float32"))
                new_ops.append(Op("DEQUANTIZE", [half], [full], default_attrs("DEQUANTIZE")))
                converted[name] = full
            op.inputs[k] = converted[name]
        new_ops.append(op)
    g.ops = new_ops
    g.prune_unused()
    ctx.report["float16_tensors"] = len(converted)
    return g
