"""Generated C for GATHER and BATCH_MATMUL against TFLite Micro and the reference interpreter, bit for
bit (float32 to 1e-5 against the reference). To keep builds few, each graph holds many independent
cases side by side (one op per case, its own inputs and output)."""
from __future__ import annotations

import numpy as np
import pytest

from ccheck import check_c_exact, run_c
from edgec.ir import Graph, Op, QuantParams, Tensor
from edgec.ir import ops as opreg
from edgec.ir.ops import default_attrs
from ops.test_matmul import quantize_embedding

Q_A, Q_B, Q_OUT = QuantParams(0.05, 3), QuantParams(0.02, -5), QuantParams(0.3, -7)


class Cases:
    def __init__(self, name, dtype, seed=0):
        self.g = Graph(name=name)
        self.dtype = dtype
        self.rng = np.random.default_rng(seed)
        self.n = 0
        self.index_ranges: list[tuple[int, int | None]] = []   # per graph input: (upper bound, or None for float/int8)

    def _q(self, q):
        return q if self.dtype == "int8" else None

    def _data(self, shape):
        if self.dtype == "int8":
            return self.rng.integers(-127, 128, shape).astype(np.int8)
        return self.rng.standard_normal(shape).astype(np.float32)

    def _input(self, name, shape, dtype, q, bound=None):
        self.g.add_tensor(Tensor(name, shape, dtype, quant=q))
        self.g.inputs.append(name)
        self.index_ranges.append(bound)

    def _finish(self, op, names, q):
        (shape,) = opreg.get(op.type).shape(op, [self.g.t(n) for n in names])
        self.g.add_tensor(Tensor(op.outputs[0], shape, self.dtype, quant=self._q(q)))
        self.g.ops.append(op)
        self.g.outputs.append(op.outputs[0])

    def gather(self, table, idx, axis=0):
        k = self.n = self.n + 1
        t = self.g.const(f"c{k}_table", self._data(table), self._q(QuantParams(0.05, 0) if axis else Q_A))
        self._input(f"c{k}_idx", idx, "int32", None, bound=table[axis])
        op = Op("GATHER", [t, f"c{k}_idx"], [f"c{k}_y"], default_attrs("GATHER", axis=axis), name=f"c{k}_gather")
        self._finish(op, [t, f"c{k}_idx"], QuantParams(0.05, 0) if axis else Q_A)

    def bmm(self, a, b, const_b=False, qs=(Q_A, Q_B, Q_OUT), **attrs):
        k = self.n = self.n + 1
        self._input(f"c{k}_a", a, self.dtype, self._q(qs[0]))
        if const_b:
            bn = self.g.const(f"c{k}_w", self._data(b), self._q(QuantParams(qs[1].scale[0], 0)))
        else:
            bn = f"c{k}_b"
            self._input(bn, b, self.dtype, self._q(qs[1]))
        op = Op("BATCH_MATMUL", [f"c{k}_a", bn], [f"c{k}_y"], default_attrs("BATCH_MATMUL", **attrs),
                name=f"c{k}_bmm")
        self._finish(op, [f"c{k}_a", bn], qs[2])

    def inputs(self, n=50, seed=1):
        rng = np.random.default_rng(seed)
        xs = []
        for name, bound in zip(self.g.inputs, self.index_ranges):
            t = self.g.tensors[name]
            shape = (n,) + t.shape[1:]
            if bound is not None:
                xs.append(rng.integers(0, bound, shape).astype(np.int32))
            elif t.dtype == "float32":
                xs.append(rng.standard_normal(shape).astype(np.float32))
            else:
                xs.append(rng.integers(-128, 128, shape).astype(np.int8))
        return xs


@pytest.mark.parametrize("dtype", ("float32", "int8"))
def test_gather_c(dtype):
    c = Cases("gather_c", dtype)
    c.gather((10, 6), (1, 5))
    c.gather((1, 3), (1,))
    c.gather((7, 1), (1, 2, 3))
    c.gather((13, 2, 3), (1, 4))
    c.gather((3, 9, 5), (1, 2), axis=1)
    c.gather((3, 4, 9), (1, 3), axis=-1)
    check_c_exact(c.g, inputs=c.inputs())


def test_gather_c_out_of_range_index_gives_the_zero_value():
    c = Cases("gather_oob", "int8")
    c.gather((4, 3), (1, 3))
    xs = [np.array([[1, -1, 4]], np.int32)]
    (y,) = run_c(c.g, xs)
    table = c.g.tensors["c1_table"].data
    np.testing.assert_array_equal(y[0, 0], table[1])
    assert (y[0, 1:] == int(Q_A.zero_point[0])).all()


def _bmm_cases(c: Cases):
    for adj_x in (False, True):
        for adj_y in (False, True):
            for a, b in [((1, 3, 4), (1, 4, 5)), ((1, 1, 1), (1, 1, 1)), ((1, 7, 13), (1, 13, 3)),
                         ((1, 2, 3, 4), (1, 1, 4, 5)), ((1, 1, 3, 4), (1, 3, 4, 2)),
                         ((1, 2, 1, 3, 4), (1, 1, 3, 4, 2))]:
                if adj_x:
                    a = a[:-2] + (a[-1], a[-2])
                if adj_y:
                    b = b[:-2] + (b[-1], b[-2])
                c.bmm(a, b, adj_x=adj_x, adj_y=adj_y)
    c.bmm((1, 3, 7), (7, 2), const_b=True)
    c.bmm((1, 5, 6), (4, 6), const_b=True, adj_y=True)
    c.bmm((1, 2, 3, 8), (2, 8, 5), const_b=True)
    c.bmm((1, 4, 300), (1, 300, 6), qs=(QuantParams(0.003, -9), QuantParams(0.011, 4), QuantParams(0.02, 5)))


@pytest.mark.parametrize("dtype", ("float32", "int8"))
def test_batch_matmul_c(dtype):
    c = Cases("bmm_c", dtype)
    _bmm_cases(c)
    check_c_exact(c.g, inputs=c.inputs())


@pytest.mark.parametrize("bits", (8, 4))
def test_quantized_embedding_graph_c(bits):
    _, out, xs = quantize_embedding(weight_bits=bits)
    check_c_exact(out, inputs=xs)
