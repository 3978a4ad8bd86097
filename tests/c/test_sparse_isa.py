"""ISA variants of the sparse kernels (kernels/include/ec_sparse.h): kernels/cmsis/ (Cortex-M DSP),
kernels/neon/ (arm64) and kernels/opt/ (hosts; exactness in test_sparse_c.py).

Per format (CSR, delta, blocks, N:4 -- each forced in turn), one graph of CONV_2D layers (3x3 SAME, 2x3
VALID dilated, a 3x3 over 32 channels whose 288-long rows need 16-bit columns, a strided 1x1) and per-pixel
FULLY_CONNECTED layers runs cross-built: Cortex-M4 in the emulator (cmsis == ref == numpy bit for bit on
100 inputs (ref: 20), cmsis executing fewer instructions), Cortex-M0+ (the cmsis files' portable path), AArch64
under qemu (neon == numpy on 100 inputs) and in the emulator (Cortex-A53: neon == ref, fewer
instructions). The acceptance figure: a 784 -> 300 FULLY_CONNECTED at 90 % unstructured sparsity runs in
>= 2x fewer Cortex-M4 instructions than the dense cmsis kernel (benchmarks/sparse_kernels.py reports
the full set)."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from edgec.backends.c import sparse_weights as sw
from edgec.backends.c.emit import emit_c
from edgec.ir import Graph, Tensor
from edgec.ir.interpret import run_batch
from test_lowbit_c import S, qp
from test_lowbit_isa import KROOT, _diff, run_emulated, run_qemu
from test_sparse_c import add_layer, sparse_matrix
from toolchain import need

N = 100
FORMATS = ["c", "d", "b", "n"]

# (op, weight shape OHWI / [out, in], attrs) and per format the layer patterns (pattern, density)
LAYERS = [("CONV_2D", (12, 3, 3, 8), S(1, 1, act="RELU")),
          ("CONV_2D", (32, 2, 3, 12), S(2, 1, "VALID", dilation_w_factor=2)),
          ("CONV_2D", (10, 3, 3, 32), S(1, 1, "SAME")),
          ("CONV_2D", (16, 1, 1, 10), S(2, 2, act="RELU6")),
          ("FULLY_CONNECTED", (13, 16), {"fused_activation_function": "NONE", "keep_num_dims": True}),
          ("FULLY_CONNECTED", (9, 13), {"fused_activation_function": "RELU", "keep_num_dims": True})]
PATTERNS = {
    "c": [("weight", 0.3), ("rows", 0.2), ("weight", 0.05), ("weight", 0.3), ("weight", 0.3), ("weight", 0.3)],
    "d": [("weight", 0.6), ("weight", 0.3), ("weight", 0.05), ("weight", 0.2), ("rows", 0.3), ("weight", 0.4)],
    "b": [("block:4x4", 0.3), ("block:1x8", 0.3), ("block:2x16", 0.2), ("block:4x1", 0.4), ("block:1x4", 0.4),
          ("block:8x1", 0.4)],
    "n": [("nm:2:4", 0), ("nm:1:4", 0), ("nm:2:4", 0), ("nm:1:4", 0), ("nm:2:4", 0), ("nm:1:4", 0)],
}


def isa_graph(fmt: str, seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph(name=f"sparse_isa_{fmt}")
    g.add_tensor(Tensor("x", (1, 6, 7, 8), "int8", quant=qp(0.03, -4)))
    x = "x"
    for i, ((op_type, shape, attrs), (pattern, density)) in enumerate(zip(LAYERS, PATTERNS[fmt])):
        w = sparse_matrix(shape[0], int(np.prod(shape[1:])), pattern, density, rng).reshape(shape)
        x = add_layer(g, op_type, x, w, attrs, rng, i % 2 == 0, f"l{i}", bias=i != 4)
    g.inputs, g.outputs = ["x"], [x]
    return g


_cache: dict = {}


def case(fmt: str):
    """(graph, kernels, inputs, numpy outputs), the graph's layers all in format `fmt`."""
    if fmt not in _cache:
        g = isa_graph(fmt, seed=ord(fmt))
        xs = np.random.default_rng(7).integers(-128, 128, (N,) + g.t("x").shape[1:]).astype(np.int8)
        _cache[fmt] = (g, xs, run_batch(g, [xs])[0].reshape(N, -1))
    g, xs, want = _cache[fmt]
    kernels = {f"ec_conv2d_s8sp{fmt}", f"ec_fully_connected_s8sp{fmt}"}
    return g, kernels, xs, want


@pytest.fixture
def only(monkeypatch):
    def restrict(fmt):
        monkeypatch.setattr(sw, "FORMATS", (fmt,))
    return restrict


# ------------------------------------------------------------------------------------------------

def kernel_files(*variants) -> list[str]:
    fmts = {"opt": ("c", "b")}
    return [str(KROOT / v / f"ec_{op}_s8sp{f}.c") for v in variants for op in ("fully_connected", "conv2d")
            for f in fmts.get(v, FORMATS)]


# Each compiler builds the files the other tests do not (their portable fallbacks, and clang's warnings).
@pytest.mark.parametrize("cc,flags,variants", [
    ("gcc", [], ("cmsis", "neon")), ("clang", [], ("ref", "opt", "cmsis", "neon")),
    ("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb"], ("opt", "neon")),
    ("aarch64-linux-gnu-gcc", ["-march=armv8-a"], ("opt", "cmsis"))], ids=["gcc", "clang", "m4", "aarch64"])
def test_compiles_warning_free(tmp_path, cc, flags, variants):
    need(cc)
    r = subprocess.run([cc, *flags, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", f"-I{KROOT / 'include'}",
                        "-c", *kernel_files(*variants)], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_graphs_use_the_kernels(only):
    for fmt in FORMATS:
        only(fmt)
        g, kernels, _, _ = case(fmt)
        ks = emit_c(g, variants=("cmsis", "ref")).kernels
        assert ks == {k: "cmsis" for k in kernels}, ks
        assert emit_c(g, variants=("neon", "ref")).kernels == {k: "neon" for k in kernels}


@pytest.mark.parametrize("fmt", FORMATS)
def test_cortex_m4(tmp_path, only, fmt):
    """cmsis == ref == numpy bit for bit; cmsis executes fewer instructions."""
    need("arm-none-eabi-gcc", emulator=True)
    only(fmt)
    g, kernels, xs, want = case(fmt)
    got, n_isa, ks = run_emulated(tmp_path, g, ("cmsis", "ref"), "cortex-m4", xs)
    assert set(ks.values()) == {"cmsis"}, ks
    ref, n_ref, _ = run_emulated(tmp_path, g, ("ref",), "cortex-m4", xs[:20])   # ref: exact on the host too
    assert np.array_equal(ref, want[:20]), "ref: " + _diff(ref, want[:20])
    assert np.array_equal(got, want), "cmsis: " + _diff(got, want)
    print(f"\n[cortex-m4] {fmt}: ref {n_ref:.0f} vs cmsis {n_isa:.0f} instructions / invoke ({n_ref / n_isa:.2f}x)")
    assert n_isa < n_ref


@pytest.mark.parametrize("fmt", FORMATS)
def test_cortex_m0plus_portable(tmp_path, only, fmt):
    """Without the DSP extension the cmsis files run the reference cores: still exact."""
    need("arm-none-eabi-gcc", emulator=True)
    only(fmt)
    g, kernels, xs, want = case(fmt)
    got, _, ks = run_emulated(tmp_path, g, ("cmsis", "ref"), "cortex-m0plus", xs[:10])
    assert set(ks.values()) == {"cmsis"}, ks
    assert np.array_equal(got, want[:10]), "cmsis on M0+: " + _diff(got, want[:10])


@pytest.mark.parametrize("fmt", FORMATS)
def test_aarch64(tmp_path, only, fmt):
    """neon == numpy under qemu on 100 inputs; neon == ref in the emulator (Cortex-A53), fewer instructions."""
    need("aarch64-linux-gnu-gcc", "qemu-aarch64", emulator=True)
    only(fmt)
    g, kernels, xs, want = case(fmt)
    got, ks = run_qemu(tmp_path, g, ("neon",), xs)
    assert set(ks.values()) == {"neon"}, ks
    assert np.array_equal(got, want), "neon (qemu): " + _diff(got, want)
    got_e, n_isa, _ = run_emulated(tmp_path, g, ("neon",), "cortex-a53", xs[:10])
    ref_e, n_ref, _ = run_emulated(tmp_path, g, ("ref",), "cortex-a53", xs[:10])
    assert np.array_equal(ref_e, want[:10]), "ref (emulator): " + _diff(ref_e, want[:10])
    assert np.array_equal(got_e, want[:10]), "neon (emulator): " + _diff(got_e, want[:10])
    print(f"\n[cortex-a53] {fmt}: ref {n_ref:.0f} vs neon {n_isa:.0f} instructions / invoke ({n_ref / n_isa:.2f}x)")
    assert n_isa < n_ref


def test_m4_fc_90_percent_vs_dense(tmp_path):
    """Acceptance: 784 -> 300 FULLY_CONNECTED, 90 % unstructured sparsity, free format choice: >= 2x fewer
    Cortex-M4 instructions than the dense cmsis kernel on the same weights' dense twin."""
    need("arm-none-eabi-gcc", emulator=True)
    counts = {}
    for name, pattern in (("sparse", "weight"), ("dense", "dense")):
        rng = np.random.default_rng(1)
        g = Graph(name=f"fc_{name}")
        g.add_tensor(Tensor("x", (1, 784), "int8", quant=qp(1 / 255, -128)))
        y = add_layer(g, "FULLY_CONNECTED", "x", sparse_matrix(300, 784, pattern, 0.1, rng),
                      {"fused_activation_function": "RELU"}, rng, True, "y")
        g.inputs, g.outputs = ["x"], [y]
        xs = np.random.default_rng(2).integers(-128, 128, (2, 784)).astype(np.int8)
        got, counts[name], ks = run_emulated(tmp_path, g, ("cmsis", "ref"), "cortex-m4", xs)
        assert np.array_equal(got, run_batch(g, [xs])[0]), name
        assert set(ks) == {"ec_fully_connected_s8" if name == "dense" else "ec_fully_connected_s8spd"}, ks
    ratio = counts["dense"] / counts["sparse"]
    print(f"\n[cortex-m4] 784x300 at 90 %: dense cmsis {counts['dense']:.0f}, sparse {counts['sparse']:.0f} "
          f"instructions ({ratio:.2f}x)")
    assert ratio >= 2.0
