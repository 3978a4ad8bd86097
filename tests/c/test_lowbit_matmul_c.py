"""Packed low-bit GATHER tables and BATCH_MATMUL constant rhs in generated C (ir/ops/matmul.py,
kernels/include/ec_lowbit_matmul.h): tables and rhs that follow docs/quantization.md (int8 containers, per-tensor
scale, bits < 8 or a per-tensor kmeans codebook) and docs/quantization.md (meta group_size / group_mult) run in C
bit for bit equal to the reference interpreter and to TFLite Micro (which runs the int8 containers), for
every scheme and width, with and without group multipliers, over odd row lengths (fields straddling bytes),
repeated and edge indices, adj_x / adj_y and broadcast batch dims; the arrays model.c holds are the packed
rows (no int8 copy), as many bytes as Tensor.nbytes where rows need no padding; a small embedding model
runs exactly on an emulated Cortex-M4 too."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from ccheck import check_c_exact, run_c
from edgec.backends.c import pack_weights as pw
from edgec.backends.c.emit import CTYPES, emit_c
from edgec.errors import EdgecError
from edgec.ir import Graph, Op, QuantParams, Tensor
from edgec.ir import ops as opreg
from edgec.ir.interpret import run_batch
from edgec.ir.ops import default_attrs
from test_lowbit_c import _write, emitted_arrays, levels, qp
from toolchain import need

N = 100
GRID_MAX = {"uniform": lambda b: (1 << (b - 1)) - 1, "ternary": lambda b: 1, "binary": lambda b: 1}


def lowbit_values(rng, case, rows_shape, group: int | None, row_books: bool = False):
    """(values [R, K] in row order, codebook ([n], or [R, n] with row_books) or None, group multipliers
    [R, G] or None)."""
    scheme, bits, n = case
    q, cb = levels(scheme, bits, n, rows_shape, 0 if row_books else None, rng)
    if not group:
        return q, cb, None
    r, k = rows_shape
    top = 127 // GRID_MAX[scheme](bits)
    mult = rng.integers(1, top + 1, (r, -(-k // group))).astype(np.uint8)
    v = q.astype(np.int64) * np.repeat(mult.astype(np.int64), group, axis=1)[:, :k]
    assert np.abs(v).max() <= 127
    return v.astype(np.int8), cb, mult


def lowbit_const(g: Graph, name: str, values, scale: float, case, cb, mult, group) -> str:
    scheme, bits, _ = case
    name = g.const(name, values, qp([scale], 0, None, bits, scheme))
    t = g.t(name)
    if cb is not None:
        t.meta["codebook"] = cb
    if mult is not None:
        t.meta.update(group_size=group, group_mult=mult)
    return name


def rhs_rows(b: np.ndarray, adj_y: bool) -> np.ndarray:
    """docs/quantization.md's BATCH_MATMUL rhs rows: [matrices * N, K]."""
    return (b if adj_y else np.swapaxes(b, -1, -2)).reshape(-1, b.shape[-1] if adj_y else b.shape[-2])


def rows_to_rhs(rows: np.ndarray, shape, adj_y: bool) -> np.ndarray:
    if adj_y:
        return rows.reshape(shape)
    t = tuple(shape[:-2]) + (shape[-1], shape[-2])
    return np.swapaxes(rows.reshape(t), -1, -2).copy()


class Side:
    """Independent cases side by side in one graph (one build for all), like tests/c/test_matmul_c.py."""

    def __init__(self, name: str, seed: int = 0):
        self.g = Graph(name=name)
        self.rng = np.random.default_rng(seed)
        self.n = 0
        self.bounds: list[int | None] = []     # per graph input: index bound, or None (int8 data)
        self.packed: dict[str, str] = {}       # op name -> weight tensor name (expected packed)

    def _out(self, op, q):
        (shape,) = opreg.get(op.type).shape(op, [self.g.t(n) for n in op.inputs])
        self.g.add_tensor(Tensor(op.outputs[0], shape, "int8", quant=q))
        self.g.ops.append(op)
        self.g.outputs.append(op.outputs[0])

    def gather(self, table, idx, case, group=None, axis=0, row_books=False):
        k = self.n = self.n + 1
        rows = (table[0], int(np.prod(table[1:], dtype=np.int64)))
        v, cb, mult = lowbit_values(self.rng, case, rows, group, row_books)
        scale = float(self.rng.uniform(0.01, 0.05))
        t = lowbit_const(self.g, f"g{k}_table", v.reshape(table), scale, case, cb, mult, group)
        self.g.add_tensor(Tensor(f"g{k}_idx", idx, "int32"))
        self.g.inputs.append(f"g{k}_idx")
        self.bounds.append(table[axis])
        op = Op("GATHER", [t, f"g{k}_idx"], [f"g{k}_y"], default_attrs("GATHER", axis=axis), name=f"g{k}_gather")
        self._out(op, QuantParams(scale, 0))
        if axis == 0:
            self.packed[op.name] = t

    def bmm(self, a, b, case, group=None, adj_x=False, adj_y=False):
        k = self.n = self.n + 1
        qa = QuantParams(0.05, int(self.rng.integers(-9, 9)))
        self.g.add_tensor(Tensor(f"b{k}_a", a, "int8", quant=qa))
        self.g.inputs.append(f"b{k}_a")
        self.bounds.append(None)
        kk = b[-1] if adj_y else b[-2]
        rows_shape = (int(np.prod(b, dtype=np.int64)) // kk, kk)
        v, cb, mult = lowbit_values(self.rng, case, rows_shape, group)
        wv = rows_to_rhs(v, b, adj_y)
        assert np.array_equal(rhs_rows(wv, adj_y), v)
        sb = 0.02
        w = lowbit_const(self.g, f"b{k}_w", wv, sb, case, cb, mult, group)
        rms = float(np.sqrt(np.mean(v.astype(np.float64) ** 2))) or 1.0
        s_out = 0.05 * sb * np.sqrt(kk) * rms * 74 / 30        # outputs ~30 LSB std, few saturate
        op = Op("BATCH_MATMUL", [f"b{k}_a", w], [f"b{k}_y"],
                default_attrs("BATCH_MATMUL", adj_x=adj_x, adj_y=adj_y), name=f"b{k}_bmm")
        self._out(op, QuantParams(s_out, int(self.rng.integers(-10, 10))))
        self.packed[op.name] = w

    def inputs(self, n=N, seed=1):
        """Random indices (sample 0 all first rows, 1 all last rows, 2 alternating: edges and repeats)
        and int8 lhs values."""
        rng = np.random.default_rng(seed)
        xs = []
        for name, bound in zip(self.g.inputs, self.bounds):
            shape = (n,) + self.g.t(name).shape[1:]
            if bound is None:
                xs.append(rng.integers(-128, 128, shape).astype(np.int8))
                continue
            x = rng.integers(0, bound, shape).astype(np.int32)
            x[0] = 0
            x[1] = bound - 1
            x[2].reshape(-1)[:] = np.resize([0, bound - 1], x[2].size)
            xs.append(x)
        return xs


U4, U3, U2 = ("uniform", 4, None), ("uniform", 3, None), ("uniform", 2, None)
TER, BIN = ("ternary", 2, None), ("binary", 1, None)
P4, P3 = ("pow2", 4, None), ("pow2", 3, None)
KM16, KM5 = ("kmeans", 4, 16), ("kmeans", 3, 5)


def gather_side() -> Side:
    s = Side("lowbit_gather", seed=3)
    # (table shape, index shape, case, group size): odd row lengths put fields across bytes
    for table, idx, case, group in [
            ((37, 13), (1, 5), U4, None), ((20, 7), (1, 2, 3), U3, None), ((16, 9), (1, 4), U2, None),
            ((11, 5), (1, 7), TER, None), ((9, 11), (1, 3), BIN, None), ((10, 6), (1, 4), P4, None),
            ((8, 5), (1, 3), P3, None), ((12, 10), (1, 6), KM16, None), ((15, 7), (1, 2, 2), KM5, None),
            ((6, 3, 5), (1, 4), U4, None), ((40, 14), (1, 1), U4, None), ((7, 16), (1, 5), BIN, None),
            ((10, 13), (1, 5), U4, 4), ((9, 11), (1, 3), TER, 5), ((7, 19), (1, 4), BIN, 8),
            ((8, 10), (1, 3, 2), U3, 3), ((6, 9), (1, 4), U2, 16), ((12, 2, 7), (1, 3), U4, 7),
            ((14, 16), (1, 3), U4, 8)]:
        s.gather(table, idx, case, group)
    s.gather((12, 10), (1, 5), ("kmeans", 2, 4), row_books=True)   # a codebook per row (lut_stride 4)
    s.gather((3, 12, 5), (1, 4), U4, axis=1)      # axis 1: the int8 container path (ec_gather_x)
    return s


def bmm_side() -> Side:
    s = Side("lowbit_bmm", seed=4)
    # (lhs, rhs [const], case, group, adj_x, adj_y)
    for a, b, case, group, ax, ay in [
            ((1, 3, 7), (7, 9), U4, None, False, False),
            ((1, 5, 6), (4, 6), TER, None, False, True),
            ((1, 2, 3, 9), (2, 9, 5), U3, 4, False, False),          # batch dims, groups with a tail
            ((1, 9, 4), (9, 7), P4, None, True, False),              # adj_x
            ((1, 9, 4), (3, 9), KM5, None, True, True),              # adj_x and adj_y, per-tensor codebook
            ((1, 2, 1, 3, 11), (3, 11, 4), U2, None, False, False),  # lhs broadcasts over 3 rhs matrices
            ((1, 3, 4, 11), (1, 11, 6), BIN, 3, False, False),       # rhs broadcasts over 3 lhs matrices
            ((1, 3, 13), (3, 13), BIN, None, False, True),
            ((1, 2, 300), (300, 7), U4, 32, False, False),           # long contraction, groups of 32
            ((1, 4, 10), (10, 9), KM16, None, False, False),
            ((1, 2, 5, 12), (2, 7, 12), TER, 5, False, True)]:
        s.bmm(a, b, case, group, ax, ay)
    return s


def embedding_model(seed: int = 7) -> Graph:
    """indices [1, 6] -> GATHER from a grouped int4 table [50, 13] -> BATCH_MATMUL by a grouped ternary
    [13, 9] -> FULLY_CONNECTED int4 per channel (9 -> 5, RELU): an embedding feeding dense layers."""
    rng = np.random.default_rng(seed)
    g = Graph(name="embed_fc")
    g.add_tensor(Tensor("x", (1, 6), "int32"))
    v, _, mult = lowbit_values(rng, U4, (50, 13), 4)
    t = lowbit_const(g, "table", v, 0.03, U4, None, mult, 4)
    g.add_tensor(Tensor("emb", (1, 6, 13), "int8", quant=qp(0.03, 0)))
    g.ops.append(Op("GATHER", [t, "x"], ["emb"], default_attrs("GATHER"), name="embed"))
    w, _, mult = lowbit_values(rng, TER, (9, 13), 3)
    wn = lowbit_const(g, "proj_w", rows_to_rhs(w, (13, 9), False), 0.02, TER, None, mult, 3)
    g.add_tensor(Tensor("h", (1, 6, 9), "int8", quant=qp(0.12, -3)))
    g.ops.append(Op("BATCH_MATMUL", ["emb", wn], ["h"], default_attrs("BATCH_MATMUL"), name="proj"))
    fw, _ = levels("uniform", 4, None, (5, 9), 0, rng)
    ws = rng.uniform(0.01, 0.03, 5).astype(np.float32)
    fwn = g.const("fc_w", fw, qp(ws, np.zeros(5, np.int64), 0, 4, "uniform"))
    fb = g.const("fc_b", rng.integers(-500, 500, 5).astype(np.int32),
                 QuantParams(np.float32(g.t("h").quant.scale[0]) * ws, np.zeros(5, np.int64), 0))
    g.add_tensor(Tensor("y", (1, 6, 5), "int8", quant=qp(0.03, -20)))
    g.ops.append(Op("FULLY_CONNECTED", ["h", fwn, fb], ["y"],
                    default_attrs("FULLY_CONNECTED", fused_activation_function="RELU", keep_num_dims=True),
                    name="fc"))
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def embedding_inputs(n=N, seed=2):
    x = np.random.default_rng(seed).integers(0, 50, (n, 6)).astype(np.int32)
    x[0], x[1] = 0, 49
    return [x]


_cache: dict = {}


def side(name: str) -> Side:
    if name not in _cache:
        _cache[name] = {"gather": gather_side, "bmm": bmm_side}[name]()
    return _cache[name]


# ------------------------------------------------------------------------------------------------
# exactness

def _assert_packed(g: Graph, packed: dict, kernel: str):
    """Every expected op runs `kernel` from packed arrays; no int8 copy of its weight is emitted."""
    project = emit_c(g)
    arrays = emitted_arrays(project)
    assert kernel in project.kernels, project.kernels
    for op_name, w in packed.items():
        assert f"{op_name}_wpacked" in arrays, (op_name, sorted(arrays))
        assert w not in arrays, f"{w}: an int8 copy was emitted"
    return project, arrays


def test_gather_exact():
    s = side("gather")
    project, _ = _assert_packed(s.g, s.packed, "ec_gather_s8wN")
    assert "ec_gather_x" in project.kernels          # the axis-1 table
    check_c_exact(s.g, inputs=s.inputs())


def test_bmm_exact():
    s = side("bmm")
    project, _ = _assert_packed(s.g, s.packed, "ec_batch_matmul_s8wN")
    assert "ec_batch_matmul_s8" not in project.kernels, project.kernels
    check_c_exact(s.g, inputs=s.inputs())


def test_embedding_model_exact():
    g = embedding_model()
    ks = emit_c(g).kernels
    assert {"ec_gather_s8wN", "ec_batch_matmul_s8wN", "ec_fully_connected_s8w4"} <= set(ks), ks
    check_c_exact(g, inputs=embedding_inputs())


def test_gather_out_of_range_index_gives_the_zero_value():
    """As ec_gather_x: an index outside the table (an error in LiteRT / TFLM) gives the output zero point."""
    s = Side("oob", seed=5)
    s.gather((6, 11), (1, 4), U3, group=4)
    s.g.t("g1_y").quant = QuantParams(float(s.g.t("g1_y").quant.scale[0]), -5)
    assert "ec_gather_s8wN" in emit_c(s.g).kernels
    (y,) = run_c(s.g, [np.array([[2, -1, 6, 5]], np.int32)])
    table = s.g.t("g1_table").data
    np.testing.assert_array_equal(y[0, 0], table[2])
    np.testing.assert_array_equal(y[0, 3], table[5])
    assert (y[0, 1:3] == -5).all()


# ------------------------------------------------------------------------------------------------
# storage

def _row_bytes(t: Tensor, k: int) -> int:
    fb = pw.kmeans_bits(t.meta["codebook"].shape[-1]) if t.quant.scheme == "kmeans" else t.quant.bits
    return (k * fb + 7) // 8


@pytest.mark.parametrize("name", ["gather", "bmm"])
def test_weight_bytes(name):
    """model.c holds one padded row of codes per table row / rhs column, plus R * G multiplier bytes:
    exactly Tensor.nbytes where rows need no padding, and always less than the int8 container."""
    s = side(name)
    _, arrays = _assert_packed(s.g, s.packed, "ec_gather_s8wN" if name == "gather" else "ec_batch_matmul_s8wN")
    exact = packed_total = int8_total = 0
    for op_name, w in s.packed.items():
        t = s.g.t(w)
        op = next(o for o in s.g.ops if o.name == op_name)
        rows = t.data.reshape(t.shape[0], -1) if name == "gather" else rhs_rows(t.data, op.attrs.get("adj_y"))
        r, k = rows.shape
        assert arrays[f"{op_name}_wpacked"] == r * _row_bytes(t, k), op_name
        mult = t.meta.get("group_mult")
        if mult is not None:
            assert arrays[f"{op_name}_wmult"] == mult.size == r * -(-k // t.meta["group_size"])
        else:
            assert f"{op_name}_wmult" not in arrays
        got = arrays[f"{op_name}_wpacked"] + arrays.get(f"{op_name}_wmult", 0)
        assert t.nbytes <= got < t.size, (op_name, t.nbytes, got)
        if (k * t.quant.bits) % 8 == 0:              # no row padding
            assert got == t.nbytes, (op_name, got, t.nbytes)
            exact += 1
        packed_total += got
        int8_total += t.size
    assert exact >= 2
    print(f"\n{name}: {len(s.packed)} weights, int8 containers {int8_total} B -> packed {packed_total} B "
          f"(incl. multipliers)")


def test_only_packs_when_it_saves_bytes():
    """A table too small to gain from packing (its decode table would cost more), and 8-bit codes of a
    256-entry codebook, stay on the int8 kernels."""
    s = Side("nosave", seed=6)
    s.gather((3, 1), (1, 2), U4)
    s.gather((20, 6), (1, 2), ("kmeans", 8, 200))
    ks = emit_c(s.g).kernels
    assert set(ks) == {"ec_gather_x"}, ks
    check_c_exact(s.g, inputs=s.inputs(n=20))


def test_bad_group_multipliers_are_user_errors():
    s = Side("badgroup", seed=8)
    s.gather((6, 10), (1, 2), U4, group=4)
    t = s.g.t("g1_table")
    t.meta["group_mult"] = t.meta["group_mult"][:, :2]          # G must be ceil(10 / 4) = 3
    with pytest.raises(EdgecError, match="g1_table"):
        emit_c(s.g)
    t.meta["group_mult"] = np.full((6, 3), 2, np.uint8)         # odd values are not multiples of 2
    t.data = t.data | 1
    with pytest.raises(EdgecError, match="g1_table"):
        emit_c(s.g)


# ------------------------------------------------------------------------------------------------
# cross builds

KROOT = Path(__file__).resolve().parents[2] / "kernels"


@pytest.mark.parametrize("cc,flags", [("gcc", []), ("clang", []),
                                      ("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb"]),
                                      ("arm-none-eabi-gcc", ["-mcpu=cortex-m0plus", "-mthumb"]),
                                      ("aarch64-linux-gnu-gcc", ["-march=armv8-a"])],
                         ids=["gcc", "clang", "m4", "m0plus", "aarch64"])
def test_kernels_compile_warning_free(tmp_path, cc, flags):
    need(cc)
    for name in ("ec_gather_s8wN", "ec_batch_matmul_s8wN"):
        r = subprocess.run([cc, *flags, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", f"-I{KROOT / 'include'}",
                            "-c", str(KROOT / "ref" / f"{name}.c"), "-o", str(tmp_path / "k.o")],
                           capture_output=True, text=True)
        assert r.returncode == 0, f"{name}:\n{r.stderr}"


# ------------------------------------------------------------------------------------------------
# emulated Cortex-M4

def test_cortex_m4_embedding_model(tmp_path):
    """The embedding model cross-built for Cortex-M4 (ref kernels) runs in the emulator == numpy."""
    need("arm-none-eabi-gcc", emulator=True)
    from edgec.run.emulate import Emulator, build_elf
    g = embedding_model()
    project = emit_c(g)
    _write(project, tmp_path)
    x_t, y_t = g.t("x"), g.t(g.outputs[0])
    harness = (f'#include "model.h"\nuint8_t arena[{max(project.arena_size, 16)}] __attribute__((aligned(16)));\n'
               f"{CTYPES[x_t.dtype]} x_buf[{x_t.size}];\nint8_t y_buf[{y_t.size}];\n"
               "int run_model(void) { return model_invoke(arena, x_buf, y_buf); }\n")
    sources = [("harness.c", harness)] + [tmp_path / rel for rel in project.files if rel.endswith(".c")]
    emu = Emulator(build_elf(sources, "cortex-m4", include_dirs=[tmp_path, tmp_path / "kernels" / "include"]),
                   "cortex-m4")
    (xs,) = embedding_inputs()
    want = run_batch(g, [xs])[0].reshape(N, -1)
    counts = []
    for k, x in enumerate(xs):
        emu.write("x_buf", x.tobytes())
        assert emu.call("run_model") == 0
        counts.append(emu.instructions)
        got = np.frombuffer(emu.read("y_buf", y_t.size), np.int8)
        assert np.array_equal(got, want[k]), f"input {k}: {int((got != want[k]).sum())} values differ"
    print(f"\n[cortex-m4] embedding model: {np.mean(counts):.0f} instructions / invoke")
