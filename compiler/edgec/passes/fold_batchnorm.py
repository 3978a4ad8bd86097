"""Fold a per-channel affine (MUL by a constant, then ADD of a constant: how an unfused batch norm
reaches TFLite) into the preceding convolution or fully-connected layer's weights and bias:
  y = (x * W + b) * c + d  ==  x * (W * c) + (b * c + d)   for c, d constant per output channel."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Op
from .manager import PassContext, register_pass, rewrite_ops

# output-channel axis of the weights, per op that can absorb a per-channel scale
_OUT_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}


def _channel_const(g: Graph, op: Op, x: str, channels: int) -> np.ndarray | None:
    """The constant operand of a binary op on `x`, as a vector over the last axis, or None."""
    if op.type not in ("MUL", "ADD") or op.attrs.get("fused_activation_function", "NONE") != "NONE":
        return None
    other = [i for i in op.inputs if i != x]
    if len(other) != 1 or not g.tensors[other[0]].is_const or g.tensors[other[0]].dtype != "float32":
        return None
    c = g.tensors[other[0]].data
    if c.size not in (1, channels) or (c.size == channels and c.shape[-1] != channels):
        return None
    return np.broadcast_to(c.reshape(-1), (channels,)).astype(np.float32)


@register_pass("fold_batchnorm")
def fold_batchnorm(g: Graph, ctx: PassContext) -> Graph:
    count = 0

    def fold(op: Op, g: Graph):
        nonlocal count
        if op.type not in _OUT_AXIS or op.attrs.get("fused_activation_function") != "NONE":
            return None
        w = g.tensors[op.inputs[1]]
        if not w.is_const or w.dtype != "float32" or w.quant is not None:
            return None
        channels = g.tensors[op.outputs[0]].shape[-1]
        users = g.consumers()
        absorbed = False
        while True:
            y = op.outputs[0]
            nxt = users.get(y, [])
            if len(nxt) != 1 or y in g.outputs:
                break
            c = _channel_const(g, nxt[0], y, channels)
            if c is None:
                break
            _absorb(g, op, nxt[0].type, c, channels)
            g.ops.remove(nxt[0])
            g.replace_uses(nxt[0].outputs[0], y)
            g.tensors[y].shape = g.tensors[nxt[0].outputs[0]].shape
            op.outputs = [y]
            users = g.consumers()
            absorbed = True
            count += 1
        return [op] if absorbed else None

    rewrite_ops(g, fold)
    ctx.report["folded"] = count
    return g


def _absorb(g: Graph, op: Op, kind: str, c: np.ndarray, channels: int) -> None:
    axis = _OUT_AXIS[op.type]
    w = g.tensors[op.inputs[1]]
    bias_name = op.inputs[2] if len(op.inputs) > 2 else None
    bias = g.tensors[bias_name].data if bias_name else np.zeros(channels, np.float32)
    if kind == "MUL":
        shape = [1] * w.data.ndim
        shape[axis] = channels
        new_w, new_b = w.data * c.reshape(shape), bias * c
    else:
        new_w, new_b = w.data, bias + c
    # weights may be shared with another op: always write fresh constants
    wname = g.const(w.name + "_folded", new_w.astype(np.float32))
    bname = g.const((bias_name or op.name + "_bias") + "_folded", new_b.astype(np.float32))
    op.inputs = list(op.inputs[:2]) + [bname] + list(op.inputs[3:])
    op.inputs[1] = wname
