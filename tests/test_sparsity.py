"""TFLite's sparse tensor format: encode -> decode in numpy, encode -> write -> LiteRT's DENSIFY
(TFLite Micro has no DENSIFY kernel), malformed sparsity -> EdgecError, and decoding the sparse
models TensorFlow's converter emits (EXPERIMENTAL_SPARSITY)."""
from __future__ import annotations

import copy

import numpy as np
import pytest

from edgec.backends.tflite import write_tflite
from edgec.errors import EdgecError
from edgec.frontend.sparsity import decode_sparse, encode_sparse, sparsity_block
from edgec.frontend.tflite import import_tflite
from edgec.ir import Graph, Op, QuantParams, Tensor
from edgec.ir.interpret import run_batch
from edgec.ir.ops import default_attrs
from edgec.tflite_schema import schema
from opcheck import check_bit_exact, random_inputs

SV = schema.SparseIndexVector


def sparse_array(shape, density, dtype, rng, block=None):
    """Random values where roughly `density` of the (blocks of) entries are non-zero."""
    block = block or (1,) * len(shape)
    grid = [s // b for s, b in zip(shape, block)]
    keep = rng.random(grid) < density
    for d, b in enumerate(block):
        keep = np.repeat(keep, b, axis=d)
    vals = rng.standard_normal(shape) * 40
    if np.dtype(dtype).kind == "i":
        vals = np.clip(np.round(vals), -127, 127)
    return np.where(keep, vals, 0).astype(dtype)


CASES = [((7,), None), ((5, 9), None), ((1, 4, 10), None), ((3, 4, 5, 6), None),
         ((6, 8), (1, 4)), ((6, 8), (2, 1)), ((6, 8), (3, 2)), ((2, 4, 6), (1, 2, 3)),
         ((4, 6, 2, 4), (2, 1, 1, 4)), ((8,), (4,))]


@pytest.mark.parametrize("dtype", ["float32", "int8", "float16", "int32"])
@pytest.mark.parametrize("case", range(len(CASES)))
def test_encode_decode_round_trip(dtype, case):
    shape, block = CASES[case]
    rng = np.random.default_rng(case)
    for density in (0.0, 0.3, 1.0):
        dense = sparse_array(shape, density, dtype, rng, block)
        raw, sp = encode_sparse(dense, block)
        assert sparsity_block(sp, len(shape)) == (tuple(block) if block else None)
        back = decode_sparse(raw, dtype, shape, sp, "w")
        assert back.dtype == dense.dtype and back.shape == dense.shape
        np.testing.assert_array_equal(back, dense)
        # only non-zero blocks are stored
        bsize = int(np.prod(block)) if block else 1
        assert len(raw) <= max(np.count_nonzero(dense), 0) * bsize * dense.itemsize


def test_layout_matches_tensorflow():
    """Row-major CSR on the last dim, block dims last and DENSE, as TF's converter writes it."""
    dense = np.array([[0, 1, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 2, 3, 0]], np.float32)
    raw, sp = encode_sparse(dense, (1, 4))
    assert list(sp.traversalOrder) == [0, 1, 2] and list(sp.blockMap) == [1]
    d0, d1, d2 = sp.dimMetadata
    assert (d0.format, d0.denseSize) == (schema.DimensionType.DENSE, 2)
    assert d1.format == schema.DimensionType.SPARSE_CSR
    assert list(d1.arraySegments.values) == [0, 1, 2] and list(d1.arrayIndices.values) == [0, 1]
    assert (d2.format, d2.denseSize) == (schema.DimensionType.DENSE, 4)
    np.testing.assert_array_equal(np.frombuffer(raw, np.float32), [0, 1, 0, 0, 0, 2, 3, 0])


def test_narrowest_index_type():
    small = np.zeros((3, 200), np.float32)
    small[:, ::7] = 1
    _, sp = encode_sparse(small)
    csr = sp.dimMetadata[1]
    assert csr.arrayIndicesType == SV.Uint8Vector and csr.arraySegmentsType == SV.Uint8Vector
    mid = np.zeros((2, 1000), np.float32)
    mid[:, ::3] = 1
    _, sp = encode_sparse(mid)
    csr = sp.dimMetadata[1]
    assert csr.arrayIndicesType == SV.Uint16Vector and csr.arraySegmentsType == SV.Uint16Vector
    big = np.zeros((1, 70000), np.int8)
    big[0, -1] = 1
    raw, sp = encode_sparse(big)
    csr = sp.dimMetadata[1]
    assert csr.arrayIndicesType == SV.Int32Vector and csr.arraySegmentsType == SV.Uint8Vector
    np.testing.assert_array_equal(decode_sparse(raw, "int8", big.shape, sp, "big"), big)


# -- through the writer and LiteRT's DENSIFY ------------------------------------------------------

def densify_graph(data, quant=None, sparse=True, then_dequantize=False) -> Graph:
    """x ++ DENSIFY(sparse constant) [-> DEQUANTIZE for float16]: the output shows the dense
    values LiteRT decoded from the file."""
    g = Graph(name="densify")
    rest = data.shape[1:]
    out_dtype = "float32" if then_dequantize else str(data.dtype)
    g.add_tensor(Tensor("x", (1, 2) + rest[1:], out_dtype, quant=quant if out_dtype != "float32" else None))
    g.inputs.append("x")
    w = g.const("w", data, quant)
    g.tensors[w].meta["tflite_sparsity"] = sparse
    g.add_tensor(Tensor("dense", data.shape, str(data.dtype), quant=quant))
    g.ops.append(Op("DENSIFY", [w], ["dense"], default_attrs("DENSIFY")))
    mid = "dense"
    if then_dequantize:
        g.add_tensor(Tensor("dense32", data.shape, "float32"))
        g.ops.append(Op("DEQUANTIZE", ["dense"], ["dense32"], default_attrs("DEQUANTIZE")))
        mid = "dense32"
    g.add_tensor(Tensor("y", (1, 2 + rest[0]) + rest[1:], out_dtype, quant=quant if out_dtype != "float32" else None))
    g.ops.append(Op("CONCATENATION", ["x", mid], ["y"], default_attrs("CONCATENATION", axis=1)))
    g.outputs.append("y")
    return g


@pytest.mark.parametrize("dtype", ["float32", "int8", "float16"])
@pytest.mark.parametrize("shape,block", [((1, 6, 8), None), ((1, 6, 8), (1, 1, 4)), ((1, 6, 8), (1, 2, 1)),
                                         ((1, 6, 8), (1, 3, 2)), ((1, 5, 3, 4), None),
                                         ((1, 4, 3, 4), (1, 2, 1, 2))])
def test_write_sparse_litert_densify(dtype, shape, block):
    rng = np.random.default_rng(len(shape) + (0 if block is None else sum(block)))
    data = sparse_array(shape, 0.35, dtype, rng, block)
    quant = QuantParams(0.1, 0) if dtype == "int8" else None
    g = densify_graph(data, quant, sparse=block if block else True, then_dequantize=dtype == "float16")
    check_bit_exact(g, tflm=False)   # TFLM has no DENSIFY kernel

    # the file really holds the sparse encoding, and reading it back gives the same constant
    model = write_tflite(g)
    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    (t,) = [t for t in m.subgraphs[0].tensors if t.sparsity is not None]
    assert len(m.buffers[t.buffer].data) < data.nbytes
    g2 = import_tflite(model)
    (w,) = [t for t in g2.tensors.values() if t.meta.get("tflite_sparsity")]
    np.testing.assert_array_equal(w.data, data)
    xs = random_inputs(g, 2)
    np.testing.assert_array_equal(run_batch(g2, xs)[0], run_batch(g, xs)[0])


# -- malformed sparsity ----------------------------------------------------------------------------

def _corruptions():
    dense = np.zeros((4, 6), np.float32)
    dense[0, 1] = dense[2, 5] = dense[3, 0] = 1.0
    raw, sp = encode_sparse(dense)

    def variant(fn, raw_=raw):
        s = copy.deepcopy(sp)
        out = fn(s)
        return (out if out is not None else raw_), s

    def set_vec(s, level, field, values, kind=SV.Int32Vector):
        v = schema.Int32VectorT()
        v.values = np.array(values, np.int32)
        setattr(s.dimMetadata[level], field, v)
        setattr(s.dimMetadata[level], field + "Type", kind)

    yield "values", variant(lambda s: None, raw[:-4])
    yield "bytes", variant(lambda s: None, raw[:-1])
    yield "traversal", variant(lambda s: setattr(s, "traversalOrder", np.array([1, 1], np.int32)))
    yield "levels", variant(lambda s: setattr(s, "dimMetadata", s.dimMetadata[:1]))
    yield "dense size", variant(lambda s: setattr(s.dimMetadata[0], "denseSize", 5))
    yield "segments", variant(lambda s: set_vec(s, 1, "arraySegments", [0, 1, 1, 2]))
    yield "segments order", variant(lambda s: set_vec(s, 1, "arraySegments", [0, 2, 1, 2, 3]))
    yield "index range", variant(lambda s: set_vec(s, 1, "arrayIndices", [1, 6, 0]))
    yield "missing indices", variant(lambda s: setattr(s.dimMetadata[1], "arrayIndices", None))
    yield "index type", variant(lambda s: setattr(s.dimMetadata[1], "arrayIndicesType", 9))
    yield "format", variant(lambda s: setattr(s.dimMetadata[1], "format", 5))
    yield "block map", variant(lambda s: setattr(s, "blockMap", np.array([3], np.int32)))


@pytest.mark.parametrize("label,bad", list(_corruptions()), ids=lambda v: v if isinstance(v, str) else "")
def test_malformed_sparsity_is_one_clear_error(label, bad):
    raw, sp = bad
    with pytest.raises(EdgecError) as e:
        decode_sparse(raw, "float32", (4, 6), sp, "fc/weights")
    msg = str(e.value)
    assert "fc/weights" in msg and "\n" not in msg


def test_block_size_must_divide_shape():
    _, sp = encode_sparse(np.ones((4, 8), np.float32), (1, 4))
    with pytest.raises(EdgecError, match="does not divide"):
        decode_sparse(b"\0" * 4 * 32, "float32", (4, 6), sp, "w")


# -- models from TensorFlow's converter ------------------------------------------------------------

@pytest.fixture(scope="module")
def tf_sparse_models():
    """Dense layers with >= 70% zero weights converted with EXPERIMENTAL_SPARSITY: random zeros
    (TF emits CSR + DENSIFY, uint16 segments / uint8 indices) and 1x4 zero blocks (TF keeps the
    sparse weights on FULLY_CONNECTED with a block dim)."""
    import tensorflow as tf
    rng = np.random.default_rng(0)
    out = {}
    for kind in ("random", "block"):
        inp = tf.keras.Input((64,), batch_size=1)
        dense = tf.keras.layers.Dense(32, bias_initializer="ones")
        model = tf.keras.Model(inp, dense(inp))
        w, b = dense.get_weights()
        wt = w.T.copy()                                   # TFLite's [out, in]
        if kind == "random":
            wt[rng.random(wt.shape) < 0.8] = 0
        else:
            wt.reshape(32, 16, 4)[rng.random((32, 16)) < 0.7] = 0
        dense.set_weights([wt.T.copy(), b])
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
        conv.optimizations = [tf.lite.Optimize.EXPERIMENTAL_SPARSITY]
        out[kind] = (conv.convert(), wt)
    return out


@pytest.mark.parametrize("kind", ["random", "block"])
def test_decode_tensorflow_sparse_model(tf_sparse_models, kind):
    model, wt = tf_sparse_models[kind]
    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    sparse = [t for t in m.subgraphs[0].tensors if t.sparsity is not None]
    assert len(sparse) == 1, "TensorFlow did not emit a sparse tensor"
    t = sparse[0]
    assert sparsity_block(t.sparsity, 2) == ((1, 4) if kind == "block" else None)
    raw = np.asarray(m.buffers[t.buffer].data, np.uint8).tobytes()
    dense = decode_sparse(raw, "float32", tuple(t.shape), t.sparsity, "w")
    np.testing.assert_array_equal(dense, wt)


@pytest.mark.parametrize("kind", ["random", "block"])
def test_tensorflow_sparse_model_import_rewrite(tf_sparse_models, kind):
    """import -> write (re-encoded sparse) -> LiteRT gives the original model's outputs."""
    from edgec.run.litert import run_litert
    model, wt = tf_sparse_models[kind]
    g = import_tflite(model)
    (w,) = [t for t in g.tensors.values() if t.meta.get("tflite_sparsity")]
    np.testing.assert_array_equal(w.data, wt)
    x = [np.random.default_rng(1).standard_normal((3, 1, 64)).astype(np.float32)]
    for blk in (True, (1, 4)):
        w.meta["tflite_sparsity"] = blk
        np.testing.assert_array_equal(run_litert(write_tflite(g), x)[0], run_litert(model, x)[0])
