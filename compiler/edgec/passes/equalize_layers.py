"""equalize_layers: cross-layer equalization (Nagel et al. 2019, "Data-Free Quantization").

For a pair op1 -> op2 of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED where op1's output feeds only
op2's activation input, op1's output channel i is scaled by 1/s_i (its weights and bias) and op2's
input channel i by s_i, with s_i = sqrt(r1_i r2_i) / r2_i (r1_i the range of op1's weights of output
channel i, r2_i that of op2's weights reading input channel i): both ranges become sqrt(r1_i r2_i),
which per-channel-poor layers (depthwise, per-tensor) quantize much better.

Only where exact: s_i > 0 commutes with op1's fused NONE or RELU (RELU(x/s) = RELU(x)/s), nothing
else (RELU6, RELU_N1_TO_1, TANH clamp at fixed values) — those pairs are skipped, as are grouped
convolutions, shared weights, tensors that are graph outputs or read twice, and anything between the
two ops (a RESHAPE's flattening would need the channel map). `iterations` sweeps repeat over chains.
"""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Op
from .manager import PassContext, register_pass

LINEAR = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
COMMUTING = ("NONE", "RELU")
S_MIN, S_MAX = 1e-3, 1e3


@register_pass("equalize_layers", iterations=4)
def equalize_layers(g: Graph, ctx: PassContext) -> Graph:
    pairs = find_pairs(g)
    ctx.report["pairs"] = [f"{a.name}->{b.name}" for a, b in pairs]
    ctx.report["skipped"] = skipped_pairs(g)
    for _ in range(int(ctx.options["iterations"])):
        for a, b in pairs:
            _equalize(g, a, b)
    return g


def _out_axis(op: Op) -> int:
    return 3 if op.type == "DEPTHWISE_CONV_2D" else 0


def _linear_ok(g: Graph, op: Op) -> bool:
    if op.type not in LINEAR or len(op.inputs) < 2 or op.inputs[1] is None:
        return False
    w = g.tensors[op.inputs[1]]
    if not w.is_const or w.dtype != "float32":
        return False
    if len(op.inputs) > 2 and op.inputs[2] is not None:
        b = g.tensors[op.inputs[2]]
        if not b.is_const or b.dtype != "float32":
            return False
    if op.type == "CONV_2D" and w.shape[3] != g.tensors[op.inputs[0]].shape[3]:
        return False   # grouped
    if op.type == "DEPTHWISE_CONV_2D" and w.shape[3] != g.tensors[op.inputs[0]].shape[3]:
        return False   # depth multiplier > 1: input channel i feeds several outputs (fine as op2 only)
    return True


def _candidates(g: Graph):
    consumers = g.consumers()
    for a in g.ops:
        if a.type not in LINEAR:
            continue
        out = a.outputs[0]
        users = consumers.get(out, [])
        if out in g.outputs or len(users) != 1:
            continue
        b = users[0]
        if b.type in LINEAR and b.inputs[0] == out:
            yield a, b


def _uses(g: Graph) -> dict[str, int]:
    n: dict[str, int] = {}
    for op in g.ops:
        for i in op.inputs:
            if i is not None:
                n[i] = n.get(i, 0) + 1
    return n


def find_pairs(g: Graph) -> list[tuple[Op, Op]]:
    uses = _uses(g)
    pairs = []
    for a, b in _candidates(g):
        if a.attrs.get("fused_activation_function", "NONE") not in COMMUTING:
            continue
        ok_a = _linear_ok(g, a)
        ok_b = b.type in LINEAR and g.tensors[b.inputs[1]].is_const and g.tensors[b.inputs[1]].dtype == "float32"
        if b.type == "CONV_2D" and g.tensors[b.inputs[1]].shape[3] != g.tensors[b.inputs[0]].shape[3]:
            ok_b = False
        if b.type == "FULLY_CONNECTED" and (len(g.tensors[a.outputs[0]].shape) != 2
                                            or g.tensors[b.inputs[1]].shape[1] != g.tensors[a.outputs[0]].shape[1]):
            ok_b = False   # FC reading a feature map flattens it: channel i is every c-th column
        shared = any(uses.get(t, 0) > 1 for t in a.inputs[1:] + b.inputs[1:2] if t is not None)
        if ok_a and ok_b and not shared:
            pairs.append((a, b))
    return pairs


def skipped_pairs(g: Graph) -> list[str]:
    """Adjacent linear pairs not equalized because op1's activation does not commute with scaling."""
    return [f"{a.name}->{b.name} ({a.attrs.get('fused_activation_function')})" for a, b in _candidates(g)
            if a.attrs.get("fused_activation_function", "NONE") not in COMMUTING]


def _in_rows(op: Op, w: np.ndarray, c: int) -> np.ndarray:
    """op2's weights as [C_in, ...]: the weights each input channel meets."""
    if op.type == "FULLY_CONNECTED":
        return w.T
    if op.type == "CONV_2D":
        return np.moveaxis(w, 3, 0)
    mult = w.shape[3] // c   # depthwise: output channel i*mult + m reads input channel i
    return np.moveaxis(w.reshape(w.shape[:3] + (c, mult)), 3, 0)


def _equalize(g: Graph, a: Op, b: Op) -> None:
    w1 = g.tensors[a.inputs[1]].data.astype(np.float64)
    w2 = g.tensors[b.inputs[1]].data.astype(np.float64)
    ax = _out_axis(a)
    c = w1.shape[ax]
    r1 = np.abs(np.moveaxis(w1, ax, 0).reshape(c, -1)).max(axis=1)
    r2 = np.abs(_in_rows(b, w2, c).reshape(c, -1)).max(axis=1)
    ok = (r1 > 0) & (r2 > 0)
    s = np.ones(c)
    s[ok] = np.clip(np.sqrt(r1[ok] * r2[ok]) / r2[ok], S_MIN, S_MAX)
    shape1 = [1] * w1.ndim
    shape1[ax] = -1
    g.tensors[a.inputs[1]].data = (w1 / s.reshape(shape1)).astype(np.float32)
    if len(a.inputs) > 2 and a.inputs[2] is not None:
        bt = g.tensors[a.inputs[2]]
        bt.data = (bt.data.astype(np.float64) / s).astype(np.float32)
    if b.type == "FULLY_CONNECTED":
        w2 = w2 * s[None, :]
    elif b.type == "CONV_2D":
        w2 = w2 * s.reshape(1, 1, 1, -1)
    else:
        w2 = w2 * np.repeat(s, w2.shape[3] // c).reshape(1, 1, 1, -1)
    g.tensors[b.inputs[1]].data = w2.astype(np.float32)
