"""Group-quantized weights in the C backend (docs/quantization.md; backends/c/pack_weights.py, kernels *_s8g in
kernels/include/ec_lowbit.h): int8 containers holding v = q * m with meta["group_size"] / ["group_mult"]
are stored as packed q plus one uint8 multiplier per group, and the generated C equals TFLite Micro (which
runs the plain int8 containers) and the reference interpreter bit for bit -- FULLY_CONNECTED, CONV_2D
(padding, strides, dilations) and DEPTHWISE_CONV_2D, group sizes 1, 7, 16, 32, K and > K, uniform 4/3/2
bits, ternary, binary, per-channel and per-tensor scales, odd shapes, 100 random inputs each. Packing
round-trips; tensors breaking the invariant are rejected naming the tensor; the bytes model.c stores are
Tensor.nbytes (packed + multipliers). The Cortex-M DSP and NEON variants of the FC kernel (4-bit fast path)
run cross-built (emulated Cortex-M4 / M0+, qemu-aarch64, emulated Cortex-A53) bit-exact, and their
instruction counts against ref are printed."""
from __future__ import annotations

import re
import subprocess

import numpy as np
import pytest

from ccheck import check_c_exact
from edgec.backends.c import pack_weights as pw
from edgec.backends.c.emit import emit_c
from edgec.errors import EdgecError
from edgec.ir import Graph, Op, Tensor
from edgec.ir import ops as opreg
from edgec.ir.interpret import run_batch
from edgec.ir.ops import default_attrs
from edgec.profile.report import layer_rows
from test_lowbit_c import AXIS, S, _calibrate, qp
from test_lowbit_isa import _diff, run_emulated, run_qemu
from toolchain import need

N = 100
KROOT = __import__("pathlib").Path(__file__).resolve().parents[2] / "kernels"
KERNELS = ["ref/ec_fully_connected_s8g.c", "ref/ec_conv2d_s8g.c", "ref/ec_depthwise_conv2d_s8g.c",
           "cmsis/ec_fully_connected_s8g.c", "neon/ec_fully_connected_s8g.c"]

CASES = [("uniform", 4), ("uniform", 3), ("uniform", 2), ("ternary", 2), ("binary", 1)]
CASE_IDS = [f"{s}{b}" for s, b in CASES]


# ------------------------------------------------------------------------------------------------
# group-quantized tensors, built by hand exactly per docs/quantization.md

def q_limit(scheme: str, bits: int) -> int:
    return (1 << (bits - 1)) - 1 if scheme == "uniform" else 1


def random_q(scheme: str, bits: int, shape, rng) -> np.ndarray:
    if scheme == "binary":
        return rng.choice(np.array([-1, 1]), shape)
    lim = q_limit(scheme, bits)
    return rng.integers(-lim, lim + 1, shape)


def from_rows(op_type: str, rows: np.ndarray, shape) -> np.ndarray:
    """weight_rows' inverse: [R, K] rows -> the IR layout."""
    return rows.T.reshape(shape) if op_type == "DEPTHWISE_CONV_2D" else rows.reshape(shape)


def group_tensor(name: str, op_type: str, shape, scheme: str, bits: int, n: int, per_channel: bool, rng,
                 mmax: int | None = None) -> Tensor:
    """A weight of `shape` with random q on the scheme's grid and random multipliers 1..mmax (default: the
    largest with |q * m| <= 127), data = v = q * m."""
    axis = AXIS[op_type]
    r = shape[axis]
    k = int(np.prod(shape)) // r
    g = -(-k // n)
    q = random_q(scheme, bits, (r, k), rng)
    mmax = mmax or 127 // q_limit(scheme, bits)
    m = rng.integers(1, mmax + 1, (r, g)).astype(np.uint8)
    v = q * np.repeat(m.astype(np.int64), n, axis=1)[:, :k]
    scale = rng.uniform(0.002, 0.02, r if per_channel else 1).astype(np.float32) / np.sqrt(mmax)
    t = Tensor(name, shape, "int8", from_rows(op_type, v, shape).astype(np.int8),
               qp(scale, np.zeros(scale.size, np.int64), axis if per_channel else None, bits, scheme))
    t.meta["group_size"] = n
    t.meta["group_mult"] = m
    return t


def add_group_layer(g: Graph, op_type: str, x: str, w_shape, attrs: dict, rng, case, n: int, per_channel: bool,
                    out: str, bias: bool = True) -> str:
    """Append one layer with a group-quantized weight (output scale calibrated as in test_lowbit_c)."""
    s_in = float(g.t(x).quant.scale[0])
    wt = group_tensor(g.unique_name(f"{out}_w"), op_type, w_shape, *case, n, per_channel, rng)
    g.add_tensor(wt)
    inputs = [x, wt.name]
    nch = w_shape[AXIS[op_type]]
    if bias:
        bs = (np.float32(s_in) * np.broadcast_to(wt.quant.scale, (nch,))).astype(np.float32)
        bs = bs if per_channel else bs[:1]
        bq = qp(bs, np.zeros(bs.size, np.int64), 0 if per_channel else None)
        inputs.append(g.const(f"{out}_b", rng.integers(-3000, 3000, nch).astype(np.int32), bq))
    op = Op(op_type, inputs, [out], default_attrs(op_type, **attrs), name=f"{out}_op")
    shape = opreg.get(op_type).shape(op, [g.t(i) for i in inputs])[0]
    g.add_tensor(Tensor(out, shape, "int8", quant=qp(s_in, int(rng.integers(-10, 10)))))
    g.ops.append(op)
    _calibrate(g, out)
    return out


FC = {"fused_activation_function": "NONE", "keep_num_dims": True}


def fc_chain(case, per_channel: bool, seed: int = 0) -> Graph:
    """FC chain, 3 batch rows: K 70 (N 32: groups 32, 32, 6), 53 (N 7), 40 (N 16), 33 (N 1), 37 (N = K),
    41 (N 64 > K)."""
    rng = np.random.default_rng(seed)
    g = Graph(name="group_fc")
    dims = [70, 53, 40, 33, 37, 41, 11]
    sizes = [32, 7, 16, 1, 37, 64]
    g.add_tensor(Tensor("x", (1, 3, dims[0]), "int8", quant=qp(0.05, 7)))
    x = "x"
    for k, (a, b) in enumerate(zip(dims, dims[1:])):
        attrs = {**FC, "fused_activation_function": "RELU" if k == 2 else "NONE"}
        x = add_group_layer(g, "FULLY_CONNECTED", x, (b, a), attrs, rng, case, sizes[k], per_channel, f"f{k}",
                            bias=k != 3)
    g.inputs, g.outputs = ["x"], [x]
    return g


def conv_chain(case, per_channel: bool, seed: int = 0) -> Graph:
    """CONV_2D then DEPTHWISE layers over padding, strides, dilations and group sizes 1, 7, 16, 32, K, > K
    (groups crossing taps, kernel rows and skipped out-of-image taps)."""
    rng = np.random.default_rng(seed)
    g = Graph(name="group_conv")
    g.add_tensor(Tensor("x", (1, 13, 15, 5), "int8", quant=qp(0.03, -4)))
    conv = [((7, 3, 3, 5), S(1, 1, act="RELU"), 7),                                   # K 45 -> 13 x 15
            ((13, 2, 3, 7), S(2, 1, "VALID", dilation_w_factor=2), 16),                # K 42 -> 6 x 11
            ((6, 1, 1, 13), S(1, 1, act="RELU6"), 13),                                 # K 13: N = K
            ((9, 3, 3, 6), S(1, 2, "SAME", dilation_h_factor=2), 32),                  # K 54 -> 6 x 6
            ((8, 3, 2, 9), S(1, 1, "SAME"), 1),                                        # K 54
            ((10, 2, 2, 8), S(1, 1, "SAME"), 40)]                                      # K 32: N > K
    dw = [((1, 3, 3, 20), S(1, 1, act="RELU", depth_multiplier=2), 7),                 # K 9
          ((1, 5, 7, 20), S(1, 1, "SAME", depth_multiplier=1), 16),               # K 35: row-crossing
          ((1, 2, 3, 20), S(1, 1, "SAME", depth_multiplier=1, dilation_h_factor=2, dilation_w_factor=2), 1),
          ((1, 3, 3, 20), S(2, 2, "VALID", depth_multiplier=1), 9),                    # N = K -> 2 x 2
          ((1, 3, 3, 20), S(1, 1, "SAME", depth_multiplier=1), 32)]               # N > K
    x = "x"
    for k, (shape, attrs, n) in enumerate(conv):
        x = add_group_layer(g, "CONV_2D", x, shape, attrs, rng, case, n, per_channel, f"c{k}", bias=k != 1)
    for k, (shape, attrs, n) in enumerate(dw):
        x = add_group_layer(g, "DEPTHWISE_CONV_2D", x, shape, attrs, rng, case, n, per_channel, f"d{k}",
                            bias=k != 2)
    g.inputs, g.outputs = ["x"], [x]
    return g


def kernels_used(g: Graph, variants=("ref",)) -> dict:
    return emit_c(g, variants=variants).kernels


# ------------------------------------------------------------------------------------------------
# bit-exact on the host: C == TFLite Micro == reference

@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_fc(case, per_channel, no_sparse):
    g = fc_chain(case, per_channel, seed=CASES.index(case))
    assert set(kernels_used(g)) == {"ec_fully_connected_s8g"}
    check_c_exact(g, n=N)


@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_conv_depthwise(case, per_channel, no_sparse):
    g = conv_chain(case, per_channel, seed=10 + CASES.index(case))
    assert set(kernels_used(g)) == {"ec_conv2d_s8g", "ec_depthwise_conv2d_s8g"}
    check_c_exact(g, n=N)


def test_default_storage():
    """Whatever storage the C backend picks per layer by default (group kernels, or sparse int8 where
    smaller), the output is exact, and the group kernels serve the layers with larger groups."""
    g = conv_chain(("binary", 1), False, seed=14)
    assert {"ec_conv2d_s8g", "ec_depthwise_conv2d_s8g"} <= set(kernels_used(g))
    check_c_exact(g, n=N)


def test_mult_matters(no_sparse):
    """The multipliers reach the kernel: the same packed q with all multipliers 1 gives other outputs."""
    g = fc_chain(("uniform", 4), True, seed=3)
    xs = [np.random.default_rng(1).integers(-128, 128, (N, 3, 70)).astype(np.int8)]
    from ccheck import run_c
    before = run_c(g, xs)[0]
    w = g.t("f0_w")
    rows = pw.group_levels(w, pw.weight_rows("FULLY_CONNECTED", w.data))[0]
    w.data = rows.astype(np.int8)
    w.meta["group_mult"] = np.ones_like(w.meta["group_mult"])
    after = run_c(g, xs)[0]
    assert not np.array_equal(before, after)
    assert np.array_equal(after, run_batch(g, xs)[0])


# ------------------------------------------------------------------------------------------------
# packing in numpy

OP_SHAPES = [("FULLY_CONNECTED", (5, 13)), ("CONV_2D", (3, 3, 2, 7)), ("DEPTHWISE_CONV_2D", (1, 3, 3, 6))]


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_pack_roundtrip(case):
    rng = np.random.default_rng(5)
    scheme, bits = case
    for op_type, shape in OP_SHAPES:
        r = shape[AXIS[op_type]]
        k = int(np.prod(shape)) // r
        for n in (1, 2, 5, 7, k, k + 3):
            t = group_tensor("w", op_type, shape, scheme, bits, n, True, rng)
            p = pw.pack_tensor(t, op_type)
            assert p.kind == "group" and p.group_size == n and p.field_bits == bits
            assert p.row_bytes == (k * bits + 7) // 8 and p.data.size == r * p.row_bytes
            assert np.array_equal(p.mult, t.meta["group_mult"]) and p.mult.dtype == np.uint8
            assert p.nbytes == p.data.size + r * -(-k // n)
            assert np.array_equal(pw.unpack_tensor(p, op_type, shape), t.data)
            # the stored codes are q itself (v / m), as the kernels decode them
            q = pw.unpack_codes(p.data.reshape(r, p.row_bytes), bits, k)
            q = np.where(q > 0, 1, -1) if scheme == "binary" else np.where(q >= 1 << (bits - 1), q - (1 << bits), q)
            m = np.repeat(p.mult.astype(np.int64), n, axis=1)[:, :k]
            assert np.array_equal(q * m, pw.weight_rows(op_type, t.data))
            assert np.abs(q).max() <= q_limit(scheme, bits)


def test_pack_layout():
    """Bytes of a 2 x 5 int3 weight in groups of 2: q codes packed as lowbit.md says, multipliers row-major."""
    q = np.array([[1, -1, 3, 0, -3], [2, 2, -2, 1, 0]])
    m = np.array([[2, 5, 7], [1, 3, 40]], np.uint8)
    v = q * np.repeat(m.astype(np.int64), 2, axis=1)[:, :5]
    t = Tensor("w", (2, 5), "int8", v.astype(np.int8), qp([1.0], bits=3))
    t.meta.update(group_size=2, group_mult=m)
    p = pw.pack_tensor(t, "FULLY_CONNECTED")
    # code j at bits [3j, 3j + 3), from bit 0 of the row's first byte; byte values read MSB first:
    # row 0 codes 001 111 011 000 101 -> byte 0 = (11)(111)(001), byte 1 = pad(101)(000)(0)
    # row 1 codes 010 010 110 001 000 -> byte 0 = (10)(010)(010), byte 1 = pad(000)(001)(1)
    assert p.data.tolist() == [0b11_111_001, 0b0_101_000_0, 0b10_010_010, 0b0_000_001_1]
    assert p.mult.reshape(-1).tolist() == [2, 5, 7, 1, 3, 40]
    assert np.array_equal(pw.unpack(p), v)


def by_hand(name: str, q, m, n: int, scheme: str = "uniform", bits: int = 4) -> Tensor:
    """An FC weight [R, K] with levels q and multipliers m (groups of n): data = q * m."""
    q, m = np.asarray(q), np.asarray(m, np.uint8)
    v = q * np.repeat(m.astype(np.int64), n, axis=1)[:, :q.shape[1]]
    t = Tensor(name, v.shape, "int8", v.astype(np.int8), qp([1.0], bits=bits, scheme=scheme))
    t.meta.update(group_size=n, group_mult=m)
    return t


def _bad(t: Tensor, match: str, op_type: str = "FULLY_CONNECTED") -> None:
    with pytest.raises(EdgecError, match=rf"weight {re.escape(t.name)} .*{match}"):
        pw.pack_tensor(t, op_type)


def test_rejects_invariant_violations():
    q = np.array([[1, 2, 3, -1, 0, 7, -7, 4, 1, 2], [0, -1, 1, 2, -3, 5, 6, -2, 3, 1]])
    m = np.array([[3, 5, 2, 4], [1, 1, 2, 9]])
    ok = by_hand("dense_7/kernel", q, m, 3)
    assert pw.pack_tensor(ok, "FULLY_CONNECTED").kind == "group"
    t = by_hand("dense_7/kernel", q, m, 3)
    t.data[1, 9] += 1                                        # 9 * 1 + 1: not a multiple of group 3's 9
    _bad(t, "row 1 element 9 holds 10, not q \\* 9")
    t = by_hand("dense_7/kernel", q, m, 3)
    t.data[0, 0] = 24                                        # 8 * 3: q = 8 is off the uniform 4-bit grid
    _bad(t, "row 0 element 0")
    _bad(by_hand("tern", np.where(q > 1, 2, q), m, 3, "ternary", 2), "row 0 element 1")
    _bad(by_hand("bin", np.where(q == 0, 1, np.sign(q)) * np.where(np.arange(10) == 5, 0, 1), m, 3, "binary", 1),
         "row 0 element 5")
    for key, value, match in [("group_mult", m[:, :3].astype(np.uint8), "shape \\[2, 3\\], expected \\[2, 4\\]"),
                              ("group_mult", np.zeros((2, 4), np.uint8), "1..255"),
                              ("group_mult", np.full((2, 4), 2.0), "1..255"),
                              ("group_mult", np.full((2, 4), 256), "1..255"),
                              ("group_size", 0, "group_size"), ("group_size", None, "group_size"),
                              ("group_size", 2.5, "group_size"), ("group_size", True, "group_size")]:
        t = by_hand("fc1/w", q, m, 3)
        t.meta[key] = value
        _bad(t, match)
    for scheme, bits in [("pow2", 4), ("uniform", 8), ("uniform", 1), ("ternary", 3), ("kmeans", 4)]:
        t = by_hand("fc2/w", np.sign(q), m, 3, scheme, bits)
        _bad(t, "group scales need")
    # depthwise rows are channels: tap (1, 1) of channel 2 is element 4 of row 2
    rng = np.random.default_rng(9)
    b = group_tensor("conv/binary", "DEPTHWISE_CONV_2D", (1, 3, 3, 4), "binary", 1, 4, True, rng)
    b.data[0, 1, 1, 2] = 0                                   # binary q is never 0
    _bad(b, "row 2 element 4", "DEPTHWISE_CONV_2D")
    # ... and the C emitter reports it as a user error naming the tensor
    g = fc_chain(("uniform", 4), True, seed=3)
    g.t("f1_w").meta["group_mult"] = np.zeros_like(g.t("f1_w").meta["group_mult"])
    with pytest.raises(EdgecError, match="f1_w"):
        emit_c(g)


# ------------------------------------------------------------------------------------------------
# weight bytes: what model.c stores == Tensor.nbytes (packed + multipliers)

ARRAY = re.compile(r"static const (\w+) (\w+)\[(\d+)\]")
CSIZE = {"uint8_t": 1, "int8_t": 1, "int32_t": 4, "float": 4}


def weight_arrays(g: Graph) -> dict[str, int]:
    src = emit_c(g).files["model.c"].decode()
    return {name: int(n) * CSIZE[ct] for ct, name, n in ARRAY.findall(src)}


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_weight_bytes(case, no_sparse):
    """Row lengths whose bits fill whole bytes: model.c's packed + multiplier arrays == Tensor.nbytes
    exactly, == the report's per-layer weight bytes; elsewhere they differ by the row padding only."""
    rng = np.random.default_rng(4)
    g = Graph(name="bytes")
    g.add_tensor(Tensor("x", (1, 8, 8, 8), "int8", quant=qp(0.03, -4)))
    # K: 72, 16, 256, 24 (whole bytes at every width), then 5 (padded rows)
    x = add_group_layer(g, "CONV_2D", "x", (16, 3, 3, 8), S(1, 1, act="RELU"), rng, case, 32, True, "c1")
    x = add_group_layer(g, "DEPTHWISE_CONV_2D", x, (1, 4, 4, 16), S(2, 2, depth_multiplier=1), rng, case, 8,
                        False, "d1")
    op = Op("RESHAPE", [x, g.const("shape", np.array([1, 4 * 4 * 16], np.int32))], ["flat"],
            default_attrs("RESHAPE"), name="flatten")
    g.add_tensor(Tensor("flat", (1, 256), "int8", quant=g.t(x).quant))
    g.ops.append(op)
    x = add_group_layer(g, "FULLY_CONNECTED", "flat", (24, 256), {"fused_activation_function": "NONE"}, rng,
                        case, 32, True, "f1")
    x = add_group_layer(g, "FULLY_CONNECTED", x, (5, 24), {"fused_activation_function": "NONE"}, rng,
                        case, 7, True, "f2")
    x = add_group_layer(g, "FULLY_CONNECTED", x, (3, 5), {"fused_activation_function": "NONE"}, rng,
                        case, 2, False, "f3")
    g.inputs, g.outputs = ["x"], [x]
    arrays = weight_arrays(g)
    rows = {r["name"]: r for r in layer_rows(g)}
    bits, padded = case[1], 0
    for op in [o for o in g.ops if o.type in AXIS]:
        w = g.t(op.inputs[1])
        r = w.shape[AXIS[op.type]]
        k = w.size // r
        packed, mult = arrays[f"{op.name}_wpacked"], arrays[f"{op.name}_wgmult"]
        assert mult == w.meta["group_mult"].size == r * -(-k // w.meta["group_size"])
        assert packed == r * ((k * bits + 7) // 8)
        assert not any(name.startswith(op.name) and name.endswith("_w") for name in arrays)   # no int8 copy
        assert w.nbytes == (w.size * bits + 7) // 8 + mult
        assert rows[op.name]["weight_bytes"] - (g.t(op.inputs[2]).nbytes if len(op.inputs) > 2 else 0) == w.nbytes
        assert pw.pack_tensor(w, op.type).nbytes == packed + mult
        if (k * bits) % 8 == 0:
            assert packed + mult == w.nbytes, op.name
        else:   # rows padded to whole bytes: less than one byte per row
            assert 0 <= packed + mult - w.nbytes < r, op.name
            padded += 1
    assert padded == 1
    total = sum(v for n, v in arrays.items() if n.endswith(("_wpacked", "_wgmult")))
    print(f"\n{case}: int8 {sum(g.t(o.inputs[1]).size for o in g.ops if o.type in AXIS)} B -> "
          f"packed + multipliers {total} B")
    check_c_exact(g, n=N)


# ------------------------------------------------------------------------------------------------
# kernels: warning-free everywhere; Cortex-M4 (DSP), M0+ (portable), AArch64 (NEON)

@pytest.mark.parametrize("cc,flags", [("gcc", []), ("clang", []),
                                      ("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb"]),
                                      ("arm-none-eabi-gcc", ["-mcpu=cortex-m0plus", "-mthumb"]),
                                      ("aarch64-linux-gnu-gcc", ["-march=armv8-a"])],
                         ids=["gcc", "clang", "m4", "m0plus", "aarch64"])
def test_compiles_warning_free(tmp_path, cc, flags):
    need(cc)
    for rel in KERNELS:
        r = subprocess.run([cc, *flags, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", f"-I{KROOT / 'include'}",
                            "-c", str(KROOT / rel), "-o", str(tmp_path / "k.o")], capture_output=True, text=True)
        assert r.returncode == 0, f"{rel}:\n{r.stderr}"


def isa_graph(seed: int = 41) -> Graph:
    """FC chain for the ISA variants: int4 over group sizes 32, 7 (odd group starts), 16, 1, K, > K, odd row
    lengths (8-, 4- and 16-steps, scalar tails), 3 batch rows, per-channel / per-tensor; then ternary and
    binary layers (the portable path of the same files)."""
    rng = np.random.default_rng(seed)
    g = Graph(name="group_isa")
    dims = [70, 53, 40, 33, 37, 41, 23, 19, 11]
    sizes = [32, 7, 16, 1, 37, 64, 8, 5]
    cases = [("uniform", 4)] * 6 + [("ternary", 2), ("binary", 1)]
    g.add_tensor(Tensor("x", (1, 3, dims[0]), "int8", quant=qp(0.05, 7)))
    x = "x"
    for k, (a, b) in enumerate(zip(dims, dims[1:])):
        x = add_group_layer(g, "FULLY_CONNECTED", x, (b, a), FC, rng, cases[k], sizes[k], k % 2 == 0, f"f{k}",
                            bias=k != 4)
    g.inputs, g.outputs = ["x"], [x]
    return g


_cache: dict = {}


def isa_case():
    if not _cache:
        g = isa_graph()
        x_t = g.t("x")
        xs = np.random.default_rng(7).integers(-128, 128, (N,) + x_t.shape[1:]).astype(np.int8)
        _cache["isa"] = (g, xs, run_batch(g, [xs])[0].reshape(N, -1))
    return _cache["isa"]


KERNEL = "ec_fully_connected_s8g"


def test_cortex_m4(tmp_path, no_sparse):
    """cmsis variant == ref variant == numpy on the emulated Cortex-M4, 100 inputs."""
    need("arm-none-eabi-gcc", emulator=True)
    g, xs, want = isa_case()
    got, n_isa, ks = run_emulated(tmp_path, g, ("cmsis", "ref"), "cortex-m4", xs)
    assert ks[KERNEL] == "cmsis", ks
    ref, n_ref, ks = run_emulated(tmp_path, g, ("ref",), "cortex-m4", xs)
    assert ks[KERNEL] == "ref", ks
    assert np.array_equal(ref, want), "ref: " + _diff(ref, want)
    assert np.array_equal(got, want), "cmsis: " + _diff(got, want)
    print(f"\n[cortex-m4] isa chain: ref {n_ref:.0f} vs cmsis {n_isa:.0f} instructions / invoke ({n_ref / n_isa:.2f}x)")
    assert n_isa < n_ref


def test_cortex_m0plus_portable(tmp_path, no_sparse):
    """Without the DSP extension the cmsis file runs its portable loop: still exact."""
    need("arm-none-eabi-gcc", emulator=True)
    g, xs, want = isa_case()
    got, _, ks = run_emulated(tmp_path, g, ("cmsis", "ref"), "cortex-m0plus", xs[:20])
    assert ks[KERNEL] == "cmsis", ks
    assert np.array_equal(got, want[:20]), "cmsis on M0+: " + _diff(got, want[:20])


def test_aarch64(tmp_path, no_sparse):
    """neon variant == numpy under qemu (100 inputs) and == ref in the emulated Cortex-A53."""
    need("aarch64-linux-gnu-gcc", "qemu-aarch64", emulator=True)
    g, xs, want = isa_case()
    got, ks = run_qemu(tmp_path, g, ("neon",), xs)
    assert ks[KERNEL] == "neon", ks
    assert np.array_equal(got, want), "neon (qemu): " + _diff(got, want)
    ref_q, _ = run_qemu(tmp_path, g, ("ref",), xs)
    assert np.array_equal(ref_q, want), "ref (qemu): " + _diff(ref_q, want)
    sub = xs[:20]
    got_e, n_isa, _ = run_emulated(tmp_path, g, ("neon",), "cortex-a53", sub)
    ref_e, n_ref, _ = run_emulated(tmp_path, g, ("ref",), "cortex-a53", sub)
    assert np.array_equal(got_e, want[:20]), "neon (emulator): " + _diff(got_e, want[:20])
    assert np.array_equal(ref_e, want[:20]), "ref (emulator): " + _diff(ref_e, want[:20])
    print(f"\n[cortex-a53] isa chain: ref {n_ref:.0f} vs neon {n_isa:.0f} instructions / invoke ({n_ref / n_isa:.2f}x)")
    assert n_isa < n_ref


def single_fc(n_group: int | None, k: int = 256, out: int = 64, seed: int = 51, grouped: bool = True) -> Graph:
    """One int4 FC [out, k] in groups of n_group; grouped=False: the same q without groups (ec_..._s8w4)."""
    rng = np.random.default_rng(seed)
    g = Graph(name="fc1")
    g.add_tensor(Tensor("x", (1, k), "int8", quant=qp(0.05, 3)))
    y = add_group_layer(g, "FULLY_CONNECTED", "x", (out, k), {"fused_activation_function": "NONE"}, rng,
                        ("uniform", 4), n_group or k, True, "f")
    if not grouped:
        w = g.t("f_w")
        w.data = pw.group_levels(w, w.data)[0].astype(np.int8)
        del w.meta["group_size"], w.meta["group_mult"]
    g.inputs, g.outputs = ["x"], [y]
    return g


@pytest.mark.parametrize("core,variant", [("cortex-m4", "cmsis"), ("cortex-a53", "neon")])
def test_instruction_counts(tmp_path, core, variant, no_sparse):
    """Instructions per invoke of one int4 FC 256 -> 64 in groups of 16 / 32 / 128: ISA variant vs ref (must
    be fewer), and beside them the same q without groups (ec_fully_connected_s8w4, both variants): the
    cost of the multipliers."""
    need("arm-none-eabi-gcc" if variant == "cmsis" else "aarch64-linux-gnu-gcc", emulator=True)
    variants = (variant, "ref") if variant == "cmsis" else (variant,)
    xs = np.random.default_rng(2).integers(-128, 128, (3, 256)).astype(np.int8)
    lines = []
    for n_group in (16, 32, 128):
        g = single_fc(n_group)
        want = run_batch(g, [xs])[0].reshape(3, -1)
        got, n_isa, ks = run_emulated(tmp_path / f"g{n_group}", g, variants, core, xs)
        assert ks == {KERNEL: variant}, ks
        ref, n_ref, _ = run_emulated(tmp_path / f"g{n_group}", g, ("ref",), core, xs)
        assert np.array_equal(got, want) and np.array_equal(ref, want)
        assert n_isa < n_ref
        lines.append(f"  s8g N={n_group:<4d} ref {n_ref:9.0f}  {variant} {n_isa:8.0f}  ({n_ref / n_isa:.2f}x)")
    g = single_fc(None, grouped=False)
    _, n_isa, ks = run_emulated(tmp_path / "w4", g, variants, core, xs)
    assert ks == {"ec_fully_connected_s8w4": variant}, ks
    _, n_ref, _ = run_emulated(tmp_path / "w4", g, ("ref",), core, xs)
    lines.append(f"  s8w4 (no groups) ref {n_ref:9.0f}  {variant} {n_isa:8.0f}  ({n_ref / n_isa:.2f}x)")
    print(f"\n[{core}] int4 FC 256 -> 64, instructions / invoke:\n" + "\n".join(lines))
