"""Remove ops that do not change values: reshapes to the same shape, and chains of reshapes
(RESHAPE/SQUEEZE of a RESHAPE/SQUEEZE becomes one RESHAPE of the original)."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Op
from ..ir.ops import default_attrs
from .manager import PassContext, register_pass, rewrite_ops

_RESHAPES = ("RESHAPE", "SQUEEZE")


@register_pass("remove_identity")
def remove_identity(g: Graph, ctx: PassContext) -> Graph:
    removed = 0

    def simplify(op: Op, g: Graph):
        nonlocal removed
        if op.type not in _RESHAPES:
            return None
        x, y = op.inputs[0], op.outputs[0]
        tx, ty = g.tensors[x], g.tensors[y]
        if tx.quant is not None and not tx.quant.same_as(ty.quant):
            return None
        if tx.shape == ty.shape and not (x in g.inputs and y in g.outputs):
            if y in g.outputs:  # keep the graph's output name: rewire the producer instead
                prod = g.producers().get(x)
                if prod is None:
                    return None
                prod.outputs = [y if o == x else o for o in prod.outputs]
                g.replace_uses(x, y)
            else:
                g.replace_uses(y, x)
            removed += 1
            return []
        prod = g.producers().get(x)
        if prod is not None and prod.type in _RESHAPES and len(g.consumers().get(x, [])) == 1 \
                and x not in g.outputs:
            shape = g.const(y + "_shape", np.array(ty.shape, np.int32))
            removed += 1  # the first reshape is left dead; the driver removes it
            return [Op("RESHAPE", [prod.inputs[0], shape], [y], default_attrs("RESHAPE", new_shape=list(ty.shape)))]
        return None

    # a chain of n reshapes needs n-1 rounds; each round is linear
    while rewrite_ops(g, simplify):
        pass
    ctx.report["removed"] = removed
    return g
