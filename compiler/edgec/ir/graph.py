"""The graph: ops in execution order over named tensors."""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from .tensor import Tensor


@dataclass
class Op:
    type: str                       # a TFLite builtin name, e.g. "CONV_2D"
    inputs: list[str | None]        # tensor names; None marks an omitted optional input
    outputs: list[str]
    attrs: dict = field(default_factory=dict)  # the op's builtin options, snake_case
    name: str = ""                  # a stable human name (the first output's name by default)

    def __post_init__(self):
        if not self.name:
            self.name = self.outputs[0] if self.outputs else self.type


@dataclass
class Graph:
    tensors: dict[str, Tensor] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    name: str = "model"

    # -- building -------------------------------------------------------------------------
    def add_tensor(self, t: Tensor) -> Tensor:
        if t.name in self.tensors:
            raise ValueError(f"duplicate tensor name {t.name!r}")
        self.tensors[t.name] = t
        return t

    def unique_name(self, base: str) -> str:
        name, i = base, 1
        while name in self.tensors:
            name, i = f"{base}_{i}", i + 1
        return name

    def const(self, base: str, data: np.ndarray, quant=None) -> str:
        name = self.unique_name(base)
        self.add_tensor(Tensor(name, data.shape, str(data.dtype), data, quant))
        return name

    # -- queries --------------------------------------------------------------------------
    def t(self, name: str | None) -> Tensor | None:
        return None if name is None else self.tensors[name]

    def producers(self) -> dict[str, Op]:
        return {o: op for op in self.ops for o in op.outputs}

    def consumers(self) -> dict[str, list[Op]]:
        users: dict[str, list[Op]] = {}
        for op in self.ops:
            for i in op.inputs:
                if i is not None:
                    users.setdefault(i, []).append(op)
        return users

    def weights(self) -> list[Tensor]:
        """Constant tensors read by ops (weights, biases, shape operands)."""
        used = {i for op in self.ops for i in op.inputs if i is not None}
        return [t for n, t in self.tensors.items() if t.is_const and n in used]

    def prune_unused(self) -> "Graph":
        """Drop tensors no op, input or output refers to."""
        used = set(self.inputs) | set(self.outputs)
        for op in self.ops:
            used.update(i for i in op.inputs if i is not None)
            used.update(op.outputs)
        self.tensors = {n: t for n, t in self.tensors.items() if n in used}
        return self

    def remove_dead_ops(self) -> "Graph":
        """Drop ops none of whose outputs is read (by an op or as a graph output), then tensors."""
        live = set(self.outputs)
        kept = []
        for op in reversed(self.ops):
            if any(o in live for o in op.outputs):
                kept.append(op)
                live.update(i for i in op.inputs if i is not None)
        self.ops = kept[::-1]
        return self.prune_unused()

    def replace_uses(self, old: str, new: str) -> None:
        for op in self.ops:
            op.inputs = [new if i == old else i for i in op.inputs]
        self.outputs = [new if o == old else o for o in self.outputs]

    def copy(self) -> "Graph":
        return copy.deepcopy(self)


def structurally_equal(a: Graph, b: Graph, check_data: bool = True) -> str | None:
    """None when `a` and `b` compute the same thing the same way, else the first difference.

    Tensor names may differ: tensors are matched by their position in the op sequence, which is
    what tests of passes care about (TVM's assert_structural_equal).
    """
    if len(a.ops) != len(b.ops):
        return f"op count {len(a.ops)} != {len(b.ops)}: {[o.type for o in a.ops]} vs {[o.type for o in b.ops]}"
    names: dict[str, str] = dict(zip(a.inputs, b.inputs))
    if len(a.inputs) != len(b.inputs):
        return "different number of graph inputs"

    def same_tensor(na, nb, where):
        ta, tb = a.tensors[na], b.tensors[nb]
        if ta.shape != tb.shape or ta.dtype != tb.dtype:
            return f"{where}: {ta.shape}/{ta.dtype} != {tb.shape}/{tb.dtype}"
        if (ta.quant is None) != (tb.quant is None) or (ta.quant and not ta.quant.same_as(tb.quant)):
            return f"{where}: quantization differs"
        if ta.is_const != tb.is_const:
            return f"{where}: constness differs"
        if check_data and ta.is_const and not np.array_equal(ta.data, tb.data):
            return f"{where}: constant data differs"
        return None

    for k, (oa, ob) in enumerate(zip(a.ops, b.ops)):
        if oa.type != ob.type or oa.attrs != ob.attrs:
            return f"op {k}: {oa.type}{oa.attrs} != {ob.type}{ob.attrs}"
        if len(oa.inputs) != len(ob.inputs):
            return f"op {k} ({oa.type}): input count differs"
        for j, (ia, ib) in enumerate(zip(oa.inputs, ob.inputs)):
            if (ia is None) != (ib is None):
                return f"op {k} ({oa.type}) input {j}: optional input presence differs"
            if ia is None:
                continue
            if ia in names:
                if names[ia] != ib:
                    return f"op {k} ({oa.type}) input {j}: wired to a different tensor"
            elif a.tensors[ia].is_const:
                names[ia] = ib
            else:
                return f"op {k} ({oa.type}) input {j}: reads a tensor nothing produced"
            err = same_tensor(ia, ib, f"op {k} ({oa.type}) input {j}")
            if err:
                return err
        for ia, ib in zip(oa.outputs, ob.outputs):
            names[ia] = ib
            err = same_tensor(ia, ib, f"op {k} ({oa.type}) output")
            if err:
                return err
    if [names.get(o) for o in a.outputs] != list(b.outputs):
        return "graph outputs differ"
    return None
