"""Static memory plan for the generated C: which arena bytes each tensor occupies, and when.

1. Buffers: every non-constant tensor that is not a graph input or output (those live in the
   caller's buffers) is a buffer; reshape-like ops alias their output onto the input's buffer, and
   element-wise ops may write into an input that dies at that op (in place); each op's scratch is a
   buffer living only during the op.
2. Lifetimes: a buffer lives from the op that first writes it to the last op that reads it.
3. Placement: greedy by size, each buffer at the lowest 16-byte aligned offset that overlaps no
   placed buffer alive at the same time (TFLite Micro's GreedyMemoryPlanner does the same, so the
   figures compare fairly).
4. Order: on branching graphs the execution order changes which buffers are alive together; we plan
   the given order and a memory-aware topological order (at each step run the ready op that leaves
   the fewest bytes alive) and keep the smaller arena.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ...ir import Graph, Op
from ...ir import ops as opreg

ALIGN = 16


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass
class MemoryPlan:
    order: list[Op]
    arena_size: int
    offsets: dict[str, int]                  # arena tensor -> byte offset
    scratch: dict[int, tuple[int, int]]      # op index in `order` -> (offset, bytes)
    caller: dict[str, str] = field(default_factory=dict)   # tensor aliasing a graph input/output
    timeline: list[dict] = field(default_factory=list)     # buffers: name, offset, bytes, first, last


def plan_memory(g: Graph, scratch_bytes: dict[str, int] | None = None, try_orders: bool = True) -> MemoryPlan:
    """`scratch_bytes` maps op name -> scratch size the chosen kernel variant needs."""
    scratch_bytes = scratch_bytes or {}
    orders = [list(g.ops)]
    if try_orders and _has_branches(g):
        orders.append(_memory_aware_order(g))
    plans = [_plan(g, order, scratch_bytes) for order in orders]
    return min(plans, key=lambda p: (p.arena_size, plans.index(p)))


def _has_branches(g: Graph) -> bool:
    users = g.consumers()
    return any(len(u) > 1 for u in users.values())


def _nbytes(g: Graph, name: str) -> int:
    t = g.tensors[name]
    return t.size * _itemsize(t.dtype)


def _itemsize(dtype: str) -> int:
    return {"float32": 4, "float16": 2, "int8": 1, "uint8": 1, "int16": 2, "int32": 4, "int64": 8,
            "bool": 1}[dtype]


def _plan(g: Graph, order: list[Op], scratch_bytes: dict[str, int]) -> MemoryPlan:
    io = set(g.inputs) | set(g.outputs)
    buffer_of: dict[str, str] = {}           # tensor -> buffer (its root tensor)
    caller: dict[str, str] = {}              # tensor -> caller-owned graph input it aliases
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    size: dict[str, int] = {}

    last_read: dict[str, int] = {}
    for k, op in enumerate(order):
        for i in op.inputs:
            if i is not None:
                last_read[i] = k
    for o in g.outputs:
        last_read[o] = len(order)

    def root(name: str) -> str:
        while name in buffer_of and buffer_of[name] != name:
            name = buffer_of[name]
        return name

    for k, op in enumerate(order):
        d = opreg.get(op.type)
        for out in op.outputs:
            if out in io:
                continue
            src = op.inputs[0] if op.inputs else None
            mode = d.inplace
            if mode == "alias" and src is not None and not g.tensors[src].is_const:
                if src in g.inputs or caller.get(src):
                    caller[out] = caller.get(src, src)
                    continue
                if src not in g.outputs:
                    buffer_of[out] = root(src)
                    continue
            if mode == "elementwise" and src is not None and src not in io and src not in caller \
                    and not g.tensors[src].is_const and _nbytes(g, src) == _nbytes(g, out):
                r = root(src)
                tensors_of_r = [t for t in list(buffer_of) + [r] if root(t) == r]
                if max(last_read.get(t, -1) for t in tensors_of_r) <= k:
                    buffer_of[out] = r
                    continue
            buffer_of[out] = out
            first[out] = k
            size[out] = _nbytes(g, out)
    for t, r in list(buffer_of.items()):
        if r in first:
            last[r] = max(last.get(r, first[r]), last_read.get(t, first[r]))
    buffers = [(r, size[r], first[r], last.get(r, first[r])) for r in first]
    for k, op in enumerate(order):
        n = scratch_bytes.get(op.name, 0)
        if n:
            buffers.append((f"#scratch{k}", n, k, k))

    placed: list[tuple[int, int, int, int, str]] = []   # offset, bytes, first, last, name
    offsets: dict[str, int] = {}
    for name, n, f, l in sorted(buffers, key=lambda b: (-b[1], b[2], b[0])):
        offset = 0
        for po, pn, pf, pl, _ in sorted((p for p in placed if not (p[3] < f or p[2] > l)), key=lambda p: p[0]):
            if offset + n <= po:
                break
            offset = max(offset, _align(po + pn))
        placed.append((offset, n, f, l, name))
        offsets[name] = offset
    arena = _align(max((o + n for o, n, *_ in placed), default=0))
    tensor_offsets = {t: offsets[root(t)] for t in buffer_of if root(t) in offsets}
    scratch = {int(nm[8:]): (o, n) for o, n, f, l, nm in placed if nm.startswith("#scratch")}
    timeline = [{"name": nm, "offset": o, "bytes": n, "first": f, "last": l} for o, n, f, l, nm in
                sorted(placed, key=lambda p: (p[2], p[0]))]
    return MemoryPlan(order, arena, tensor_offsets, scratch, caller, timeline)


def _memory_aware_order(g: Graph) -> list[Op]:
    """A topological order that at each step runs the ready op leaving the fewest bytes alive."""
    producers = g.producers()
    deps = {id(op): {id(producers[i]) for i in op.inputs if i is not None and i in producers} for op in g.ops}
    remaining_reads: dict[str, int] = {}
    for op in g.ops:
        for i in op.inputs:
            if i is not None and not g.tensors[i].is_const:
                remaining_reads[i] = remaining_reads.get(i, 0) + 1
    done: set[int] = set()
    order: list[Op] = []
    pending = list(g.ops)
    while pending:
        ready = [op for op in pending if deps[id(op)] <= done]

        def delta(op: Op) -> int:
            grow = sum(_nbytes(g, o) for o in op.outputs)
            freed = sum(_nbytes(g, i) for i in set(op.inputs) if i is not None and not g.tensors[i].is_const
                        and remaining_reads.get(i) == 1 and i not in g.outputs)
            return grow - freed
        op = min(ready, key=lambda o: (delta(o), pending.index(o)))
        pending.remove(op)
        done.add(id(op))
        order.append(op)
        for i in op.inputs:
            if i is not None and i in remaining_reads:
                remaining_reads[i] -= 1
    return order
