"""ISA variants of the packed low-bit kernels (kernels/include/ec_lowbit.h):
kernels/cmsis/ec_fully_connected_s8w1.c (binary FC, Cortex-M DSP), kernels/cmsis/ec_conv2d_s8wN.c and
kernels/neon/ec_conv2d_s8wN.c (int4 fast path, generic table path otherwise),
kernels/cmsis/ec_depthwise_conv2d_s8wN.c and kernels/neon/ec_depthwise_conv2d_s8wN.c (weights decoded
once per call for every scheme, SIMD over channels; the portable loop beyond 64 taps).

Each runs cross-built in swept odd shapes (Cortex-M4 in the emulator, AArch64 under qemu and in the
emulator) and must equal the ref variant's output and the numpy reference bit for bit on 100 random
inputs; the emulator's instruction counts of model_invoke (graphs made only of the kernel under test)
are printed, and the ISA variant must execute fewer instructions than ref where it has a fast path.
The conv fallback graph mixes tables that share bits == 4 / lut_stride == 0 with int4 (pow2-4, a
per-tensor kmeans-16 codebook), so the fast path's table check is exercised. The depthwise graphs
(int4, binary, and a mix of int2 / ternary / pow2 / per-channel kmeans / int3 with one 72-tap layer)
cover both SIMD paths of each variant: contiguous channels (depth multiplier 1) with an overlapped
last block, and gathered channels (multipliers 2 and 3, fewer channels than a block)."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest

from edgec.backends.c.emit import emit_c
from edgec.ir import Graph, Tensor
from edgec.ir.interpret import run_batch
from test_lowbit_c import MAIN, S, _write, add_layer, qp
from toolchain import need

N = 100
KROOT = __import__("pathlib").Path(__file__).resolve().parents[2] / "kernels"
NEW = ["cmsis/ec_fully_connected_s8w1.c", "cmsis/ec_conv2d_s8wN.c", "neon/ec_conv2d_s8wN.c",
       "cmsis/ec_depthwise_conv2d_s8wN.c", "neon/ec_depthwise_conv2d_s8wN.c", "ref/ec_depthwise_conv2d_s8wN.c"]
COUNTS: dict = {}


# ------------------------------------------------------------------------------------------------
# graphs

def fc_w1_graph(seed: int = 21) -> Graph:
    """Binary FC chain over row lengths 37, 70, 131, 9, 8, 3 (full 8-input steps, tails, tail only),
    three batch rows, per-channel and per-tensor scales, input zero point 7 then random ones."""
    rng = np.random.default_rng(seed)
    g = Graph(name="w1_chain")
    dims = [37, 70, 131, 9, 8, 3, 6]
    g.add_tensor(Tensor("x", (1, 3, dims[0]), "int8", quant=qp(0.05, 7)))
    x = "x"
    acts = ["NONE", "RELU", "NONE", "RELU6", "NONE", "NONE"]
    for k, (a, b) in enumerate(zip(dims, dims[1:])):
        x = add_layer(g, "FULLY_CONNECTED", x, (b, a), {"fused_activation_function": acts[k], "keep_num_dims": True},
                      rng, ("binary", 1, None), k % 2 == 0, f"f{k}", bias=k != 2)
    g.inputs, g.outputs = ["x"], [x]
    return g


U4 = ("uniform", 4, None)


def conv_graph(cases, seed: int = 31) -> Graph:
    """CONV_2D chain over odd channel counts (odd runs start mid-byte), SAME / VALID, strides, dilations
    (dil_w 2: one run per tap), 1x1; cases[k]: (scheme, bits, codebook entries), per channel on even k."""
    rng = np.random.default_rng(seed)
    g = Graph(name="conv_chain")
    g.add_tensor(Tensor("x", (1, 9, 11, 5), "int8", quant=qp(0.03, -4)))
    layers = [((7, 3, 3, 5), S(1, 1, act="RELU")),
              ((13, 2, 3, 7), S(2, 1, "VALID", dilation_w_factor=2)),
              ((17, 1, 1, 13), S(1, 1, act="RELU6")),
              ((6, 3, 3, 17), S(1, 2, "SAME", dilation_h_factor=2)),
              ((9, 3, 2, 6), S(1, 1, "SAME"))]
    x = "x"
    for k, ((shape, attrs), case) in enumerate(zip(layers, cases)):
        x = add_layer(g, "CONV_2D", x, shape, attrs, rng, case, k % 2 == 0, f"c{k}", bias=k != 1)
    g.inputs, g.outputs = ["x"], [x]
    return g


def dw_graph(cases, seed: int = 41) -> Graph:
    """DEPTHWISE_CONV_2D chain over 3 -> 3 -> 9 -> 9 -> 18 -> 18 (-> 18) channels: depth multipliers 1, 3,
    1, 2, 1 (, 1); SAME / VALID, strides, dilations; C = 3 (fewer than a block: repeated lanes, and the
    NEON window running past the input's end), 9 and 18 (overlapped last blocks); a sixth case adds a
    9x8 kernel (72 taps: beyond the stack buffer, the portable loop). cases[k] as conv_graph's."""
    rng = np.random.default_rng(seed)
    g = Graph(name="dw_chain")
    g.add_tensor(Tensor("x", (1, 13, 15, 3), "int8", quant=qp(0.03, -4)))
    layers = [((1, 3, 3, 3), S(1, 1, act="RELU", depth_multiplier=1)),
              ((1, 3, 3, 9), S(2, 2, "SAME", depth_multiplier=3)),
              ((1, 2, 3, 9), S(1, 1, "SAME", act="RELU6", depth_multiplier=1, dilation_h_factor=2)),
              ((1, 3, 3, 18), S(1, 1, "VALID", depth_multiplier=2, dilation_w_factor=2)),
              ((1, 3, 2, 18), S(2, 1, "SAME", depth_multiplier=1)),
              ((1, 9, 8, 18), S(3, 3, "SAME", depth_multiplier=1))]
    x = "x"
    for k, ((shape, attrs), case) in enumerate(zip(layers, cases)):
        x = add_layer(g, "DEPTHWISE_CONV_2D", x, shape, attrs, rng, case, k % 2 == 0, f"d{k}", bias=k != 1)
    g.inputs, g.outputs = ["x"], [x]
    return g


GRAPHS = {
    "fc_w1": (fc_w1_graph, "ec_fully_connected_s8w1"),
    "conv_w4": (lambda: conv_graph([U4] * 5), "ec_conv2d_s8wN"),
    "conv_mixed": (lambda: conv_graph([("pow2", 4, None), ("kmeans", 4, 16), U4, ("uniform", 3, None),
                                       ("kmeans", 4, 16)], seed=32), "ec_conv2d_s8wN"),
    "dw_w4": (lambda: dw_graph([U4] * 5), "ec_depthwise_conv2d_s8wN"),
    "dw_w1": (lambda: dw_graph([("binary", 1, None)] * 5, seed=42), "ec_depthwise_conv2d_s8wN"),
    "dw_mixed": (lambda: dw_graph([("uniform", 2, None), ("ternary", 2, None), ("kmeans", 4, 16), ("pow2", 4, None),
                                   ("kmeans", 2, 3), ("uniform", 3, None)], seed=43), "ec_depthwise_conv2d_s8wN"),
}
_cache: dict = {}


def graph(name: str):
    if name not in _cache:
        g, kernel = GRAPHS[name][0](), GRAPHS[name][1]
        x_t = g.t("x")
        xs = np.random.default_rng(7).integers(-128, 128, (N,) + x_t.shape[1:]).astype(np.int8)
        want = run_batch(g, [xs])[0].reshape(N, -1)
        _cache[name] = (g, kernel, xs, want)
    return _cache[name]


# ------------------------------------------------------------------------------------------------
# running

def run_emulated(tmp_path, g: Graph, variants, core: str, xs: np.ndarray):
    """(outputs [N, -1], mean instructions per model_invoke, kernel -> variant) in the emulator."""
    from edgec.run.emulate import Emulator, build_elf
    project = emit_c(g, variants=variants)
    root = tmp_path / "_".join(variants + (core,))
    _write(project, root)
    x_t, y_t = g.t("x"), g.t(g.outputs[0])
    harness = (f'#include "model.h"\nuint8_t arena[{max(project.arena_size, 16)}] __attribute__((aligned(16)));\n'
               f"int8_t x_buf[{x_t.size}], y_buf[{y_t.size}];\n"
               "int run_model(void) { return model_invoke(arena, x_buf, y_buf); }\n")
    sources = [("harness.c", harness)] + [root / rel for rel in project.files if rel.endswith(".c")]
    emu = Emulator(build_elf(sources, core, include_dirs=[root, root / "kernels" / "include"]), core)
    outs, counts = [], []
    for x in xs:
        emu.write("x_buf", x.tobytes())
        assert emu.call("run_model") == 0
        counts.append(emu.instructions)
        outs.append(np.frombuffer(emu.read("y_buf", y_t.size), np.int8))
    return np.stack(outs), float(np.mean(counts)), project.kernels


def run_qemu(tmp_path, g: Graph, variants, xs: np.ndarray):
    cc = "aarch64-linux-gnu-gcc"
    project = emit_c(g, variants=variants)
    root = tmp_path / ("qemu_" + "_".join(variants))
    _write(project, root)
    (root / "main.c").write_text(MAIN)
    srcs = [str(root / rel) for rel in project.files if rel.endswith(".c")] + [str(root / "main.c")]
    exe = root / "model"
    r = subprocess.run([cc, "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-march=armv8-a", f"-I{root}",
                        f"-I{root / 'kernels' / 'include'}", *srcs, "-static", "-lm", "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (root / "in.bin").write_bytes(xs.tobytes())
    r = subprocess.run(["qemu-aarch64", str(exe), str(root / "in.bin"), str(root / "out.bin"), str(len(xs))],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return np.frombuffer((root / "out.bin").read_bytes(), np.int8).reshape(len(xs), -1), project.kernels


def _diff(got, want) -> str:
    return f"{int((got != want).sum())} of {got.size} values differ"


# ------------------------------------------------------------------------------------------------
# tests

@pytest.mark.parametrize("cc,flags", [("gcc", []), ("clang", []),
                                      ("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb"]),
                                      ("arm-none-eabi-gcc", ["-mcpu=cortex-m0plus", "-mthumb"]),
                                      ("aarch64-linux-gnu-gcc", ["-march=armv8-a"])],
                         ids=["gcc", "clang", "m4", "m0plus", "aarch64"])
def test_compiles_warning_free(tmp_path, cc, flags):
    """The new kernels compile warning-free everywhere (portable paths on hosts and M0+)."""
    need(cc)
    for rel in NEW:
        r = subprocess.run([cc, *flags, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", f"-I{KROOT / 'include'}",
                            "-c", str(KROOT / rel), "-o", str(tmp_path / "k.o")], capture_output=True, text=True)
        assert r.returncode == 0, f"{rel}:\n{r.stderr}"


M4_CASES = [("fc_w1", True), ("conv_w4", True), ("conv_mixed", False), ("dw_w4", True), ("dw_w1", True),
            ("dw_mixed", True)]


@pytest.mark.parametrize("name,faster", M4_CASES, ids=[c[0] for c in M4_CASES])
def test_cortex_m4(tmp_path, name, faster):
    """cmsis variant == ref variant == numpy, bit for bit; fewer instructions than ref on the fast path."""
    need("arm-none-eabi-gcc", emulator=True)
    g, kernel, xs, want = graph(name)
    got, n_isa, ks = run_emulated(tmp_path, g, ("cmsis", "ref"), "cortex-m4", xs)
    assert ks[kernel] == "cmsis", ks
    ref, n_ref, ks = run_emulated(tmp_path, g, ("ref",), "cortex-m4", xs)
    assert ks[kernel] == "ref", ks
    assert np.array_equal(ref, want), "ref: " + _diff(ref, want)
    assert np.array_equal(got, want), "cmsis: " + _diff(got, want)
    COUNTS[("cortex-m4", name)] = (n_ref, n_isa)
    print(f"\n[cortex-m4] {name} ({kernel}): ref {n_ref:.0f} vs cmsis {n_isa:.0f} instructions / invoke "
          f"({n_ref / n_isa:.2f}x)")
    if faster:
        assert n_isa < n_ref
    else:   # mostly the generic path (= ref) plus one table check per call; one int4 layer
        assert n_isa <= 1.01 * n_ref


@pytest.mark.parametrize("name", list(GRAPHS))
def test_cortex_m0plus_portable(tmp_path, name):
    """Without the DSP extension the cmsis files run their portable loops: still exact."""
    need("arm-none-eabi-gcc", emulator=True)
    g, kernel, xs, want = graph(name)
    got, _, ks = run_emulated(tmp_path, g, ("cmsis", "ref"), "cortex-m0plus", xs[:20])
    assert ks[kernel] == "cmsis", ks
    assert np.array_equal(got, want[:20]), "cmsis on M0+: " + _diff(got, want[:20])


A64_CASES = [("conv_w4", True), ("conv_mixed", False), ("dw_w4", True), ("dw_w1", True), ("dw_mixed", True)]


@pytest.mark.parametrize("name,faster", A64_CASES, ids=[c[0] for c in A64_CASES])
def test_aarch64(tmp_path, name, faster):
    """neon variant == numpy under qemu, and == ref in the emulator (Cortex-A53) with fewer instructions."""
    need("aarch64-linux-gnu-gcc", "qemu-aarch64", emulator=True)
    g, kernel, xs, want = graph(name)
    got, ks = run_qemu(tmp_path, g, ("neon",), xs)
    assert ks[kernel] == "neon", ks
    assert np.array_equal(got, want), "neon (qemu): " + _diff(got, want)
    sub = xs[:20]
    got_e, n_isa, _ = run_emulated(tmp_path, g, ("neon",), "cortex-a53", sub)
    ref_e, n_ref, ks = run_emulated(tmp_path, g, ("ref",), "cortex-a53", sub)
    assert ks[kernel] == "ref"
    assert np.array_equal(ref_e, want[:20]), "ref (emulator): " + _diff(ref_e, want[:20])
    assert np.array_equal(got_e, want[:20]), "neon (emulator): " + _diff(got_e, want[:20])
    COUNTS[("cortex-a53", name)] = (n_ref, n_isa)
    print(f"\n[cortex-a53] {name} ({kernel}): ref {n_ref:.0f} vs neon {n_isa:.0f} instructions / invoke "
          f"({n_ref / n_isa:.2f}x)")
    if faster:
        assert n_isa < n_ref
    else:
        assert n_isa <= 1.01 * n_ref


def test_graphs_use_the_kernels():
    """The swept graphs really route through the kernels under test (no unpacked int8 fallback)."""
    for name in GRAPHS:
        g, kernel = GRAPHS[name][0](), GRAPHS[name][1]
        ks = emit_c(g, variants=("cmsis", "ref")).kernels
        assert set(ks) == {kernel}, ks


REQUANT_CHECK = r"""
static uint32_t state = 2463534242u;
static uint32_t rnd(void) {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return state;
}

/* ec_dw_lanes' fast flag == its stated bound, and ec_dw_requant(fast) == ec_requantize on accumulators
 * inside the bound (the extremes, random values); mults: QuantizeMultiplier's [2^30, 2^31), 2^30
 * itself (a rounding tie on every odd product), INT32_MAX, and arbitrary (negative) ones. Returns
 * mismatches + 1000 * wrong flags; *n_fast counts the fast lanes checked. */
int check(int32_t *n_fast) {
    int32_t bad = 0, flags = 0, fast_lanes = 0;
    for (int32_t i = 0; i < 6000; i++) {
        const int32_t shift = (int32_t)(rnd() % 62u) - 32;   /* -32 .. 29 */
        const uint32_t kind = rnd() % 4u;
        const int32_t mult = kind == 0 ? (int32_t)(0x40000000u | (rnd() >> 2)) : kind == 1 ? 0x40000000
                           : kind == 2 ? INT32_MAX : (int32_t)rnd();
        const int32_t bias = (int32_t)(rnd() >> (1u + rnd() % 31u)) * ((rnd() & 1u) ? 1 : -1);
        const int32_t mults[4] = {mult, mult, mult, mult}, shifts[4] = {shift, shift, shift, shift};
        const int32_t biases[4] = {bias, bias, bias, bias}, oc[4] = {0, 1, 2, 3};
        ec_conv_s8_params_t c;
        __builtin_memset(&c, 0, sizeof c);
        c.k_h = 3;
        c.k_w = 3;
        c.mult = mults;
        c.shift = shifts;
        ec_dw_lane_t q[4];
        const int fast = ec_dw_lanes(&c, biases, oc, q);
        const int32_t left = shift > 0 ? shift : 0;
        const int64_t bound = (bias < 0 ? -(int64_t)bias : bias) + 9 * 255 * 128;
        const int want = left <= 28 && -shift <= 31 && bound < ((int64_t)1 << (29 - left));
        if (fast != want) flags++;
        if (!fast) continue;
        const int32_t lim = (int32_t)bound;
        for (int32_t j = 0; j < 8; j++) {
            int32_t acc = j == 0 ? lim : j == 1 ? -lim : (int32_t)(rnd() % (2u * (uint32_t)lim + 1u)) - lim;
            if (ec_dw_requant(&q[0], 1, acc) != ec_requantize(acc, mult, shift)) bad++;
            fast_lanes++;
        }
    }
    *n_fast = fast_lanes;
    return bad + 1000 * flags;
}
int32_t n_fast;
int run_check(void) { return check(&n_fast); }
"""


def test_cmsis_dw_requant_identity():
    """The Cortex-M depthwise kernel's SMMULR requantization equals ec_requantize wherever its per-block
    bound admits it, and the bound is the one its comment states (run on the emulated Cortex-M4)."""
    need("arm-none-eabi-gcc", emulator=True)
    from edgec.run.emulate import Emulator, build_elf
    # the kernel's text inlined (its static helpers become visible; the build cache keys on it)
    src = (KROOT / "cmsis" / "ec_depthwise_conv2d_s8wN.c").read_text() + REQUANT_CHECK
    elf = build_elf([("dw_requant_check.c", src)], "cortex-m4", include_dirs=[KROOT / "include"])
    emu = Emulator(elf, "cortex-m4")
    assert emu.call("run_check") == 0
    n_fast = int.from_bytes(emu.read("n_fast", 4), "little")
    assert n_fast > 10000, n_fast   # most draws are inside the bound
