"""Fuse a RELU / RELU6 into the op that produces its input, when that op has a
fused-activation option and nothing else reads the pre-activation value."""
from __future__ import annotations

from ..ir import Graph, Op
from .manager import PassContext, register_pass, rewrite_ops

_ACTIVATIONS = {"RELU": "RELU", "RELU6": "RELU6"}


@register_pass("fuse_activations")
def fuse_activations(g: Graph, ctx: PassContext) -> Graph:
    count = 0

    def fuse(op: Op, g: Graph):
        nonlocal count
        if op.attrs.get("fused_activation_function") != "NONE" or len(op.outputs) != 1:
            return None
        y = op.outputs[0]
        users = g.consumers().get(y, [])
        if len(users) != 1 or y in g.outputs or users[0].type not in _ACTIVATIONS:
            return None
        act = users[0]
        if g.tensors[y].quant is not None and not g.tensors[y].quant.same_as(g.tensors[act.outputs[0]].quant):
            return None  # a quantized activation that requantizes is not a plain clamp
        g.ops.remove(act)
        op.attrs = {**op.attrs, "fused_activation_function": _ACTIVATIONS[act.type]}
        op.outputs = [act.outputs[0]]
        count += 1
        return [op]

    rewrite_ops(g, fuse)
    ctx.report["fused"] = count
    return g
