"""Generated C for RESHAPE, SQUEEZE, CONCATENATION, PAD, STRIDED_SLICE, TRANSPOSE, DEPTH_TO_SPACE and
SPACE_TO_DEPTH against TFLite Micro and the reference interpreter, bit for bit.

The movers are element-size generic, so float32 and int8 cover them; int16 (which TFLM runs for only
some of these ops) is checked against the reference. To keep builds few, each graph holds many
independent cases side by side (one op per case, its own inputs and output); 100 random inputs each.
Cases TFLM cannot run (see tests/ops/test_shape.py) are checked against the reference only.
"""
from __future__ import annotations

import numpy as np
import pytest

from ccheck import check_c_exact
from edgec.backends.c.emit import emit_c
from edgec.errors import EdgecError
from edgec.ir import Graph, Op, QuantParams, Tensor
from edgec.ir import ops as opreg
from edgec.ir.ops import default_attrs
from ops.test_shape import SLICES, TRANSPOSES, TRANSPOSES_6D, _random_slice

DTYPES = ("float32", "int8")


def quant(dtype):
    return {"int8": QuantParams(0.05, 3), "int16": QuantParams(0.001, 0)}.get(dtype)


class Cases:
    """One graph holding many single-op cases, each with its own graph inputs and one output."""

    def __init__(self, name: str, dtype: str):
        self.g = Graph(name=name)
        self.dtype = dtype
        self.n = 0

    def add(self, op_type, in_shapes, consts=(), q="default", **attrs) -> str:
        """Adds a case; a shape inference error leaves the graph as it was."""
        g, k = self.g, self.n
        self.n += 1
        q = quant(self.dtype) if q == "default" else q
        names = [f"c{k}_x{i}" for i in range(len(in_shapes))]
        for n, s in zip(names, in_shapes):
            g.add_tensor(Tensor(n, s, self.dtype, quant=q))
        names += [g.const(f"c{k}_k{i}", np.asarray(c, np.int32)) for i, c in enumerate(consts)]
        op = Op(op_type, names, [f"c{k}_y"], default_attrs(op_type, **attrs), name=f"c{k}_{op_type.lower()}")
        try:
            (shape,) = opreg.get(op_type).shape(op, [g.t(n) for n in names])
        except ValueError:
            for n in names:
                del g.tensors[n]
            raise
        g.inputs += names[:len(in_shapes)]
        g.add_tensor(Tensor(f"c{k}_y", shape, self.dtype, quant=q))
        g.ops.append(op)
        g.outputs.append(f"c{k}_y")
        return f"c{k}_y"

    def drop_last(self):
        op = self.g.ops.pop()
        self.g.outputs.remove(op.outputs[0])
        for n in op.inputs + op.outputs:
            if n in self.g.inputs:
                self.g.inputs.remove(n)
            del self.g.tensors[n]


def model_c(g: Graph) -> str:
    return emit_c(g).files["model.c"].decode()


# -- RESHAPE / SQUEEZE -----------------------------------------------------------------------------

RESHAPES = [((1, 4, 6), [1, -1, 3]), ((1, 5, 3, 2), [1, 30]), ((1, 7), [1, 7, 1, 1]),
            ((1, 2, 3, 4, 5), [-1, 5, 4, 3, 2]), ((1, 9), [1, 3, -1])]
SQUEEZES = [((1, 4, 1, 6, 1), [2, -1]), ((1, 4, 1, 6, 1), []), ((1, 1, 5), [1]), ((1, 3, 1), [-1])]


@pytest.mark.parametrize("dtype", DTYPES + ("int16",))
def test_reshape_squeeze_to_graph_output_copies(dtype):
    """Every output is a graph output, so nothing can alias: each op is an ec_copy."""
    c = Cases("reshape", dtype)
    for src, target in RESHAPES:
        c.add("RESHAPE", [src], [target])                  # shape from the 2nd input
        c.add("RESHAPE", [src], new_shape=target)          # shape from the options
    for src, dims in SQUEEZES:
        c.add("SQUEEZE", [src], squeeze_dims=dims)
    assert model_c(c.g).count("ec_copy(") == len(c.g.ops)
    check_c_exact(c.g, tflm=dtype == "int8")


def _chain(dtype) -> Graph:
    """x -> PAD -> RESHAPE -> SQUEEZE -> PAD -> y (aliases of an arena buffer), x -> RESHAPE ->
    STRIDED_SLICE -> z (an alias of the caller's input), const -> RESHAPE -> CONCATENATION -> w
    (a constant cannot be aliased: copied out of flash)."""
    q = quant(dtype)
    g = Graph(name="chain")

    def t(name, shape, data=None):
        g.add_tensor(Tensor(name, shape, dtype if data is None else str(data.dtype), data=data,
                            quant=None if data is not None and data.dtype == np.int32 else q))
        return name

    def op(type_, ins, out, **attrs):
        g.ops.append(Op(type_, ins, [out], default_attrs(type_, **attrs), name=out + "_op"))

    g.inputs = [t("x", (1, 5, 6, 3))]
    pad1 = t("pad1", (4, 2), np.array([[0, 0], [1, 0], [0, 2], [0, 0]], np.int32))
    op("PAD", ["x", pad1], t("p", (1, 6, 8, 3)))
    op("RESHAPE", ["p", t("s1", (4,), np.array([1, 48, 3, 1], np.int32))], t("r", (1, 48, 3, 1)),
       new_shape=[1, 48, 3, 1])
    op("SQUEEZE", ["r"], t("sq", (1, 48, 3)), squeeze_dims=[3])
    op("PAD", ["sq", t("pad2", (3, 2), np.array([[0, 0], [2, 1], [1, 0]], np.int32))], t("y", (1, 51, 4)))
    op("RESHAPE", ["x", t("s2", (2,), np.array([1, 90], np.int32))], t("flat", (1, 90)), new_shape=[1, 90])
    op("STRIDED_SLICE", ["flat", t("b", (2,), np.array([0, 7], np.int32)), t("e", (2,), np.array([1, 80], np.int32)),
                         t("st", (2,), np.array([1, 3], np.int32))], t("z", (1, 25)))
    data = np.arange(12).astype(np.float32 if dtype == "float32" else dtype).reshape(1, 3, 4) % 7
    op("RESHAPE", [t("k", (1, 3, 4), data), t("s3", (3,), np.array([1, 4, 3], np.int32))], t("kr", (1, 4, 3)),
       new_shape=[1, 4, 3])
    op("CONCATENATION", ["kr", "sq"], t("w", (1, 52, 3)), axis=1)
    g.outputs = ["y", "z", "w"]
    return g


@pytest.mark.parametrize("dtype", DTYPES)
def test_reshape_aliased_inside_graph(dtype):
    g = _chain(dtype)
    src = model_c(g)
    assert src.count("aliases its input") == 3         # r, sq (arena) and flat (the caller's x)
    assert src.count("ec_copy(") == 1                  # only the constant's reshape
    check_c_exact(g)
    # once the reshaped tensor is itself a graph output, the reshape reading it must copy
    g.outputs.append("p")
    src = model_c(g)
    assert src.count("aliases its input") == 2 and src.count("ec_copy(") == 2
    check_c_exact(g)


# -- CONCATENATION ---------------------------------------------------------------------------------

CONCATS = [([(1, 4, 2, 3), (1, 4, 5, 3), (1, 4, 1, 3)], -2), ([(1, 4, 2, 3), (1, 4, 2, 5)], 3),
           ([(1, 3, 7), (1, 1, 7), (1, 2, 7), (1, 5, 7)], 1), ([(1, 3), (1, 3)], 0),
           ([(1, 2, 3, 4), (1, 2, 3, 4), (1, 2, 3, 4)], -4), ([(1, 9)], 1),
           ([(1, 3, 5, 7, 2), (1, 3, 5, 1, 2)], 3), ([(1, 13), (1, 6), (1, 1)], 1)]


@pytest.mark.parametrize("dtype", DTYPES + ("int16",))
def test_concatenation(dtype):
    c = Cases("concatenation", dtype)
    for shapes, axis in CONCATS:
        c.add("CONCATENATION", shapes, axis=axis)
    check_c_exact(c.g, tflm=dtype != "int16")


def test_concatenation_refusals():
    c = Cases("concatenation", "float32")
    c.add("CONCATENATION", [(1, 2, 3), (1, 2, 3)], axis=1, fused_activation_function="RELU6")
    with pytest.raises(EdgecError, match="RELU6"):
        emit_c(c.g)
    c = Cases("concatenation", "int8")
    c.add("CONCATENATION", [(1, 2, 3), (1, 4, 3)], axis=1)
    c.g.tensors["c0_x1"].quant = QuantParams(0.2, -7)
    with pytest.raises(EdgecError, match="quantization"):
        emit_c(c.g)


# -- PAD -------------------------------------------------------------------------------------------

def _pads():
    rng = np.random.default_rng(5)
    cases = [(s, rng.integers(0, 4, (len(s), 2))) for s in
             [(1,), (1, 5), (1, 3, 4), (1, 3, 4, 2), (1, 2, 3, 2, 3), (1, 7, 5, 3), (1, 1, 6, 1, 5)]]
    cases += [((1, 5, 6, 3), [[0, 0], [1, 2], [2, 1], [0, 0]]),     # NHWC spatial: [H][W*C]
              ((1, 5, 6, 3), [[0, 0], [0, 0], [0, 0], [2, 3]]),     # channels only
              ((1, 5, 6, 3), [[1, 1], [0, 0], [0, 0], [0, 0]]),     # batch only
              ((1, 4, 3), [[0, 0], [0, 0], [0, 0]]),                # nothing
              ((1, 2, 3, 2, 3), [[0, 1], [1, 0], [0, 2], [1, 1], [0, 0]])]
    return cases


@pytest.mark.parametrize("dtype", DTYPES)
def test_pad(dtype):
    c = Cases("pad", dtype)   # int8: zero point 3, so the fill value shows
    for shape, pads in _pads():
        c.add("PAD", [shape], [pads])
    check_c_exact(c.g)


def test_pad_int16_fill_of_unequal_bytes():
    # a zero point of 300 is bytes 0x2c 0x01: the per-element fill path (TFLite's int16 PAD wants zp 0)
    c = Cases("pad", "int16")
    for shape, pads in _pads()[:6]:
        c.add("PAD", [shape], [pads], q=QuantParams(0.001, 300))
    check_c_exact(c.g, tflm=False)


# -- STRIDED_SLICE ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES + ("int16",))
def test_strided_slice_cases(dtype):
    for on_tflm in (True, False):
        c = Cases("strided_slice", dtype)
        for shape, begin, end, strides, attrs, tflm in SLICES:
            if tflm == on_tflm:
                c.add("STRIDED_SLICE", [shape], [begin, end, strides], **attrs)
        check_c_exact(c.g, tflm=on_tflm and dtype != "float32")


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_slice_random_sweep(dtype):
    """Seeded random slices over every mask (as tests/ops/test_shape.py draws them), 40 per graph."""
    rng = np.random.default_rng({"float32": 11, "int8": 12}[dtype])
    for on_tflm in (True, False):
        c = Cases("strided_slice", dtype)
        while len(c.g.outputs) < 40:
            shape, begin, end, strides, attrs, tflm = _random_slice(rng)
            if tflm != on_tflm:
                continue
            try:
                y = c.add("STRIDED_SLICE", [shape], [begin, end, strides], **attrs)
            except ValueError:    # e.g. more than 5 dims once new axes are added
                continue
            if not c.g.tensors[y].shape or 0 in c.g.tensors[y].shape:   # not batchable by the harness
                c.drop_last()
        check_c_exact(c.g, tflm=on_tflm)


def test_strided_slice_empty_output_emits():
    c = Cases("strided_slice", "int8")
    c.add("STRIDED_SLICE", [(1, 5, 4)], [[0, 3, 0], [1, 1, 4], [1, 1, 1]])
    assert c.g.tensors["c0_y"].shape == (1, 0, 4)
    assert "ec_strided_copy_x(" in model_c(c.g)


# -- TRANSPOSE -------------------------------------------------------------------------------------

def _random_transposes(rng, n):
    """n (shape, perm) of rank 2..5, extents 1..7 behind a batch of 1, perms at random."""
    out = []
    while len(out) < n:
        rank = int(rng.integers(2, 6))
        shape = (1,) + tuple(int(v) for v in rng.integers(1, 8, rank - 1))
        out.append((shape, [int(p) for p in rng.permutation(rank)]))
    return out


@pytest.mark.parametrize("dtype", DTYPES + ("int16",))
def test_transpose(dtype):
    """The listed perms (tests/ops) and 30 random ones in one graph; 6-D ones (TFLM takes 5) in a
    second, against the reference."""
    rng = np.random.default_rng({"float32": 21, "int8": 22, "int16": 23}[dtype])
    c = Cases("transpose", dtype)
    for shape, perm in TRANSPOSES + _random_transposes(rng, 30):
        c.add("TRANSPOSE", [shape], [perm])
    check_c_exact(c.g)
    c = Cases("transpose6", dtype)
    more = [((1, 2, 3, 4, 5, 3), [0, 2, 4, 1, 3, 5]), ((1, 3, 2, 3, 2, 3), [0, 5, 4, 3, 2, 1])]
    for shape, perm in TRANSPOSES_6D + more:
        c.add("TRANSPOSE", [shape], [perm])
    check_c_exact(c.g, tflm=False)


def test_transpose_merges_dims_that_stay_neighbours():
    """[1, H, W, C] -> [1, C, H, W] is a 2-D transpose of [HW][C]; an identity perm is a row copy."""
    c = Cases("transpose", "int8")
    c.add("TRANSPOSE", [(1, 5, 6, 3)], [[0, 3, 1, 2]])
    c.add("TRANSPOSE", [(1, 5, 6, 3)], [[0, 1, 2, 3]])
    src = model_c(c.g)
    assert ".count = {1, 1, 1, 1, 3, 30},\n    .step = {0, 0, 0, 0, 1, 3}" in src     # step in bytes
    assert ".count = {1, 1, 1, 1, 1, 90},\n    .step = {0, 0, 0, 0, 0, 1}" in src
    assert "ec_strided_copy_x(" in src and "ec_transpose" not in src
    check_c_exact(c.g)


# -- DEPTH_TO_SPACE / SPACE_TO_DEPTH ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_depth_space(dtype):
    c = Cases("depth_space", dtype)
    for shape, block in [((1, 3, 4, 8), 2), ((1, 1, 1, 9), 3), ((1, 2, 5, 12), 2), ((1, 3, 2, 5), 1),
                         ((1, 3, 5, 18), 3), ((1, 7, 3, 4), 2)]:
        c.add("DEPTH_TO_SPACE", [shape], block_size=block)
    for shape, block in [((1, 6, 4, 3), 2), ((1, 3, 9, 2), 3), ((1, 4, 4, 1), 4), ((1, 2, 3, 5), 1),
                         ((1, 10, 6, 7), 2), ((1, 9, 3, 1), 3)]:
        c.add("SPACE_TO_DEPTH", [shape], block_size=block)
    check_c_exact(c.g)
