"""GATHER (embedding lookup) and BATCH_MATMUL: the numpy reference against LiteRT's reference kernels
and TFLite Micro, bit for bit; the float TF lowerings against the reference; and the quantize pass on a
float embedding + projection graph.

Both runtimes run every case here (TFLM has GATHER for float32/int8 and BATCH_MATMUL for float32/int8),
so no case needs tflm=False. Both runtimes fail the invocation on a GATHER index outside [0, V) and
copy int8 values without looking at quantization parameters (a table and output with different
parameters are accepted and copied raw): the reference raises ValueError on a bad index.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgec.backends.tflite import write_tflite
from edgec.calibrate import TensorStats
from edgec.data import Dataset
from edgec.ir import Graph, Op, QuantParams, Tensor, verify
from edgec.ir import ops as opreg
from edgec.ir.interpret import run, run_batch
from edgec.ir.ops import default_attrs
from edgec.passes import Pipeline, Step
from edgec.run.litert import run_litert
from edgec.run.tflm import run_tflm
from opcheck import check_bit_exact

Q_A, Q_B, Q_OUT = QuantParams(0.05, 3), QuantParams(0.02, -5), QuantParams(0.3, -7)


def _table(rng, shape, dtype):
    if dtype == "int8":
        return rng.integers(-128, 128, shape).astype(np.int8)
    return rng.standard_normal(shape).astype(np.float32)


def gather_graph(dtype, table_shape, idx_shape, axis=0, seed=0, q=Q_A) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph(name="gather")
    q = q if dtype == "int8" else None
    t = g.const("table", _table(rng, table_shape, dtype), q)
    g.add_tensor(Tensor("idx", idx_shape, "int32"))
    g.inputs.append("idx")
    op = Op("GATHER", [t, "idx"], ["y"], default_attrs("GATHER", axis=axis))
    (shape,) = opreg.get("GATHER").shape(op, [g.t(t), g.t("idx")])
    g.add_tensor(Tensor("y", shape, dtype, quant=q))
    g.ops.append(op)
    g.outputs.append("y")
    return g


def indices(g, n=4, seed=1, lo=0):
    t = g.tensors["table"]
    axis = g.ops[0].attrs["axis"] % len(t.shape)
    shape = g.tensors["idx"].shape
    return [np.random.default_rng(seed).integers(lo, t.shape[axis], (n,) + shape[1:]).astype(np.int32)]


def bmm_graph(dtype, a, b, const_b=False, seed=0, qs=(Q_A, Q_B, Q_OUT), **attrs) -> Graph:
    rng = np.random.default_rng(seed)
    qa, qb, qo = qs if dtype == "int8" else (None, None, None)
    g = Graph(name="bmm")
    g.add_tensor(Tensor("a", a, dtype, quant=qa))
    g.inputs.append("a")
    if const_b:
        data = rng.integers(-127, 128, b).astype(np.int8) if dtype == "int8" else \
            rng.standard_normal(b).astype(np.float32)
        bn = g.const("w", data, QuantParams(qb.scale[0], 0) if dtype == "int8" else None)
    else:
        bn = "b"
        g.add_tensor(Tensor(bn, b, dtype, quant=qb))
        g.inputs.append(bn)
    op = Op("BATCH_MATMUL", ["a", bn], ["y"], default_attrs("BATCH_MATMUL", **attrs))
    (shape,) = opreg.get("BATCH_MATMUL").shape(op, [g.t("a"), g.t(bn)])
    g.add_tensor(Tensor("y", shape, dtype, quant=qo))
    g.ops.append(op)
    g.outputs.append("y")
    return g


# -- GATHER ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ("float32", "int8"))
@pytest.mark.parametrize("table,idx,axis,want", [
    ((10, 6), (1, 5), 0, (1, 5, 6)),
    ((1, 3), (1,), 0, (1, 3)),
    ((7, 1), (1, 2, 3), 0, (1, 2, 3, 1)),
    ((13, 2, 3), (1, 4), 0, (1, 4, 2, 3)),
    ((3, 9, 5), (1, 2), 1, (3, 1, 2, 5)),
    ((3, 4, 9), (1, 3), -1, (3, 4, 1, 3)),
])
def test_gather(dtype, table, idx, axis, want):
    g = gather_graph(dtype, table, idx, axis)
    assert g.tensors["y"].shape == want
    check_bit_exact(g, inputs=indices(g))


def test_gather_int8_is_a_raw_copy_of_the_table():
    g = gather_graph("int8", (5, 4), (1, 3))
    xs = [np.array([[4, 0, 4]], np.int32)]
    (y,) = run_batch(g, xs)
    np.testing.assert_array_equal(y[0], g.tensors["table"].data[[4, 0, 4]])


def test_gather_different_output_params_still_copy_raw():
    """Neither runtime rescales (nor refuses) a table whose parameters differ from the output's."""
    g = gather_graph("int8", (6, 3), (1, 4))
    g.tensors["y"].quant = QuantParams(0.1, -2)
    check_bit_exact(g, inputs=indices(g))


@pytest.mark.parametrize("bad", (-1, 10, 1000))
def test_gather_out_of_range_index_fails_everywhere(bad):
    g = gather_graph("float32", (10, 4), (1, 2))
    xs = [np.array([[1, bad]], np.int32)]
    with pytest.raises(ValueError, match="out of range"):
        run_batch(g, xs)
    model = write_tflite(g)
    for fn in (run_litert, run_tflm):
        with pytest.raises(RuntimeError):
            fn(model, xs)


def test_gather_rejects_batch_dims():
    g = gather_graph("float32", (10, 4), (1, 2))
    g.ops[0].attrs["batch_dims"] = 1
    with pytest.raises(NotImplementedError):
        opreg.get("GATHER").shape(g.ops[0], [g.t("table"), g.t("idx")])


def test_gather_registry_entry():
    d = opreg.get("GATHER")
    assert d.weights == {0: None} and d.out_quant == "same" and d.int_operands == (1,)


# -- BATCH_MATMUL ----------------------------------------------------------------------------------

SHAPES = [
    ((1, 3, 4), (1, 4, 5)),
    ((1, 1, 1), (1, 1, 1)),
    ((1, 7, 13), (1, 13, 3)),
    ((1, 2, 3, 4), (1, 1, 4, 5)),          # rhs broadcasts over a batch dim
    ((1, 1, 3, 4), (1, 3, 4, 2)),          # lhs broadcasts
    ((1, 2, 1, 3, 4), (1, 1, 3, 4, 2)),    # rank 5, both broadcast
]


@pytest.mark.parametrize("dtype", ("float32", "int8"))
@pytest.mark.parametrize("adj_x", (False, True))
@pytest.mark.parametrize("adj_y", (False, True))
@pytest.mark.parametrize("shapes", SHAPES, ids=[f"{a}x{b}" for a, b in SHAPES])
def test_batch_matmul(dtype, adj_x, adj_y, shapes):
    a, b = shapes
    if adj_x:
        a = a[:-2] + (a[-1], a[-2])
    if adj_y:
        b = b[:-2] + (b[-1], b[-2])
    g = bmm_graph(dtype, a, b, adj_x=adj_x, adj_y=adj_y)
    check_bit_exact(g)


@pytest.mark.parametrize("dtype", ("float32", "int8"))
@pytest.mark.parametrize("a,b,adj_y", [
    ((1, 3, 7), (7, 2), False),            # rank-2 constant weight, broadcast over the batch
    ((1, 5, 6), (4, 6), True),
    ((1, 2, 3, 8), (2, 8, 5), False),      # per-batch weights
])
def test_batch_matmul_constant_weight(dtype, a, b, adj_y):
    check_bit_exact(bmm_graph(dtype, a, b, const_b=True, adj_y=adj_y))


@pytest.mark.parametrize("seed", range(6))
def test_batch_matmul_int8_multipliers_and_saturation(seed):
    """Random scales (the multiplier is float32(s1 * s2) / s_out) and a deep K that saturates."""
    rng = np.random.default_rng(100 + seed)
    qs = tuple(QuantParams(float(s), int(z)) for s, z in
               zip(10.0 ** rng.uniform(-3, -1, 3), rng.integers(-20, 20, 3)))
    check_bit_exact(bmm_graph("int8", (1, 4, 300), (1, 300, 6), seed=seed, qs=qs))


@pytest.mark.parametrize("a,b,attrs", [
    ((1, 3, 4), (1, 5, 5), {}),
    ((1, 2, 3, 4), (1, 3, 4, 5), {}),
    ((1, 3, 4), (1, 4, 5), {"adj_x": True}),
])
def test_batch_matmul_rejects_bad_shapes(a, b, attrs):
    op = Op("BATCH_MATMUL", ["a", "b"], ["y"], default_attrs("BATCH_MATMUL", **attrs))
    with pytest.raises(ValueError):
        opreg.get("BATCH_MATMUL").shape(op, [Tensor("a", a), Tensor("b", b)])


def test_batch_matmul_macs():
    g = bmm_graph("float32", (1, 2, 3, 4), (1, 1, 4, 5))
    op = g.ops[0]
    assert opreg.get("BATCH_MATMUL").macs(op, [g.t(i) for i in op.inputs], [g.t("y")]) == 2 * 3 * 4 * 5


# -- TF lowerings ----------------------------------------------------------------------------------

def test_gather_tf_lowering_matches_reference():
    import tensorflow as tf
    g = gather_graph("float32", (11, 5), (1, 4))
    xs = indices(g, n=3)
    op = g.ops[0]
    got = opreg.get("GATHER").tf(op, [tf.constant(g.tensors["table"].data), xs[0]], op.attrs)[0].numpy()
    np.testing.assert_allclose(got, run_batch(g, xs)[0], rtol=1e-6)


@pytest.mark.parametrize("a,b,const_b,attrs", [
    ((1, 3, 4), (1, 4, 5), False, {}),
    ((1, 4, 3), (1, 5, 4), False, {"adj_x": True, "adj_y": True}),
    ((1, 3, 7), (7, 2), True, {}),
    ((1, 2, 3, 8), (2, 5, 8), True, {"adj_y": True}),
])
def test_batch_matmul_tf_lowering_matches_reference(a, b, const_b, attrs):
    from edgec.train import build_model
    g = bmm_graph("float32", a, b, const_b=const_b, **attrs)
    verify(g)
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal((3,) + g.tensors[i].shape[1:]).astype(np.float32) for i in g.inputs]
    got = build_model(g)(xs)[0].numpy()
    want = run_batch(g, xs)[0]
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=2e-5)


# -- the quantize pass -----------------------------------------------------------------------------

def embedding_graph(seed=0) -> Graph:
    """int32 token ids [1, 5] -> GATHER from a float [20, 8] table -> BATCH_MATMUL by a [8, 6] weight."""
    rng = np.random.default_rng(seed)
    g = Graph(name="embedding")
    t = g.const("table", rng.standard_normal((20, 8)).astype(np.float32))
    w = g.const("w", (rng.standard_normal((8, 6)) * 0.3).astype(np.float32))
    g.add_tensor(Tensor("idx", (1, 5), "int32"))
    g.inputs.append("idx")
    g.add_tensor(Tensor("e", (1, 5, 8)))
    g.add_tensor(Tensor("y", (1, 5, 6)))
    g.ops += [Op("GATHER", [t, "idx"], ["e"], default_attrs("GATHER"), name="emb"),
              Op("BATCH_MATMUL", ["e", w], ["y"], default_attrs("BATCH_MATMUL"), name="proj")]
    g.outputs.append("y")
    return g


def observe_ref(g: Graph, xs: list[np.ndarray]) -> dict:
    """Calibration statistics from the reference interpreter. (edgec.calibrate.observe feeds every
    graph input as float32, which LiteRT refuses for int32 token ids.)"""
    vals: dict[str, list] = {}
    for s in range(len(xs[0])):
        for k, v in run(g, [x[s:s + 1] for x in xs], keep=True).items():
            t = g.tensors[k]
            if not t.is_const and t.dtype == "float32":
                vals.setdefault(k, []).append(np.asarray(v, np.float32).reshape(-1))
    return {k: TensorStats(float(np.concatenate(v).min()), float(np.concatenate(v).max()), np.concatenate(v))
            for k, v in vals.items()}


def quantize_embedding(**opts):
    g = embedding_graph()
    xs = [np.random.default_rng(5).integers(0, 20, (32, 5)).astype(np.int32)]
    out, _ = Pipeline([Step("quantize", {"dtype": "int8", **opts})]).run(
        g.copy(), calibration=Dataset(xs), observe=lambda gg: observe_ref(gg, xs), debug=True)
    return g, out, xs


def _weights(out):
    table = out.tensors[out.ops[0].inputs[0]]
    w = out.tensors[out.ops[1].inputs[1]]
    return table, w


@pytest.mark.parametrize("bits", (8, 4))
def test_quantize_embedding_and_matmul_weight(bits):
    g, out, xs = quantize_embedding(weight_bits=bits)
    assert [op.type for op in out.ops] == ["GATHER", "BATCH_MATMUL"]
    table, w = _weights(out)
    for t in (table, w):   # symmetric per-tensor int8 containers
        assert t.dtype == "int8" and t.quant.scale.size == 1 and int(t.quant.zero_point[0]) == 0
    assert table.quant.bits == w.quant.bits == bits
    if bits < 8:   # one multiplier per row (tests/passes/test_quantize_groups.py checks the levels)
        assert "group_mult" in table.meta and "group_mult" in w.meta
    else:
        assert np.abs(w.data).max() <= 127 and "group_mult" not in w.meta
    assert out.tensors["idx"].dtype == "int32"
    check_bit_exact(out, inputs=xs)


def test_quantized_embedding_output_carries_the_table_params():
    g, out, xs = quantize_embedding()
    table, _ = _weights(out)
    assert out.tensors[out.ops[0].outputs[0]].quant.same_as(table.quant)


def test_quantized_embedding_is_close_to_float_with_table_params():
    """With the GATHER output given the table's parameters (what the pass should do), the int8 graph
    tracks the float one to a few output LSB."""
    g, out, xs = quantize_embedding()
    table, _ = _weights(out)
    out.tensors[out.ops[0].outputs[0]].quant = table.quant
    want = run_batch(g, xs)[0]
    q = out.tensors["y"].quant
    got = q.dequantize(run_batch(out, xs)[0])
    assert np.abs(got - want).max() < 4 * float(q.scale[0]) + 0.02 * np.abs(want).max()
    check_bit_exact(out, inputs=xs)
