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
from .. import quant_weights as qw
from ..ir import Graph, Op, QuantParams, Tensor
from ..ir import interpret
from ..ir import ops as opreg
from ..ir.ops import default_attrs, float_constant_inputs
from .manager import PassContext, register_pass

DTYPES = ("int8", "int16x8", "float16")
METHODS = ("minmax", "percentile", "mse")


AUTO_BOOL = ("auto", True, False)


@register_pass("quantize", dtype="int8", calibration="minmax", percentile=99.99, per_channel=True, io="int",
               weight_bits=8, weight_scheme="uniform", weight_scale="auto", rounding="nearest", seed=0,
               loss_aware="auto", bias_correction="auto", ptq_samples=128, gptq_damp=0.01, group_size=0)
def quantize(g: Graph, ctx: PassContext) -> Graph:
    o = ctx.options
    for opts in [o] + [{**o, **extra} for _, extra in ctx.overrides]:
        _check_weight_options(opts)
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
    prepared = _prepare_weights(g, ctx)
    stats = ctx.observe(g)
    ctx.report["calibration"] = o["calibration"]
    return _to_integer(g, ctx, stats, prepared)


def _check_weight_options(o: dict) -> None:
    try:
        qw.scheme_bits(o["weight_bits"], o["weight_scheme"])
    except ValueError as e:
        raise EdgecError(f"quantize: {e}") from None
    if o["weight_scale"] not in ("auto",) + qw.SCALES:
        raise EdgecError(f"quantize: weight_scale must be auto, max or mse, not {o['weight_scale']!r}")
    if o["rounding"] not in qw.ROUNDING:
        raise EdgecError(f"quantize: rounding must be nearest or stochastic, not {o['rounding']!r}")
    for k in ("loss_aware", "bias_correction"):
        if o[k] not in AUTO_BOOL:
            raise EdgecError(f"quantize: {k} must be true, false or \"auto\", not {o[k]!r}")
    n = o["group_size"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise EdgecError(f"quantize: group_size must be a whole number >= 0, not {n!r}")
    if n and not _groups_fit(o):
        bits = qw.scheme_bits(o["weight_bits"], o["weight_scheme"])
        raise EdgecError(f"quantize: per-group scales need uniform weights below 8 bits, ternary or binary, "
                         f"not {bits}-bit {o['weight_scheme']}")


def _low_bit(opts: dict) -> bool:
    return opts["weight_bits"] < 8 or opts["weight_scheme"] != "uniform" or bool(opts["group_size"])


def _groups_fit(opts: dict) -> bool:
    bits = qw.scheme_bits(opts["weight_bits"], opts["weight_scheme"])
    return opts["weight_scheme"] in qw.GROUP_SCHEMES and qw.group_mult_max(bits, opts["weight_scheme"]) >= 2


def _flag(opts: dict, key: str) -> bool:
    v = opts[key]
    return _low_bit(opts) if v == "auto" else bool(v)


def _needs_prepare(opts: dict) -> bool:
    return (_low_bit(opts) or opts["weight_scale"] == "mse" or opts["rounding"] == "stochastic"
            or _flag(opts, "loss_aware") or _flag(opts, "bias_correction"))


GROUP_OPS = qw.GROUP_OPS


class _Layout:
    """Where an op's weight sits and how it is cut into rows (one per output channel, K along the
    reduction; compiler/edgec/backends/c/pack_weights.weight_rows order): input index `k`, the
    quantization `axis` (None: one scale), and rows/unrows functions."""

    def __init__(self, k: int, axis: int | None, shape, row_axis: int = 0, bmm_adj_y: bool | None = None):
        self.k, self.axis, self.shape = k, axis, tuple(shape)
        self.row_axis, self.bmm_adj_y = row_axis, bmm_adj_y

    def rows(self, w: np.ndarray) -> np.ndarray:
        if self.bmm_adj_y is None:
            return qw.to_rows(w, self.row_axis)
        return (w if self.bmm_adj_y else np.swapaxes(w, -1, -2)).reshape(-1, w.shape[-1 if self.bmm_adj_y else -2])

    def unrows(self, r: np.ndarray) -> np.ndarray:
        if self.bmm_adj_y is None:
            return qw.from_rows(r, self.shape, self.row_axis)
        if self.bmm_adj_y:
            return r.reshape(self.shape)
        swapped = self.shape[:-2] + (self.shape[-1], self.shape[-2])
        return np.swapaxes(r.reshape(swapped), -1, -2)


def _weight_layout(g: Graph, op: Op, opts: dict, act: str) -> _Layout | None:
    """The layout of op's float weight, or None when it has none the weight quantizers handle.
    FULLY_CONNECTED goes per channel for low-bit weights under int8 activations (LiteRT and TFLM
    run it bit-exactly; TFLM refuses per-channel int16x8 FULLY_CONNECTED). GATHER tables and
    BATCH_MATMUL operands keep one scale (their TFLite kernels take no other); their rows are the
    table's entries and the rhs's output columns, where group multipliers give per-row precision."""
    d = opreg.get(op.type)
    k = 0 if op.type == "GATHER" else 1
    if k not in d.weights or len(op.inputs) <= k or op.inputs[k] is None:
        return None
    t = g.tensors[op.inputs[k]]
    if not t.is_const or t.dtype != "float32":
        return None
    if op.type == "GATHER":
        return _Layout(0, None, t.shape)
    if op.type == "BATCH_MATMUL":
        return _Layout(1, None, t.shape, bmm_adj_y=bool(op.attrs.get("adj_y")))
    axis = d.weights[1]
    if axis is None:
        if op.type != "FULLY_CONNECTED":
            return _Layout(1, None, t.shape)
        per = bool(opts["per_channel"]) and _low_bit(opts) and act == "int8"
        return _Layout(1, 0 if per else None, t.shape)
    return _Layout(1, axis if opts["per_channel"] else None, t.shape, row_axis=axis)


def _prepare_weights(g: Graph, ctx: PassContext) -> dict:
    """Quantize the weights the options ask more of than 8-bit max-abs rounding (low bits, schemes,
    MSE scales, stochastic rounding, GPTQ, bias correction), layer by layer in execution order.

    Each such op's weight input is replaced by a new constant holding the dequantized weights (so
    calibration sees the quantized network) and its bias by the corrected one; returns
    {new weight name: (QuantizedWeight, axis or None)} for _quantize_constants to store."""
    act = "int16" if ctx.options["dtype"] == "int16x8" else "int8"
    prepared: dict = {}
    xs = None
    if ctx.calibration is not None:
        n = min(len(ctx.calibration), int(ctx.options["ptq_samples"]))
        xs = [np.asarray(x[:n], g.tensors[name].dtype) for x, name in zip(ctx.calibration.xs, g.inputs)]
    done = {"gptq": [], "bias_corrected": [], "trained": [], "grouped": []}
    for op in list(g.ops):
        d = opreg.get(op.type)
        opts = ctx.op_options(op)
        if act not in d.quant_dtypes:
            continue
        lay = _weight_layout(g, op, opts, act)
        if lay is None:
            continue
        wt = g.tensors[op.inputs[lay.k]]
        if "qat_scale" in wt.meta:   # trained: store exactly the levels and scales QAT learned
            name, q = _store_trained(g, op, wt)
            prepared[name] = (q, wt.meta["qat_axis"])
            done["trained"].append(op.name)
            continue
        if not _needs_prepare(opts):
            continue
        group = int(opts["group_size"]) if op.type in GROUP_OPS else 0
        if not group and lay.axis is None and op.type in ("GATHER", "BATCH_MATMUL") and opts["per_channel"] \
                and _groups_fit(opts):   # "per channel" for one-scale ops: one multiplier per row
            group = lay.rows(wt.data).shape[1]
        scale_mode = opts["weight_scale"] if opts["weight_scale"] != "auto" else \
            ("mse" if _low_bit(opts) else "max")
        want_gptq = _flag(opts, "loss_aware") and xs is not None and op.type != "GATHER"
        bias_k = d.bias
        has_bias = bias_k is not None and bias_k < len(op.inputs) and op.inputs[bias_k] is not None \
            and g.tensors[op.inputs[bias_k]].is_const and g.tensors[op.inputs[bias_k]].dtype == "float32"
        want_bc = _flag(opts, "bias_correction") and xs is not None and has_bias
        X = None
        if want_gptq or want_bc:
            X = _layer_inputs(g, op, xs)   # [R or 1, N, K] im2col rows, or None if unsupported
        H = None
        if want_gptq and X is not None:
            H = np.matmul(X.transpose(0, 2, 1), X) * (2.0 / X.shape[1])
            H = H[0] if H.shape[0] == 1 else H
            done["gptq"].append(op.name)
        q = qw.quantize_weight(wt.data, lay.row_axis, lay.axis is not None, opts["weight_bits"],
                               opts["weight_scheme"], scale_mode, opts["rounding"], int(opts["seed"]), hessian=H,
                               damp=float(opts["gptq_damp"]), group_size=group,
                               keep_zeros=bool(wt.meta.get("sparsity")), rows_of=(lay.rows, lay.unrows))
        if group:
            done["grouped"].append(op.name)
        wq = q.dequantized(lay.axis)
        new_w = g.const(wt.name + "_wq", wq)
        op.inputs[lay.k] = new_w
        prepared[new_w] = (q, lay.axis)
        if want_bc and X is not None:
            b = g.tensors[op.inputs[bias_k]]
            mean_x = X.mean(axis=1)                                # [R or 1, K]
            dw = lay.rows(wq.astype(np.float64) - wt.data.astype(np.float64))   # [R, K]
            err = (dw * mean_x).sum(axis=1)                        # E[W_q x] - E[W x] per channel
            op.inputs[bias_k] = g.const(b.name + "_bc", (b.data.astype(np.float64) - err).astype(np.float32))
            done["bias_corrected"].append(op.name)
    g.prune_unused()
    if prepared:
        ctx.report["low_bit_weights"] = len(prepared)
        ctx.report["loss_aware_layers"] = len(done["gptq"])
        ctx.report["bias_corrected_layers"] = len(done["bias_corrected"])
        ctx.report["qat_layers"] = len(done["trained"])
        ctx.report["group_scaled_layers"] = len(done["grouped"])
    return prepared


def _store_trained(g: Graph, op: Op, wt):
    """A weight the qat pass trained: its learned scale and the integer levels its fake-quant forward
    used (meta qat_scale/qat_levels, and qat_codebook or qat_group_size/qat_group_mult where it
    trained those), so the deployed model computes what training saw."""
    m = wt.meta
    scale = np.asarray(m["qat_scale"], np.float32).reshape(-1)
    levels = np.asarray(m["qat_levels"], np.int8)
    cb = m.get("qat_codebook")
    mult = m.get("qat_group_mult")
    q = qw.QuantizedWeight(levels, scale, None if cb is None else np.asarray(cb, np.int8), int(m["qat_bits"]),
                           m["qat_scheme"], int(m.get("qat_group_size", 0) or 0),
                           None if mult is None else np.asarray(mult, np.uint8))
    new_w = g.const(wt.name + "_qat", q.dequantized(m["qat_axis"]))
    k = op.inputs.index(wt.name)
    op.inputs[k] = new_w
    return new_w, q


def _layer_inputs(g: Graph, op: Op, xs: list[np.ndarray]) -> np.ndarray | None:
    """The rows the op's weight rows multiply, over the calibration samples, as [1, N, K] (shared by
    all output channels) or [C, N, K] (depthwise: one input channel per output channel). Runs the
    graph as it is now (earlier layers already quantized)."""
    from ..ir.ops.conv import out_size, pad_before, windows
    name = op.inputs[0]
    vals = [interpret.run(g, [x[s:s + 1] for x in xs], keep=True)[name] for s in range(len(xs[0]))]
    x = np.concatenate(vals).astype(np.float64)
    w = g.tensors[op.inputs[1]]
    if op.type == "FULLY_CONNECTED":
        return x.reshape(1, -1, w.shape[1])
    if op.type == "BATCH_MATMUL":   # rows of a 2-D rhs all read the lhs rows
        if len(w.shape) != 2:
            return None
        if op.attrs.get("adj_x"):
            x = np.swapaxes(x, -1, -2)
        return x.reshape(1, -1, x.shape[-1])
    if op.type not in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        return None
    a = op.attrs
    _, h, wd, c = x.shape
    _, kh, kw, ci = w.shape
    sh, sw = a["stride_h"], a["stride_w"]
    dh, dw = a.get("dilation_h_factor", 1) or 1, a.get("dilation_w_factor", 1) or 1
    oh, ow = out_size(a["padding"], h, kh, sh, dh), out_size(a["padding"], wd, kw, sw, dw)
    win = windows(x, kh, kw, sh, sw, dh, dw, pad_before(h, kh, sh, dh, oh), pad_before(wd, kw, sw, dw, ow),
                  oh, ow, 0.0)
    if op.type == "CONV_2D":
        if ci != c:   # grouped convolution: not handled
            return None
        return np.ascontiguousarray(win).reshape(1, -1, kh * kw * c)
    mult = w.shape[3] // c
    cols = np.moveaxis(np.ascontiguousarray(win).reshape(-1, kh * kw, c), 2, 0)   # [C, N, K]
    return np.repeat(cols, mult, axis=0)


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


def _to_integer(g: Graph, ctx: PassContext, stats, prepared: dict | None = None) -> Graph:
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
            elif d.out_quant == "same" and 0 in d.weights and g.tensors[op.inputs[0]].is_const:
                # GATHER: its output holds the table's values, so it takes the table's parameters
                if op.inputs[0] in (prepared or {}):
                    qp[out] = QuantParams(prepared[op.inputs[0]][0].scale[:1], 0)
                else:
                    qp[out] = _weight_params(g.tensors[op.inputs[0]].data, None)
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
    _quantize_constants(g, ctx, act, fallback, prepared or {})
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


def _quantize_constants(g: Graph, ctx: PassContext, act: str, fallback: list[Op], prepared: dict) -> None:
    done: dict[str, str] = {}   # float constant -> its quantized copy, per role
    for op in g.ops:
        if op in fallback:
            continue
        d = opreg.get(op.type)
        opts = ctx.op_options(op)
        for k, name in float_constant_inputs(g, op):
            t = g.tensors[name]
            if k in d.weights and name in prepared:   # low-bit / searched weights, see _prepare_weights
                qwt, axis = prepared[name]
                q = QuantParams(qwt.scale, np.zeros(qwt.scale.size, np.int64), axis, bits=qwt.bits,
                                scheme=qwt.scheme)
                key = (name, "w", axis)
                if key not in done:
                    done[key] = g.const(name + "_q", qwt.levels, q)
                    meta = g.tensors[done[key]].meta
                    if qwt.codebook is not None:
                        meta["codebook"] = qwt.codebook
                    if qwt.group_size:
                        meta["group_size"], meta["group_mult"] = qwt.group_size, qwt.group_mult
                op.inputs[k] = done[key]
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
        for k, name in float_constant_inputs(g, op):
            t = g.tensors[name]
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
