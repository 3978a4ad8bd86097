"""Sparse weights in the C backend (backends/c/sparse_weights.py, kernels/include/ec_sparse.h).

1. Encodings round-trip in numpy (encode -> decode, walking the data as the kernels do) for every
   format and parameter on random masks of every pattern (unstructured, empty rows, blocks, N:M, all
   zero) and density; their sizes are what format_sizes predicted.
2. Generated C equals TFLite Micro and the reference interpreter bit for bit on 100 random inputs, for
   FULLY_CONNECTED and CONV_2D chains over odd shapes (1x1, k x k, strides, dilations, SAME / VALID,
   batch rows), densities 0.02 - 0.7, empty rows and all-zero weights, per-channel and per-tensor
   scales, with each format forced in turn (so every kernel runs: CSR 8/16, delta 2-8 bits, blocks
   1x4 ... 16x1 with a partial last block row, 2:4 and 1:4 with partial groups) and with the choice free.
3. Dense stays where sparse is not smaller (dense or half-dense weights, low-bit weights that pack
   smaller); the emitted arrays are exactly the chosen encoding (no dense copy); a wrong or numeric
   meta["sparsity"] hint changes nothing.
4. A LeNet-300-100 FC stack at 90 % unstructured sparsity stores >= 5x fewer weight bytes than dense
   int8 (values + indices + counts + folded biases vs weights + biases) for Cortex-M, and the host's
   kernels (opt: CSR / blocks only) are exact too.
ISA variants (Cortex-M4 emulation, qemu-aarch64) are in test_sparse_isa.py."""
from __future__ import annotations

import re

import numpy as np
import pytest

from ccheck import check_c_exact
from edgec.backends.c import sparse_weights as sw
from edgec.backends.c.emit import emit_c
from edgec.ir import Graph, Op, QuantParams, Tensor
from edgec.ir import ops as opreg
from edgec.ir.ops import default_attrs
from test_lowbit_c import S, _calibrate, qp

N = 100


# ------------------------------------------------------------------------------------------------
# weights with a pruning pattern

def sparse_matrix(rows: int, k: int, pattern: str, density: float, rng) -> np.ndarray:
    """int8 [rows, K] whose non-zeros (any of -128..127 but 0) follow `pattern`: "weight" (each entry
    kept with probability `density`), "rows" (the same with every third row empty), "zero", "dense",
    "block:RxC" (blocks kept with probability `density`, cropped at the edges), "nm:N:M" (N of every
    M, some groups with fewer)."""
    vals = rng.integers(-128, 127, (rows, k))
    vals = np.where(vals >= 0, vals + 1, vals).astype(np.int8)
    if pattern == "zero":
        return np.zeros((rows, k), np.int8)
    if pattern == "dense":
        return vals
    if pattern in ("weight", "rows"):
        keep = rng.random((rows, k)) < density
        if pattern == "rows":
            keep[::3] = False
    elif pattern.startswith("block:"):
        r, c = (int(v) for v in pattern[6:].split("x"))
        keep = rng.random((-(-rows // r), -(-k // c))) < density
        keep = np.repeat(np.repeat(keep, r, axis=0), c, axis=1)[:rows, :k]
    elif pattern.startswith("nm:"):
        n, m = (int(v) for v in pattern[3:].split(":"))
        g = -(-k // m)
        keep = np.zeros((rows, g, m), bool)
        pick = np.argsort(rng.random((rows, g, m)), axis=2)[:, :, :n]
        np.put_along_axis(keep, pick, rng.random((rows, g, n)) < 0.9, axis=2)
        keep = keep.reshape(rows, g * m)[:, :k]
    else:
        raise ValueError(pattern)
    return np.where(keep, vals, 0).astype(np.int8)


def add_layer(g: Graph, op_type: str, x: str, w: np.ndarray, attrs: dict, rng, per_channel: bool, out: str,
              bias: bool = True, hint=None) -> str:
    """Append an int8 FULLY_CONNECTED / CONV_2D layer with weights w ([out, in] / OHWI); its output
    scale is calibrated so that few outputs saturate."""
    s_in = float(g.t(x).quant.scale[0])
    nch = w.shape[0]
    if per_channel:
        ws = rng.uniform(0.002, 0.02, nch).astype(np.float32)
        wq = qp(ws, np.zeros(nch, np.int64), 0)
    else:
        ws = np.float32(rng.uniform(0.002, 0.02))
        wq = qp([ws])
    wn = g.const(f"{out}_w", w, wq)
    if hint is not None:
        g.t(wn).meta["sparsity"] = hint
    inputs = [x, wn]
    if bias:
        bs = np.atleast_1d(np.float32(s_in) * np.asarray(ws, np.float32)).astype(np.float32)
        bq = QuantParams(bs, np.zeros(bs.size, np.int64), 0 if per_channel else None)
        inputs.append(g.const(f"{out}_b", rng.integers(-3000, 3000, nch).astype(np.int32), bq))
    op = Op(op_type, inputs, [out], default_attrs(op_type, **attrs), name=f"{out}_op")
    shape = opreg.get(op_type).shape(op, [g.t(i) for i in inputs])[0]
    g.add_tensor(Tensor(out, shape, "int8", quant=qp(s_in * 0.5, int(rng.integers(-10, 10)))))
    g.ops.append(op)
    _calibrate(g, out)
    return out


FC = {"fused_activation_function": "NONE", "keep_num_dims": True}
FC_RELU = {"fused_activation_function": "RELU", "keep_num_dims": True}

# (out, pattern, density, activation) per FC layer, input 37 wide; "side" adds an all-zero FC branch
FC_LAYERS = {
    "c": [(29, "weight", 0.3, FC_RELU), (300, "rows", 0.2, FC), (23, "weight", 0.05, FC), (11, "weight", 0.4, FC)],
    "d": [(290, "weight", 0.7, FC_RELU), (270, "weight", 0.4, FC), (261, "weight", 0.25, FC),
          (40, "weight", 0.1, FC), (300, "rows", 0.05, FC), (17, "weight", 0.02, FC)],
    "b": [(29, "block:8x1", 0.4, FC), (40, "block:4x1", 0.3, FC_RELU), (30, "block:4x4", 0.3, FC),
          (22, "block:2x2", 0.4, FC), (48, "block:16x1", 0.5, FC), (19, "block:1x16", 0.5, FC)],
    "n": [(29, "nm:2:4", 0, FC_RELU), (21, "nm:1:4", 0, FC), (30, "nm:2:4", 0, FC), (13, "nm:1:4", 0, FC)],
}


def fc_chain(fmt: str, seed: int = 0, in_zp: int = 7) -> Graph:
    """FULLY_CONNECTED chain (3 batch rows, keep_num_dims) over FC_LAYERS[fmt], per-channel and per-tensor
    scales alternating, one layer without bias, plus an all-zero-weight branch from the first layer."""
    rng = np.random.default_rng(seed)
    g = Graph(name=f"sparse_fc_{fmt}")
    g.add_tensor(Tensor("x", (1, 3, 37), "int8", quant=qp(0.05, in_zp)))
    x, n_in, first = "x", 37, None
    for i, (n_out, pattern, density, attrs) in enumerate(FC_LAYERS[fmt]):
        w = sparse_matrix(n_out, n_in, pattern, density, rng)
        x = add_layer(g, "FULLY_CONNECTED", x, w, attrs, rng, i % 2 == 0, f"f{i}", bias=i != 1,
                      hint=pattern if i % 3 == 0 else None)
        first = first or x
        n_in = n_out
    n1 = g.t(first).shape[-1]
    side = add_layer(g, "FULLY_CONNECTED", first, np.zeros((5, n1), np.int8), FC, rng, True, "zero")
    g.inputs, g.outputs = ["x"], [x, side]
    return g


# (filter OHWI, attrs, pattern, density) per conv layer, input (1, 9, 11, 8)
CONV_LAYERS = {
    "weight": [((12, 3, 3, 8), S(1, 1, act="RELU"), "weight", 0.3),
               ((13, 2, 3, 12), S(2, 1, "VALID", dilation_w_factor=2), "rows", 0.15),
               ((16, 1, 1, 13), S(1, 1), "weight", 0.15),
               ((9, 3, 3, 16), S(1, 2, "SAME", dilation_h_factor=2), "weight", 0.05),
               ((7, 1, 1, 9), S(2, 2), "weight", 0.6)],
    "b": [((12, 3, 3, 8), S(1, 1, act="RELU"), "block:4x4", 0.3),
          ((13, 2, 3, 12), S(2, 1, "VALID", dilation_w_factor=2), "block:1x4", 0.3),
          ((16, 1, 1, 13), S(1, 1), "block:4x1", 0.4),
          ((9, 3, 3, 16), S(1, 2, "SAME", dilation_h_factor=2), "block:2x8", 0.2),
          ((7, 1, 1, 9), S(2, 2), "block:8x1", 0.5)],
    "n": [((12, 3, 3, 8), S(1, 1, act="RELU"), "nm:2:4", 0),
          ((13, 2, 3, 12), S(2, 1, "VALID", dilation_w_factor=2), "nm:1:4", 0),
          ((16, 1, 1, 13), S(1, 1), "nm:2:4", 0),
          ((9, 3, 3, 16), S(1, 2, "SAME", dilation_h_factor=2), "nm:1:4", 0),
          ((7, 1, 1, 9), S(2, 2), "nm:2:4", 0)],
}


def conv_chain(layers: str, seed: int = 1, in_zp: int = -4) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph(name=f"sparse_conv_{layers}")
    g.add_tensor(Tensor("x", (1, 9, 11, 8), "int8", quant=qp(0.03, in_zp)))
    x = "x"
    for i, (shape, attrs, pattern, density) in enumerate(CONV_LAYERS[layers]):
        w = sparse_matrix(shape[0], int(np.prod(shape[1:])), pattern, density, rng).reshape(shape)
        x = add_layer(g, "CONV_2D", x, w, attrs, rng, i % 2 == 0, f"c{i}", bias=i != 2)
    g.inputs, g.outputs = ["x"], [x]
    return g


def kernels_of(g: Graph, variants=("ref",)) -> dict:
    return emit_c(g, variants=variants).kernels


def chosen(g: Graph, formats=sw.FORMATS) -> dict[str, str]:
    """op name -> the encoding label the backend picks (or "dense")."""
    out = {}
    for op in g.ops:
        zp = int(g.t(op.inputs[0]).quant.zero_point[0])
        p = sw.plan(op.type, g.t(op.inputs[1]), g.t(op.inputs[2]) if len(op.inputs) > 2 else None, zp, formats)
        out[op.name] = p.weights.label if p else "dense"
    return out


@pytest.fixture
def only(monkeypatch):
    """Restrict the backend to some formats (each kernel gets exercised)."""
    def restrict(*formats):
        monkeypatch.setattr(sw, "FORMATS", tuple(formats))
    return restrict


# ------------------------------------------------------------------------------------------------
# 1. encodings

PATTERNS = [("weight", d) for d in (0.02, 0.1, 0.3, 0.7)] + [("rows", 0.2), ("zero", 0), ("dense", 1),
                                                               ("block:1x4", 0.3), ("block:4x4", 0.2),
                                                               ("block:16x1", 0.4), ("nm:2:4", 0), ("nm:1:4", 0)]


@pytest.mark.parametrize("shape", [(13, 37), (6, 300), (5, 1), (17, 8)], ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("pattern,density", PATTERNS, ids=[f"{p}@{d}" for p, d in PATTERNS])
def test_roundtrip(shape, pattern, density):
    rng = np.random.default_rng(hash((shape, pattern)) % 2 ** 32)
    m = sparse_matrix(*shape, pattern, density, rng)
    sizes = sw.format_sizes(m, pattern)
    assert {k[0] for k in sizes} >= {"c", "d"}
    if pattern.startswith("nm:2") or pattern in ("zero",):
        assert ("n", 2) in sizes
    if pattern.startswith("block:") and shape[1] % int(pattern.split("x")[1]) == 0:
        r, c = (int(v) for v in pattern[6:].split("x"))
        assert ("b", r, c) in sizes
    for key, nbytes in sizes.items():
        s = sw.encode(m, key)
        assert s.nbytes == nbytes, key
        assert np.array_equal(sw.decode(s), m), key


def test_delta_layout():
    """Fillers and word packing by hand: row [5 at 0, 0 x 20, -3 at 21], 4-bit fields: fields 0, 15
    (a filler at column 16, value 0), 4 -> one word 0x4F0; 2-bit fields: 0, 3, 3, 3, 3, 3 (fillers at 4,
    8, 12, 16, 20), 0."""
    m = np.zeros((1, 22), np.int8)
    m[0, 0], m[0, 21] = 5, -3
    s = sw.encode(m, ("d", 4))
    assert s.index.tolist() == [0x4F0] and s.values.tolist() == [5, 0, -3] and s.counts.tolist() == [3]
    s = sw.encode(m, ("d", 2))
    assert s.values.tolist() == [5, 0, 0, 0, 0, 0, -3]
    assert s.index.tolist() == [0 | 3 << 2 | 3 << 4 | 3 << 6 | 3 << 8 | 3 << 10 | 0 << 12]


def test_nm_layout():
    """2:4 positions, 4 per byte from bit 0; a group with one non-zero is filled with position 0."""
    m = np.array([[0, 7, 0, -2, 0, 0, 9, 0, 1]], np.int8)
    s = sw.encode(m, ("n", 2))
    assert s.values.tolist() == [7, -2, 9, 0, 1, 0]
    assert s.index.tolist() == [1 | 3 << 2 | 2 << 4 | 0 << 6, 0]


def test_unencodable_shapes_are_errors():
    from edgec.errors import EdgecError
    m = np.ones((2, 6), np.int8)
    with pytest.raises(EdgecError):
        sw.encode(m, ("b", 1, 4))            # 4 does not divide 6
    with pytest.raises(EdgecError):
        sw.encode(m, ("n", 2))               # dense groups are not 2:4
    with pytest.raises(EdgecError):
        sw.encode(np.ones((1, 300), np.int8), ("c", 8))


# ------------------------------------------------------------------------------------------------
# 2. generated C, bit for bit

@pytest.mark.parametrize("fmt", ["c", "d", "b", "n"])
def test_fc_exact(only, fmt):
    only(fmt)
    g = fc_chain(fmt, seed=ord(fmt))
    picks = chosen(g, (fmt,))
    assert all(v.startswith({"c": "csr", "d": "delta", "b": "block", "n": "nm"}[fmt]) for v in picks.values()), picks
    if fmt == "c":
        assert {"csr8", "csr16"} <= set(picks.values()), picks
    if fmt == "d":
        assert {f"delta{b}" for b in sw.DELTA_BITS} == set(picks.values()), picks
    if fmt == "n":
        assert {"nm1:4", "nm2:4"} <= set(picks.values()), picks
    ks = kernels_of(g)
    assert set(ks) == {f"ec_fully_connected_s8sp{fmt}"}, ks
    check_c_exact(g, n=N)


@pytest.mark.parametrize("layers,fmt", [("weight", "c"), ("weight", "d"), ("b", "b"), ("n", "n")])
def test_conv_exact(only, layers, fmt):
    only(fmt)
    g = conv_chain(layers, seed=ord(fmt))
    ks = set(kernels_of(g))
    assert f"ec_conv2d_s8sp{fmt}" in ks and ks <= {f"ec_conv2d_s8sp{fmt}", "ec_conv2d_s8"}, ks
    assert sum(v != "dense" for v in chosen(g, (fmt,)).values()) >= 4
    check_c_exact(g, n=N)


def test_free_choice_exact():
    """Unrestricted choice over a mixed FC chain and the conv chain: several formats, zero point -128."""
    g = fc_chain("d", seed=5, in_zp=-128)
    picks = set(chosen(g).values())
    assert len({p[:3] for p in picks}) >= 2, picks
    check_c_exact(g, n=N)
    g = conv_chain("b", seed=6, in_zp=-128)
    assert any(k.startswith("ec_conv2d_s8sp") for k in kernels_of(g))
    check_c_exact(g, n=N)


# ------------------------------------------------------------------------------------------------
# 3. when sparse is used, and what is stored

ARRAY = re.compile(r"static const (\w+) (\w+)\[(\d+)\]")
CSIZE = {"uint8_t": 1, "int8_t": 1, "uint16_t": 2, "int16_t": 2, "int32_t": 4, "uint32_t": 4, "float": 4}


def emitted(project) -> dict[str, int]:
    """symbol -> bytes of model.c's const arrays"""
    src = project.files["model.c"].decode()
    return {name: int(n) * CSIZE[ct] for ct, name, n in ARRAY.findall(src)}


def weight_bytes(arrays: dict[str, int]) -> int:
    """Bytes of weights, indices, counts and biases (mult / shift tables are the same either way)."""
    return sum(v for k, v in arrays.items() if not k.endswith(("_mult", "_shift")) and not k.startswith("p_"))


def one_fc(w: np.ndarray, bits: int = 8, scheme: str = "uniform", hint=None, bias=True) -> Graph:
    rng = np.random.default_rng(3)
    g = Graph(name="one_fc")
    g.add_tensor(Tensor("x", (1, w.shape[1]), "int8", quant=qp(0.05, 3)))
    y = add_layer(g, "FULLY_CONNECTED", "x", w, {"fused_activation_function": "NONE"}, rng, True, "y",
                  bias=bias, hint=hint)
    t = g.t(g.ops[0].inputs[1])
    t.quant = QuantParams(t.quant.scale, t.quant.zero_point, 0, bits, scheme)
    g.inputs, g.outputs = ["x"], [y]
    return g


def test_dense_when_not_smaller():
    rng = np.random.default_rng(0)
    for pattern, density in [("dense", 1), ("weight", 0.8)]:
        g = one_fc(sparse_matrix(20, 50, pattern, density, rng))
        assert chosen(g)["y_op"] == "dense"
        assert set(kernels_of(g)) == {"ec_fully_connected_s8"}
    g = one_fc(sparse_matrix(20, 1, "weight", 0.5, rng))          # one column: nothing to gain
    assert set(kernels_of(g)) == {"ec_fully_connected_s8"}
    # weights that are not constants (a graph input) cannot be re-encoded: dense kernel, whatever they hold
    g = one_fc(sparse_matrix(20, 50, "weight", 0.05, rng))
    w = g.tensors["y_w"]
    g.tensors["y_w"] = Tensor("y_w", w.shape, "int8", quant=w.quant)
    g.inputs = ["x", "y_w"]
    assert set(kernels_of(g)) == {"ec_fully_connected_s8"}
    g = conv_chain("weight")
    for op in g.ops:
        t = g.t(op.inputs[1])
        t.data[...] = sparse_matrix(t.shape[0], int(np.prod(t.shape[1:])), "dense", 1, rng).reshape(t.shape)
    assert set(kernels_of(g)) == {"ec_conv2d_s8"}


def test_lowbit_baseline():
    """Sparse competes with the packed low-bit form: int4 at 50 % stays packed, at 95 % goes sparse."""
    rng = np.random.default_rng(1)
    w = np.clip(sparse_matrix(24, 64, "weight", 0.5, rng), -7, 7)
    assert set(kernels_of(one_fc(w, 4))) == {"ec_fully_connected_s8w4"}
    w = np.clip(sparse_matrix(24, 64, "weight", 0.05, rng), -7, 7)
    g = one_fc(w, 4)
    assert set(kernels_of(g)) <= {"ec_fully_connected_s8spc", "ec_fully_connected_s8spd"}
    check_c_exact(g, n=N)


def test_stored_arrays_are_the_encoding():
    """model.c holds the chosen encoding and the folded bias, no dense copy; sizes as planned."""
    rng = np.random.default_rng(2)
    w = sparse_matrix(40, 120, "weight", 0.1, rng)
    g = one_fc(w)
    p = sw.plan("FULLY_CONNECTED", g.t("y_w"), g.t("y_b"), 3)
    arrays = emitted(emit_c(g))
    assert not any(k.endswith(("y_w", "y_b")) for k in arrays), arrays
    assert weight_bytes(arrays) == p.sparse_bytes == p.weights.nbytes + 4 * 40
    assert p.dense_bytes == 40 * 120 + 4 * 40
    # no bias and in_zp == 0: no folded bias array either
    g = one_fc(w, bias=False)
    g.t("x").quant = qp(0.05, 0)
    arrays = emitted(emit_c(g))
    assert not any(k.endswith("_spb") for k in arrays) and weight_bytes(arrays) == sw.plan(
        "FULLY_CONNECTED", g.t("y_w"), None, 0).weights.nbytes
    check_c_exact(g, n=N)


def test_hint_is_only_a_hint():
    """A wrong or numeric meta["sparsity"] neither breaks nor changes the result; a block hint outside
    the default shapes is tried."""
    rng = np.random.default_rng(4)
    w = sparse_matrix(12, 60, "block:1x12", 0.3, rng)
    base = chosen(one_fc(w))["y_op"]
    for hint in ["nm:2:4", 0.9, "block:3x3", "garbage"]:
        assert chosen(one_fc(w, hint=hint))["y_op"] == base
    assert chosen(one_fc(w, hint="block:1x12"))["y_op"] == "block1x12"
    g = one_fc(w, hint="block:1x12")
    assert set(kernels_of(g)) == {"ec_fully_connected_s8spb"}
    check_c_exact(g, n=N)


# ------------------------------------------------------------------------------------------------
# 4. LeNet-300-100 at 90 % sparsity: bytes, and the host's kernels

def lenet(density: float = 0.1, seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph(name="lenet_300_100")
    g.add_tensor(Tensor("x", (1, 784), "int8", quant=qp(1 / 255, -128)))
    x, n_in = "x", 784
    for i, (n_out, act) in enumerate([(300, "RELU"), (100, "RELU"), (10, "NONE")]):
        w = sparse_matrix(n_out, n_in, "weight", density, rng)
        x = add_layer(g, "FULLY_CONNECTED", x, w, {"fused_activation_function": act}, rng, True, f"fc{i}")
        n_in = n_out
    g.inputs, g.outputs = ["x"], [x]
    return g


def lenet_bytes(g: Graph, variants) -> tuple[int, int]:
    """(sparse bytes in model.c, dense int8 weight + bias bytes)"""
    sparse = weight_bytes(emitted(emit_c(g, variants=variants)))
    dense = sum(g.t(n).nbytes for op in g.ops for n in op.inputs[1:])
    return sparse, dense


def test_lenet_bytes():
    g = lenet()
    sparse, dense = lenet_bytes(g, ("cmsis", "ref"))
    print(f"\nLeNet-300-100 at 90 %: dense int8 {dense} B, sparse {sparse} B (Cortex-M), {dense / sparse:.2f}x; "
          f"formats {chosen(g)}")
    assert dense / sparse >= 5.0
    host, _ = lenet_bytes(g, ("opt", "ref"))
    print(f"host (opt: CSR / blocks): {host} B, {dense / host:.2f}x vs int8 (opt's dense weights are int16)")
    assert host < dense / 3


def test_host_kernels_exact():
    """The host target (opt first) gets the opt CSR kernel for unstructured and the opt block kernel for
    blocks; delta and N:M fall back to dense there."""
    g = lenet(seed=1)
    assert set(kernels_of(g, ("opt", "ref"))) <= {"ec_fully_connected_s8spc", "ec_fully_connected_s8spb"}
    assert set(emit_c(g, variants=("opt", "ref")).kernels.values()) == {"opt"}
    check_c_exact(g, n=N, variants=("opt", "ref"))
    g = fc_chain("b", seed=9)
    ks = emit_c(g, variants=("opt", "ref")).kernels
    assert ks.get("ec_fully_connected_s8spb") == "opt", ks
    check_c_exact(g, n=N, variants=("opt", "ref"))
    g = conv_chain("b", seed=10)
    ks = emit_c(g, variants=("opt", "ref")).kernels
    assert ks.get("ec_conv2d_s8spb") == "opt", ks
    check_c_exact(g, n=N, variants=("opt", "ref"))
