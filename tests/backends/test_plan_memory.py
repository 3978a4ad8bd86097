"""The static memory planner: lifetimes, packing, aliasing, in-place and order choice."""
import numpy as np

from edgec.backends.c.plan_memory import plan_memory
from edgec.ir import Graph, Op, Tensor
from edgec.ir.ops import default_attrs


def chain(sizes, ops=None):
    """x -> op -> t1 -> op -> t2 ... with int8 tensors of the given element counts."""
    g = Graph()
    g.add_tensor(Tensor("x", (1, sizes[0]), "int8"))
    g.inputs = ["x"]
    prev = "x"
    for k, n in enumerate(sizes[1:]):
        name = f"t{k + 1}"
        g.add_tensor(Tensor(name, (1, n), "int8"))
        typ = (ops or {}).get(k, "RELU")
        g.ops.append(Op(typ, [prev], [name], default_attrs(typ)))
        prev = name
    g.outputs = [prev]
    return g


def overlaps(plan, a, b, g):
    oa, ob = plan.offsets[a], plan.offsets[b]
    na, nb = g.tensors[a].size, g.tensors[b].size
    return oa < ob + nb and ob < oa + na


def test_chain_reuses_memory_of_dead_tensors():
    # x(io) -> t1(100) -> t2(50) -> t3(100) -> t4(io): t1 and t3 never live together
    g = chain([10, 100, 50, 100, 10], ops={k: "QUANTIZE" for k in range(4)})
    plan = plan_memory(g)
    assert set(plan.offsets) == {"t1", "t2", "t3"}
    # t1+t2 are alive together (112 + 64 aligned bytes), then t2+t3: t3 takes t1's place
    assert plan.arena_size == 112 + 64
    assert plan.offsets["t3"] == plan.offsets["t1"]
    assert not overlaps(plan, "t1", "t2", g) and not overlaps(plan, "t2", "t3", g)


def test_elementwise_output_goes_in_place_of_a_dying_input():
    g = chain([10, 64, 64, 64, 10], ops={0: "QUANTIZE", 1: "RELU", 2: "RELU", 3: "QUANTIZE"})
    from edgec.ir import ops as opreg
    assert opreg.get("RELU").inplace == "elementwise"
    plan = plan_memory(g)
    assert plan.offsets["t1"] == plan.offsets["t2"] == plan.offsets["t3"]
    assert plan.arena_size == 64


def test_reshape_aliases_its_input():
    from edgec.ir import ops as opreg
    assert opreg.get("RESHAPE").inplace == "alias"
    g = Graph()
    g.add_tensor(Tensor("x", (1, 4, 4), "int8"))
    g.add_tensor(Tensor("a", (1, 4, 4), "int8"))
    g.add_tensor(Tensor("b", (1, 16), "int8"))
    g.add_tensor(Tensor("c", (1, 16), "int8"))
    g.const("shape", np.array([1, 16], np.int32))
    g.ops = [Op("RELU", ["x"], ["a"], {}), Op("RESHAPE", ["a", "shape"], ["b"], default_attrs("RESHAPE", new_shape=[1, 16])),
             Op("RELU", ["b"], ["c"], {})]
    g.inputs, g.outputs = ["x"], ["c"]
    plan = plan_memory(g)
    assert plan.offsets["a"] == plan.offsets["b"]


def branching():
    """Two branches off x: a wide one (A: 1000 bytes, then reduced) and a narrow one (B),
    joined by ADD. Running a branch to completion before starting the other is cheaper."""
    g = Graph()

    def t(name, n):
        g.add_tensor(Tensor(name, (1, n), "int8"))
    t("x", 10)
    for name, n in [("a1", 1000), ("a2", 20), ("b1", 1000), ("b2", 20), ("y", 20)]:
        t(name, n)
    q = default_attrs("QUANTIZE")
    g.ops = [Op("QUANTIZE", ["x"], ["a1"], q), Op("QUANTIZE", ["x"], ["b1"], q),
             Op("QUANTIZE", ["a1"], ["a2"], q), Op("QUANTIZE", ["b1"], ["b2"], q),
             Op("ADD", ["a2", "b2"], ["y"], default_attrs("ADD"))]
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def test_order_choice_lowers_peak_on_branching_graph():
    g = branching()
    given = plan_memory(g, try_orders=False)
    best = plan_memory(g)
    assert given.arena_size >= 2000            # a1 and b1 alive together in the given order
    assert best.arena_size < 1100              # one wide tensor at a time
    assert [op.outputs[0] for op in best.order].index("a2") < [op.outputs[0] for op in best.order].index("b1")


def test_scratch_lives_only_during_its_op():
    g = chain([10, 64, 64, 10], ops={0: "QUANTIZE", 1: "QUANTIZE", 2: "QUANTIZE"})
    plan = plan_memory(g, {g.ops[1].name: 256})
    assert 1 in plan.scratch and plan.scratch[1][1] == 256
    off, n = plan.scratch[1]
    for name in ("t1", "t2"):
        o, m = plan.offsets[name], g.tensors[name].size
        assert off >= o + m or o >= off + n     # t1 and t2 are alive during op 1
    assert all(o % 16 == 0 for o in plan.offsets.values())


def test_no_two_live_buffers_overlap_on_random_graphs():
    rng = np.random.default_rng(0)
    for trial in range(20):
        g = Graph()
        g.add_tensor(Tensor("x", (1, 8), "int8"))
        names = ["x"]
        for k in range(12):
            n = int(rng.integers(1, 500))
            name = f"t{k}"
            g.add_tensor(Tensor(name, (1, n), "int8"))
            srcs = list(rng.choice(names, size=min(len(names), 2), replace=False))
            g.ops.append(Op("ADD" if len(srcs) == 2 else "QUANTIZE", srcs, [name],
                            default_attrs("ADD" if len(srcs) == 2 else "QUANTIZE")))
            names.append(name)
        g.inputs, g.outputs = ["x"], [names[-1]]
        g.remove_dead_ops()
        plan = plan_memory(g)
        from edgec.ir import ops as opreg
        pos = {op.outputs[0]: k for k, op in enumerate(plan.order)}
        last = {}
        for k, op in enumerate(plan.order):
            for i in op.inputs:
                last[i] = k
        names_ = list(plan.offsets)
        for i, a in enumerate(names_):
            for b in names_[i + 1:]:
                if pos[a] > pos[b]:
                    a, b = b, a                       # a is written first
                if last.get(a, pos[a]) < pos[b]:
                    continue                          # a is dead before b is written
                op = plan.order[pos[b]]
                in_place = (last.get(a) == pos[b] and op.inputs[0] == a
                            and opreg.get(op.type).inplace == "elementwise")
                if not in_place:
                    assert not overlaps(plan, a, b, g), (trial, a, b)
