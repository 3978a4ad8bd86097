"""Evaluate ops whose inputs are all constants (DEQUANTIZE of float16 weights, DENSIFY of sparse
weights, shape arithmetic) and store their results as constants."""
from __future__ import annotations

from ..ir import Graph, Op
from ..ir import ops as opreg
from .manager import PassContext, register_pass, rewrite_ops


@register_pass("fold_constants")
def fold_constants(g: Graph, ctx: PassContext) -> Graph:
    folded = []

    def fold(op: Op, g: Graph):
        ins = [g.t(i) for i in op.inputs]
        if not op.inputs or any(t is not None and not t.is_const for t in ins) \
                or any(o in g.outputs for o in op.outputs):
            return None
        outs = [g.tensors[o] for o in op.outputs]
        values = opreg.get(op.type).ref(op, [None if t is None else t.data for t in ins], ins, outs)
        for t, v in zip(outs, values):
            t.data = v.astype(t.dtype).reshape(t.shape)
            if any(i is not None and i.meta.get("tflite_sparsity") for i in ins):
                t.meta["was_sparse"] = True
        folded.append(op.type)
        return []

    rewrite_ops(g, fold)
    ctx.report["folded"] = len(folded)
    return g
