"""verify(graph): the graph's invariants, checked between passes in debug mode (Vela's
verify_graph_health). Raises VerifyError naming the first broken one."""
from __future__ import annotations

from . import ops as opreg
from .graph import Graph


class VerifyError(AssertionError):
    pass


def verify(g: Graph) -> Graph:
    def fail(msg):
        raise VerifyError(f"{g.name}: {msg}")

    for name, t in g.tensors.items():
        if name != t.name:
            fail(f"tensor registered as {name!r} is named {t.name!r}")
        if t.is_const and tuple(t.data.shape) != t.shape:
            fail(f"constant {name!r} holds data of shape {t.data.shape}, declared {t.shape}")
        if t.is_const and str(t.data.dtype) != t.dtype:
            fail(f"constant {name!r} holds {t.data.dtype} data, declared {t.dtype}")
        if t.quant is not None and t.quant.axis is not None and t.quant.per_channel:
            if t.quant.axis >= len(t.shape) or t.shape[t.quant.axis] != t.quant.scale.size:
                fail(f"{name!r}: {t.quant.scale.size} per-channel scales on axis {t.quant.axis} of {t.shape}")
    ready = set(g.inputs) | {n for n, t in g.tensors.items() if t.is_const}
    for n in g.inputs:
        if n not in g.tensors:
            fail(f"graph input {n!r} is not a tensor")
    for k, op in enumerate(g.ops):
        where = f"op {k} {op.type} ({op.name})"
        if op.type not in opreg.REGISTRY:
            fail(f"{where}: not in the op registry")
        for i in op.inputs:
            if i is None:
                continue
            if i not in g.tensors:
                fail(f"{where}: input {i!r} is not a tensor")
            if i not in ready:
                fail(f"{where}: input {i!r} is read before it is produced")
        for o in op.outputs:
            if o not in g.tensors:
                fail(f"{where}: output {o!r} is not a tensor")
            if o in ready:
                fail(f"{where}: output {o!r} is produced twice (or is a constant)")
            ready.add(o)
        ins = [g.t(i) for i in op.inputs]
        try:
            shapes = opreg.get(op.type).shape(op, ins)
        except Exception as e:
            fail(f"{where}: shape inference failed: {e}")
        got = [g.tensors[o].shape for o in op.outputs]
        if [tuple(s) for s in shapes] != got:
            fail(f"{where}: output shapes {got} but inference gives {[tuple(s) for s in shapes]}")
    for o in g.outputs:
        if o not in ready:
            fail(f"graph output {o!r} is never produced")
    return g
