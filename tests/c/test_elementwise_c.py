"""C kernels for ADD, SUB, MUL: generated C == TFLite Micro == the reference interpreter, bit for bit
for int8 (float32 to 1e-5), over equal shapes and numpy broadcasting up to 6-D inputs."""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from ccheck import check_c_exact
from edgec.backends.c.emit import emit_c
from edgec.errors import EdgecError
from edgec.ir import Graph, Op, QuantParams, Tensor
from edgec.ir.ops import default_attrs
from edgec.ir.ops.elementwise import broadcast_loops

OPS = ["ADD", "SUB", "MUL"]
ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]
# (input a, input b): each exercises a different inner-loop case of the kernels (both contiguous,
# a or b broadcast along the innermost dim, strided) and outer broadcast patterns.
SHAPES = [
    ((1, 5, 7, 3), (1, 5, 7, 3)),              # equal: one contiguous run
    ((1, 5, 7, 3), (1, 1, 1, 3)),              # channel vector
    ((1, 1, 1, 3), (1, 5, 7, 3)),              # ... as input 1
    ((1, 5, 7, 1), (1, 5, 7, 3)),              # a broadcast along the innermost dim
    ((1, 5, 1, 3), (1, 1, 7, 1)),              # both sides broadcast
    ((1, 2, 3, 4, 5), (1, 1, 3, 1, 5)),        # 5-D
    ((1, 1, 9), (1, 11, 1)),
    ((1, 13), (1, 1)),                         # scalar-like
    ((1, 4, 6, 17), (1, 17)),                  # lower rank
    ((1, 2, 3, 2, 3, 5), (1, 2, 3, 2, 3, 5)),  # 6-D, collapses to one dim
    ((1, 3, 1, 2, 1, 5), (1, 1, 4, 1, 3, 5)),  # 6-D broadcast, 5 dims after collapsing
]


def seeded(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def rand_quant(rng, n=3):
    return [QuantParams(float(np.exp(rng.uniform(np.log(0.003), np.log(0.3)))), int(rng.integers(-50, 51)))
            for _ in range(n)]


def binary_graph(op, sa, sb, dtype="float32", quants=(None, None, None), b_const=None, **attrs):
    g = Graph(name=op.lower())
    qa, qb, qo = quants
    g.add_tensor(Tensor("a", sa, dtype, quant=qa))
    g.add_tensor(Tensor("b", sb, dtype, data=b_const, quant=qb))
    g.add_tensor(Tensor("y", tuple(np.broadcast_shapes(sa, sb)), dtype, quant=qo))
    g.ops.append(Op(op, ["a", "b"], ["y"], default_attrs(op, **attrs)))
    g.inputs = ["a"] if b_const is not None else ["a", "b"]
    g.outputs = ["y"]
    return g


def _valid_add_quant(rng):
    """ADD/SUB need 2 max(s1, s2) / (2^20 so) < 1: redraw the rare sets that break it."""
    while True:
        q = rand_quant(rng)
        if 2 * max(q[0].scale[0], q[1].scale[0]) < q[2].scale[0] * (1 << 20):
            return q


@pytest.mark.parametrize("k", range(len(SHAPES)))
@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("op", OPS)
def test_binary(op, dtype, k):
    sa, sb = SHAPES[k]
    act = ACTS[(k + OPS.index(op)) % len(ACTS)]
    quants = _valid_add_quant(seeded(op, k)) if dtype == "int8" else (None, None, None)
    g = binary_graph(op, sa, sb, dtype, quants, fused_activation_function=act)
    check_c_exact(g, n=100, seed=k)


def _all_pairs():
    v = np.arange(-128, 128, dtype=np.int8)
    return [v.reshape(1, 256, 1), v.reshape(1, 1, 256)]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("scales", [(0.02, 0.03, 0.5), (0.2, 0.3, 0.01), (0.5, 0.001, 0.05)], ids=str)
def test_int8_every_input_pair(op, scales):
    """All 65536 int8 pairs; rescale multipliers < 1 and (MUL) > 1, saturating and not."""
    q = [QuantParams(s, z) for s, z in zip(scales, (-7, 19, 3))]
    check_c_exact(binary_graph(op, (1, 256, 1), (1, 1, 256), "int8", q), inputs=_all_pairs())


@pytest.mark.parametrize("op", OPS)
def test_constant_operand(op):
    rng = np.random.default_rng(7)
    b = rng.integers(-128, 128, (1, 1, 6)).astype(np.int8)
    g = binary_graph(op, (1, 5, 6), (1, 1, 6), "int8", _valid_add_quant(rng), b_const=b,
                     fused_activation_function="RELU6")
    check_c_exact(g, n=100)
    bf = rng.standard_normal((3,)).astype(np.float32)
    check_c_exact(binary_graph(op, (1, 4, 5, 3), (3,), b_const=bf, fused_activation_function="RELU"), n=20)


def _chain(dtype):
    """x -> ADD(x, c1) -> t1 -> MUL(t1, c2) -> t2 -> SUB(t2, t1') ... : t2 may take t1's memory
    (in place), and the last SUB's output is the graph output."""
    rng = np.random.default_rng(3)
    g = Graph(name="chain")
    q = (lambda: QuantParams(float(rng.uniform(0.02, 0.1)), int(rng.integers(-20, 21)))) if dtype == "int8" \
        else (lambda: None)

    def const(name, shape):
        if dtype == "int8":
            return g.const(name, rng.integers(-128, 128, shape).astype(np.int8), q())
        return g.const(name, rng.standard_normal(shape).astype(np.float32))

    g.add_tensor(Tensor("x", (1, 6, 5, 7), dtype, quant=q()))
    for name in ("t1", "t2", "t3", "y"):
        g.add_tensor(Tensor(name, (1, 6, 5, 7), dtype, quant=q()))
    c1, c2, c3 = const("c1", (1, 1, 5, 7)), const("c2", (7,)), const("c3", (1, 6, 1, 1))
    g.ops += [Op("ADD", ["x", c1], ["t1"], default_attrs("ADD")),
              Op("MUL", ["t1", c2], ["t2"], default_attrs("MUL")),
              Op("SUB", ["t2", c3], ["t3"], default_attrs("SUB", fused_activation_function="RELU")),
              Op("ADD", ["t3", "t3"], ["y"], default_attrs("ADD"))]
    g.inputs, g.outputs = ["x"], ["y"]
    return g


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_in_place_chain(dtype):
    g = _chain(dtype)
    off = emit_c(g).plan.offsets
    assert off["t1"] == off["t2"] == off["t3"], off   # the outputs reuse their dying input 0
    check_c_exact(g, n=100)


def test_broadcast_loops():
    assert broadcast_loops([(1, 5, 7, 3), (1, 5, 7, 3)], (1, 5, 7, 3)) == ([1, 1, 1, 1, 105], [[0] * 4 + [1]] * 2)
    dims, (s1, s2) = broadcast_loops([(1, 5, 7, 3), (3,)], (1, 5, 7, 3))
    assert dims == [1, 1, 1, 35, 3] and s1 == [0, 0, 0, 3, 1] and s2 == [0, 0, 0, 0, 1]
    dims, (s1, s2) = broadcast_loops([(1, 5, 1, 3), (1, 1, 7, 1)], (1, 5, 7, 3))
    assert dims == [1, 1, 5, 7, 3] and s1 == [0, 0, 3, 0, 1] and s2 == [0, 0, 0, 1, 0]
    assert broadcast_loops([(1,), (1, 1)], (1, 1)) == ([1] * 5, [[0] * 5] * 2)
    assert broadcast_loops([(2, 1, 2, 1, 2, 1), (1, 2, 1, 2, 1, 2)], (2,) * 6) is None


def test_refusals():
    with pytest.raises(EdgecError, match="at most 5 dims"):
        emit_c(binary_graph("ADD", (1, 2, 1, 2, 1, 2, 1), (1, 1, 2, 1, 2, 1, 2)))
    q = [QuantParams(0.001, 0)] * 3
    for op in OPS:
        with pytest.raises(EdgecError, match="int8 and float32"):
            emit_c(binary_graph(op, (1, 4, 3), (1, 4, 3), "int16", q))
