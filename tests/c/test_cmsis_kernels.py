"""Cortex-M DSP kernels (kernels/cmsis/) against the ref kernels and the numpy reference, run in the
unicorn emulator on a Cortex-M4 build, plus the emulator itself.

One freestanding ELF holds both variants of the three kernels (renamed at compile time) and
generated global buffers; each case writes its params/input/weights/bias/multipliers into those
globals and calls the kernels directly (AAPCS, stack arguments past r3), so a geometry costs no
rebuild. Params come from the ops' own C emitters (so they equal what emit_c generates) and the
expected outputs from the numpy reference interpreter.

Missing arm-none-eabi-gcc or unicorn skips these tests, or fails them when EDGEC_REQUIRE_TOOLCHAINS=1.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from functools import lru_cache

import numpy as np
import pytest
from toolchain import require

from edgec.backends.c.scratch import scratch_bytes
from edgec.ir import ops as opreg
from edgec.ir.interpret import run
from edgec.paths import data_dir
from ops.test_conv import A, build

KERNELS = data_dir("kernels")
CORE = "cortex-m4"


def _have_emulator() -> bool:
    try:
        from edgec.run.emulate import available
        return available()
    except ImportError:
        return False


@pytest.fixture(scope="module")
def toolchain():
    require(shutil.which("arm-none-eabi-gcc") is not None, "arm-none-eabi-gcc")
    require(_have_emulator(), "unicorn/pyelftools (the emulator)")


# ------------------------------------------------------------------------------------------------
# the test program

CONV_FIELDS = ["in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w", "stride_h", "stride_w",
               "dil_h", "dil_w", "pad_h", "pad_w", "depth_mult", "in_zp", "out_zp", "act_min", "act_max"]
FC_FIELDS = ["batches", "in_features", "out_features", "in_zp", "out_zp", "act_min", "act_max"]
SIZES = {"in_buf": 16384, "w_buf": 32768, "out_buf": 16384, "scratch_buf": 16384}
MAX_C = 512
OPS = {"conv": ("ec_conv2d_s8", "ec_conv_s8_params_t", CONV_FIELDS),
       "dw": ("ec_depthwise_conv2d_s8", "ec_conv_s8_params_t", CONV_FIELDS),
       "fc": ("ec_fully_connected_s8", "ec_fc_s8_params_t", FC_FIELDS)}


def _harness_c() -> str:
    lines = ['#include "ec_conv.h"', ""]
    for name, size in SIZES.items():
        ctype = "int32_t" if name == "scratch_buf" else "int8_t"
        n = size // 4 if ctype == "int32_t" else size
        lines.append(f"{ctype} {name}[{n}] EC_ALIGN(16);")
    lines += [f"int32_t bias_buf[{MAX_C}], mult_buf[{MAX_C}], shift_buf[{MAX_C}];",
              "ec_conv_s8_params_t conv_p;", "ec_fc_s8_params_t fc_p;",
              f"int32_t conv_f[{len(CONV_FIELDS)}], fc_f[{len(FC_FIELDS)}];", "",
              "/* copy the field values the test wrote into conv_f/fc_f into the params structs */",
              "void set_params(void) {"]
    lines += [f"    conv_p.{f} = conv_f[{i}];" for i, f in enumerate(CONV_FIELDS)]
    lines += [f"    fc_p.{f} = fc_f[{i}];" for i, f in enumerate(FC_FIELDS)]
    lines += ["    conv_p.mult = mult_buf;", "    conv_p.shift = shift_buf;",
              "    fc_p.mult = mult_buf;", "    fc_p.shift = shift_buf;", "}", ""]
    return "\n".join(lines)


@lru_cache(maxsize=None)
def program(core: str = CORE):
    """(Emulator, ELF path) of the test program for `core`."""
    from edgec.run.emulate import Emulator, build_elf
    sources, flags = [("harness.c", _harness_c())], {}
    for kernel, _, _ in OPS.values():
        for variant in ("ref", "cmsis"):
            name = f"{variant}_{kernel}.c"
            sources.append((name, (KERNELS / variant / f"{kernel}.c").read_bytes()))
            flags[name] = [f"-D{kernel}={kernel}_{variant}"]
    elf = build_elf(sources, core, include_dirs=[KERNELS / "include"], source_flags=flags)
    return Emulator(elf, core), elf


# ------------------------------------------------------------------------------------------------
# cases: a one-op graph, the params its C emitter produces, and a runner

class _Cx:
    """The emit context an op's C emitter sees, recording the arrays it asks for."""

    def __init__(self, variant: str):
        self._variant = variant
        self.arrays: dict[str, np.ndarray] = {}
        self.scratch_expr = "scratch"

    def ptr(self, name):
        return name

    def array(self, base, values, ctype, weight=False):
        self.arrays[base] = np.asarray(values)
        return base

    def variant(self, kernel):
        return self._variant


class Case:
    def __init__(self, kind: str, in_shape, w_shape, attrs: dict, seed: int = 0, bias="default",
                 out_scale=None):
        op_type = {"conv": "CONV_2D", "dw": "DEPTHWISE_CONV_2D", "fc": "FULLY_CONNECTED"}[kind]
        self.kind = kind
        self.g = build(op_type, in_shape, w_shape, A(op_type, **attrs), "int8", per_channel=True,
                       bias=bias, seed=seed, out_scale=out_scale)
        op = self.g.ops[0]
        cx = _Cx("cmsis")
        call = opreg.get(op_type).c(op, [self.g.t(i) for i in op.inputs], [self.g.t(o) for o in op.outputs], cx)
        self.kernel, (_, fields) = call.kernel, call.params
        assert self.kernel == OPS[kind][0], self.kernel
        self.fields = fields
        self.mult = cx.arrays[fields["mult"]].astype(np.int32)
        self.shift = cx.arrays[fields["shift"]].astype(np.int32)
        self.w = self.g.t(op.inputs[1]).data.astype(np.int8)
        self.bias = self.g.t(op.inputs[2]).data.astype(np.int32) if len(op.inputs) > 2 and op.inputs[2] else None
        self.scratch = scratch_bytes(self.kernel, "cmsis", fields)
        self.out_size = self.g.t(op.outputs[0]).size
        self.in_size = self.g.t(op.inputs[0]).size

    def load(self, emu) -> None:
        names = OPS[self.kind][2]
        vals = np.array([int(self.fields[f]) for f in names], np.int32)
        emu.write("fc_f" if self.kind == "fc" else "conv_f", vals.tobytes())
        assert self.w.size <= SIZES["w_buf"] and self.in_size <= SIZES["in_buf"]
        assert self.out_size <= SIZES["out_buf"] and self.scratch <= SIZES["scratch_buf"]
        assert len(self.mult) <= MAX_C
        emu.write("w_buf", self.w.tobytes())
        emu.write("mult_buf", self.mult.tobytes())
        emu.write("shift_buf", self.shift.tobytes())
        if self.bias is not None:
            emu.write("bias_buf", self.bias.tobytes())
        emu.call("set_params")

    def run(self, emu, variant: str, x: np.ndarray) -> tuple[np.ndarray, int]:
        """Output and instruction count of one call of the variant's kernel on input x."""
        emu.write("in_buf", np.ascontiguousarray(x, np.int8).tobytes())
        emu.write("out_buf", b"\x5a" * self.out_size)
        p = emu.symbol("fc_p" if self.kind == "fc" else "conv_p")
        bias = emu.symbol("bias_buf") if self.bias is not None else 0
        emu.call(f"{self.kernel}_{variant}", p, emu.symbol("in_buf"), emu.symbol("w_buf"), bias,
                 emu.symbol("out_buf"), emu.symbol("scratch_buf") if variant == "cmsis" else 0)
        out = np.frombuffer(emu.read("out_buf", self.out_size), np.int8)
        return out, emu.instructions

    def check(self, emu, n: int, seed: int = 0) -> dict[str, int]:
        """n random inputs: cmsis == ref == numpy, bit for bit. Returns the first input's counts."""
        self.load(emu)
        rng = np.random.default_rng(seed)
        xs = rng.integers(-128, 128, (n,) + self.g.t(self.g.inputs[0]).shape).astype(np.int8)
        want = [run(self.g, [x])[0].reshape(-1) for x in xs]
        counts = {}
        for k in range(n):
            for variant in ("cmsis", "ref"):
                got, count = self.run(emu, variant, xs[k])
                counts.setdefault(variant, count)
                diff = got.astype(np.int32) - want[k].astype(np.int32)
                assert not diff.any(), (f"{variant} {self.kernel} input {k}: {int((diff != 0).sum())} of "
                                        f"{diff.size} values differ (max {int(np.abs(diff).max())} LSB)")
        return counts


def conv_case(in_hwc, out_c, k, stride=(1, 1), padding="SAME", dil=(1, 1), act="NONE", seed=0, bias="default"):
    h, w, c = in_hwc
    return Case("conv", (1, h, w, c), (out_c, k[0], k[1], c),
                dict(stride_h=stride[0], stride_w=stride[1], padding=padding, dilation_h_factor=dil[0],
                     dilation_w_factor=dil[1], fused_activation_function=act), seed, bias)


def dw_case(in_hwc, k, mult=1, stride=(1, 1), padding="SAME", dil=(1, 1), act="NONE", seed=0, bias="default"):
    h, w, c = in_hwc
    return Case("dw", (1, h, w, c), (1, k[0], k[1], c * mult),
                dict(stride_h=stride[0], stride_w=stride[1], padding=padding, depth_multiplier=mult,
                     dilation_h_factor=dil[0], dilation_w_factor=dil[1], fused_activation_function=act),
                seed, bias)


def fc_case(n_in, n_out, batches=1, act="NONE", seed=0, bias="default"):
    return Case("fc", (batches, n_in), (n_out, n_in), dict(fused_activation_function=act), seed, bias)


# ------------------------------------------------------------------------------------------------
# correctness sweeps (shapes deliberately not multiples of 2/4)

CONV_SWEEP = [
    # in (h, w, c), out_c, kernel, stride, padding, dilation, activation
    ((7, 9, 3), 5, (3, 3), (1, 1), "SAME", (1, 1), "NONE"),
    ((8, 7, 5), 7, (3, 3), (2, 2), "SAME", (1, 1), "RELU"),
    ((9, 6, 1), 6, (10, 4), (2, 2), "SAME", (1, 1), "NONE"),      # DS-CNN-like first layer, odd sizes
    ((5, 7, 13), 9, (1, 1), (1, 1), "VALID", (1, 1), "RELU6"),    # 1x1 fast path, odd K and pixels
    ((6, 5, 16), 3, (1, 1), (2, 1), "SAME", (1, 1), "NONE"),      # 1x1 strided
    ((9, 8, 3), 4, (3, 2), (1, 2), "VALID", (2, 3), "RELU_N1_TO_1"),  # dilation
    ((4, 3, 2), 3, (5, 4), (2, 2), "SAME", (1, 1), "NONE"),       # filter larger than the image
    ((3, 11, 6), 1, (2, 3), (1, 1), "SAME", (1, 1), "NONE"),      # one filter
]
DW_SWEEP = [
    # in (h, w, c), kernel, depth multiplier, stride, padding, dilation, activation
    ((7, 6, 13), (3, 3), 1, (1, 1), "SAME", (1, 1), "NONE"),
    ((9, 7, 8), (3, 3), 1, (2, 2), "SAME", (1, 1), "RELU6"),
    ((6, 9, 5), (3, 5), 1, (1, 2), "VALID", (2, 1), "RELU"),
    ((5, 6, 3), (3, 3), 2, (1, 1), "SAME", (1, 1), "NONE"),       # depth multiplier 2
    ((7, 5, 2), (2, 3), 3, (2, 1), "SAME", (1, 1), "RELU_N1_TO_1"),
    ((4, 3, 7), (5, 4), 1, (2, 2), "SAME", (1, 1), "NONE"),       # filter larger than the image
]
FC_SWEEP = [
    # in, out, batches, activation
    (64, 12, 1, "NONE"),
    (37, 11, 1, "RELU"),
    (3, 5, 3, "NONE"),
    (130, 7, 2, "RELU6"),
    (1, 1, 1, "NONE"),
]


@pytest.mark.parametrize("i", range(len(CONV_SWEEP)))
def test_conv2d_cmsis_bit_exact(toolchain, i):
    shape, oc, k, s, pad, dil, act = CONV_SWEEP[i]
    emu, _ = program()
    conv_case(shape, oc, k, s, pad, dil, act, seed=i).check(emu, n=100, seed=i)


@pytest.mark.parametrize("i", range(len(DW_SWEEP)))
def test_depthwise_cmsis_bit_exact(toolchain, i):
    shape, k, m, s, pad, dil, act = DW_SWEEP[i]
    emu, _ = program()
    dw_case(shape, k, m, s, pad, dil, act, seed=20 + i).check(emu, n=100, seed=i)


@pytest.mark.parametrize("i", range(len(FC_SWEEP)))
def test_fully_connected_cmsis_bit_exact(toolchain, i):
    n_in, n_out, b, act = FC_SWEEP[i]
    emu, _ = program()
    fc_case(n_in, n_out, b, act, seed=40 + i).check(emu, n=100, seed=i)


def _random_geometry(rng, kind: str):
    """A random small layer: odd sizes, kernels up to 5x5 (sometimes larger than the image), strides
    1-3, dilations 1-2, both paddings, depth multipliers 1-3, every activation."""
    act = str(rng.choice(["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]))
    pad = str(rng.choice(["SAME", "VALID"]))
    k = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
    s = (int(rng.integers(1, 4)), int(rng.integers(1, 4)))
    d = (int(rng.integers(1, 3)), int(rng.integers(1, 3))) if rng.random() < 0.3 else (1, 1)
    h, w = int(rng.integers(1, 10)), int(rng.integers(1, 10))
    if pad == "VALID":   # keep at least one output pixel
        h, w = max(h, (k[0] - 1) * d[0] + 1), max(w, (k[1] - 1) * d[1] + 1)
    if kind == "conv":
        return conv_case((h, w, int(rng.integers(1, 20))), int(rng.integers(1, 12)), k, s, pad, d, act,
                         seed=int(rng.integers(1 << 30)))
    return dw_case((h, w, int(rng.integers(1, 20))), k, int(rng.choice([1, 1, 1, 2, 3])), s, pad, d, act,
                   seed=int(rng.integers(1 << 30)))


@pytest.mark.parametrize("kind", ["conv", "dw"])
def test_random_geometries(toolchain, kind):
    emu, _ = program()
    rng = np.random.default_rng(7 if kind == "conv" else 8)
    for i in range(120):
        case = _random_geometry(rng, kind)
        case.check(emu, n=8, seed=i)


def test_multipliers_above_one(toolchain):
    """Output scales below input x filter scale: requantization shifts left (shift > 0). Weights in
    {-1, 0, 1} and no bias keep many outputs inside the int8 range."""
    emu, _ = program()
    makers = [lambda sc: Case("fc", (1, 5), (7, 5), dict(fused_activation_function="NONE"), 60, None, sc),
              lambda sc: Case("conv", (1, 5, 4, 3), (6, 2, 2, 3), dict(padding="SAME", stride_h=1, stride_w=1),
                              61, None, sc),
              lambda sc: Case("dw", (1, 5, 4, 8), (1, 2, 2, 8), dict(padding="SAME", stride_h=1, stride_w=1,
                                                                   depth_multiplier=1), 62, None, sc)]
    for make in makers:
        probe = make(None)
        x_t, w_t = probe.g.t(probe.g.inputs[0]), probe.g.t(probe.g.ops[0].inputs[1])
        scale = float(x_t.quant.scale[0]) * float(np.min(w_t.quant.scale)) / 1.2
        case = make(scale)
        assert (case.shift > 0).all(), case.shift
        small = np.random.default_rng(1).integers(-1, 2, case.w.shape).astype(np.int8)
        case.w = small
        case.g.t(case.g.ops[0].inputs[1]).data = small
        case.check(emu, n=30)
        y = run(case.g, [np.random.default_rng(0).integers(-128, 128, x_t.shape).astype(np.int8)])[0]
        assert (np.abs(y.astype(int)) < 127).mean() > 0.1   # not all saturated


def test_no_bias_and_extreme_zero_points(toolchain):
    emu, _ = program()
    conv_case((5, 6, 7), 5, (3, 3), seed=3, bias=None).check(emu, n=6)
    dw_case((5, 6, 9), (3, 3), seed=4, bias=None).check(emu, n=6)
    fc_case(29, 6, seed=5, bias=None).check(emu, n=6)
    # input zero points at the int8 extremes (the SXTAB16 offset is +128 / -127 then)
    for zp in (-128, 127):
        for case in (conv_case((5, 5, 6), 5, (3, 3), seed=6), dw_case((5, 5, 8), (3, 3), seed=7),
                     fc_case(21, 5, seed=8)):
            q = case.g.t(case.g.inputs[0]).quant
            q.zero_point = np.asarray([zp])
            case.fields["in_zp"] = zp
            case.check(emu, n=4, seed=zp & 0xFF)


@pytest.mark.parametrize("core", ["cortex-m0plus", "cortex-m7", "cortex-m33"])
def test_other_cores(toolchain, core):
    """The DSP path on M7/M33 builds, and the portable fallback on M0+ (no DSP extension)."""
    emu, _ = program(core)
    conv_case((6, 7, 5), 5, (3, 3), (2, 1), seed=11).check(emu, n=3)
    conv_case((5, 3, 9), 3, (1, 1), seed=12).check(emu, n=3)
    dw_case((6, 5, 7), (3, 3), seed=13).check(emu, n=3)
    fc_case(23, 6, seed=14).check(emu, n=3)


def test_conv_without_scratch_falls_back(toolchain):
    """A NULL scratch (an emitter that reserved none) runs the reference loop: right, if slow."""
    emu, _ = program()
    case = conv_case((6, 5, 7), 5, (3, 3), seed=15)
    case.load(emu)
    x = np.random.default_rng(0).integers(-128, 128, case.in_size).astype(np.int8)
    want, ref_count = case.run(emu, "ref", x)
    emu.write("in_buf", x.tobytes())
    emu.call("ec_conv2d_s8_cmsis", emu.symbol("conv_p"), emu.symbol("in_buf"), emu.symbol("w_buf"),
             emu.symbol("bias_buf"), emu.symbol("out_buf"), 0)
    assert emu.read("out_buf", case.out_size) == want.tobytes()


EMITTED = [
    lambda: conv_case((9, 8, 3), 7, (3, 3), (1, 1), "SAME", act="RELU6", seed=30),
    lambda: conv_case((6, 5, 12), 9, (1, 1), seed=31),
    lambda: dw_case((7, 6, 10), (3, 3), seed=32),
    lambda: fc_case(45, 10, seed=33),
]


@pytest.mark.parametrize("i", range(len(EMITTED)))
def test_emitted_project_on_cortex_m4(toolchain, tmp_path, i):
    """emit_c(variants=("cmsis", "ref")) picks these kernels with a scratch buffer; the generated
    project, cross-built for Cortex-M4 and run in the emulator, matches the reference, and runs in
    fewer instructions than the same project built from the ref kernels."""
    from edgec.backends.c.emit import emit_c
    from edgec.run.emulate import Emulator, build_elf
    case = EMITTED[i]()
    g = case.g
    x_t, y_t = g.t(g.inputs[0]), g.t(g.outputs[0])
    rng = np.random.default_rng(i)
    xs = rng.integers(-128, 128, (4,) + x_t.shape).astype(np.int8)
    want = [run(g, [x])[0].reshape(-1) for x in xs]
    counts = {}
    for variants in (("cmsis", "ref"), ("ref",)):
        project = emit_c(g, variants=variants)
        if variants[0] == "cmsis":
            assert project.kernels[case.kernel] == "cmsis"
        root = tmp_path / variants[0]
        for rel, data in project.files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
        harness = (f'#include "model.h"\nuint8_t arena[{max(project.arena_size, 16)}] __attribute__((aligned(16)));\n'
                   f"int8_t x_buf[{x_t.size}], y_buf[{y_t.size}];\n"
                   "int run_model(void) { return model_invoke(arena, x_buf, y_buf); }\n")
        sources = [("harness.c", harness)] + [root / rel for rel in project.files if rel.endswith(".c")]
        emu = Emulator(build_elf(sources, CORE, include_dirs=[root, root / "kernels" / "include"]), CORE)
        for k, x in enumerate(xs):
            emu.write("x_buf", x.tobytes())
            assert emu.call("run_model") == 0
            got = np.frombuffer(emu.read("y_buf", y_t.size), np.int8)
            assert np.array_equal(got, want[k]), f"{variants}: input {k} differs"
        counts[variants[0]] = emu.instructions
    assert counts["cmsis"] < TARGET_RATIO * counts["ref"], counts


# ------------------------------------------------------------------------------------------------
# MLPerf-Tiny DS-CNN (keyword spotting) layers: instruction counts, cmsis <= 0.6 x ref on Cortex-M4

DSCNN = {
    "conv 10x4/2 49x10x1->64": lambda: conv_case((49, 10, 1), 64, (10, 4), (2, 2), "SAME", act="RELU", seed=1),
    "depthwise 3x3 25x5x64": lambda: dw_case((25, 5, 64), (3, 3), act="RELU", seed=2),
    "pointwise 1x1 25x5x64->64": lambda: conv_case((25, 5, 64), 64, (1, 1), act="RELU", seed=3),
    "fc 64->12": lambda: fc_case(64, 12, seed=4),
}
TARGET_RATIO = 0.6


def dscnn_counts(n: int = 2) -> dict[str, tuple[int, int]]:
    """{layer: (ref instructions, cmsis instructions)} on Cortex-M4, after checking bit-exactness."""
    emu, _ = program()
    out = {}
    for name, make in DSCNN.items():
        counts = make().check(emu, n=n)
        out[name] = (counts["ref"], counts["cmsis"])
    return out


def test_dscnn_instruction_counts(toolchain):
    counts = dscnn_counts()
    rows = [f"{'layer':28s} {'ref':>10s} {'cmsis':>10s} {'ratio':>6s}"]
    for name, (ref, cm) in counts.items():
        rows.append(f"{name:28s} {ref:10d} {cm:10d} {cm / ref:6.3f}")
    tot_ref = sum(r for r, _ in counts.values())
    tot_cm = sum(c for _, c in counts.values())
    rows.append(f"{'total':28s} {tot_ref:10d} {tot_cm:10d} {tot_cm / tot_ref:6.3f}")
    print("\n" + "\n".join(rows))
    for name, (ref, cm) in counts.items():
        assert cm <= TARGET_RATIO * ref, f"{name}: cmsis {cm} > {TARGET_RATIO} x ref {ref}"


# ------------------------------------------------------------------------------------------------
# the emulator

def test_emulator_block_count_equals_code_count(toolchain):
    """The fast UC_HOOK_BLOCK count equals a per-instruction UC_HOOK_CODE count on real kernels
    (IT-free: Cortex-M0+ code), and on M4 code differs by exactly the IT instructions executed."""
    from edgec.run.emulate import Emulator
    case = dw_case((5, 4, 6), (3, 3), seed=9)
    emu0, elf = program("cortex-m0plus")
    counts = []
    for hook in ("block", "code"):
        emu = Emulator(elf, "cortex-m0plus", exact_hook=hook)
        case.load(emu)
        x = np.arange(case.in_size, dtype=np.int64).astype(np.int8)
        outs = [case.run(emu, v, x) for v in ("ref", "cmsis")]
        counts.append([c for _, c in outs])
        assert np.array_equal(outs[0][0], outs[1][0])
    assert counts[0] == counts[1] and min(counts[0]) > 1000, counts


IT_LOOP = r"""
    .syntax unified
    .thumb
    .global it_loop
    .type it_loop, %function
    .thumb_func
it_loop:            @ r0 = n: n iterations of 6 instructions, one of them an ITE
    movs r1, #0
1:  tst r0, #1
    ite ne
    addne r1, r1, #3
    subeq r1, r1, #1
    subs r0, r0, #1
    bne 1b
    mov r0, r1
    bx lr
"""


def test_emulator_counts_it_instructions(toolchain, tmp_path):
    from edgec.run.emulate import CORE_FLAGS, Emulator
    src = tmp_path / "it.S"
    src.write_text(IT_LOOP)
    elf = tmp_path / "it.elf"
    subprocess.run(["arm-none-eabi-gcc", *CORE_FLAGS[CORE], "-nostdlib", "-static", "-Wl,-e,it_loop",
                    str(src), "-o", str(elf)], check=True)
    n = 1001
    block = Emulator(elf, CORE)
    r = block.call("it_loop", n)
    assert r == 3 * 501 - 500 and block.instructions == 6 * n + 3
    code = Emulator(elf, CORE, exact_hook="code")
    code.call("it_loop", n)
    assert code.instructions == block.instructions - n   # unicorn fires no code hook for IT


def test_emulator_api(toolchain):
    from edgec.run.emulate import Emulator, EmulatorError, build_elf
    src = r"""
#include <stdint.h>
int32_t data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
float fdata[4];
int32_t sum6(int32_t a, int32_t b, int32_t c, int32_t d, int32_t e, int32_t f) { return a + 2*b + 3*c + 4*d + 5*e + 6*f; }
int32_t dot(const int32_t *p, int32_t n) { int32_t s = 0; for (int32_t i = 0; i < n; i++) s += p[i] * p[i]; return s; }
void fscale(float k) { for (int i = 0; i < 4; i++) fdata[i] *= k; }
int32_t fault(void) { return *(volatile int32_t *)0x70000000; }
int32_t spin(void) { for (;;) { } }
"""
    for core in ("cortex-m4", "cortex-m0plus", "cortex-m7", "cortex-m33"):
        emu = Emulator(build_elf([("t.c", src)], core), core)
        assert emu.call("sum6", 1, 2, 3, 4, 5, 6) == 91
        assert emu.call("sum6", -1, 0, 0, 0, 0, 0) == 0xFFFFFFFF
        assert emu.call("dot", emu.symbol("data"), 8) == 204 and emu.instructions > 8
        emu.write("data", np.full(8, 3, np.int32).tobytes())
        assert emu.call("dot", emu.symbol("data"), 8) == 72
        assert emu.read("data", 8) == np.full(2, 3, np.int32).tobytes()
        with pytest.raises(EmulatorError, match="faulted"):
            emu.call("fault")
        with pytest.raises(EmulatorError, match="exceeded"):
            emu.call("spin", max_instructions=10_000)
        assert emu.call("sum6", 1, 1, 1, 1, 1, 1) == 21        # usable after errors
    emu = Emulator(build_elf([("t.c", src)], "cortex-m4"), "cortex-m4")
    emu.write("fdata", np.array([1, 2, 3, 4], np.float32).tobytes())
    emu.mu.reg_write(__import__("unicorn").arm_const.UC_ARM_REG_S0,
                     int(np.array([2.5], np.float32).view(np.uint32)[0]))
    emu.call("fscale")
    assert np.frombuffer(emu.read("fdata", 16), np.float32).tolist() == [2.5, 5, 7.5, 10]


def test_emulator_aarch64(toolchain):
    require(shutil.which("aarch64-linux-gnu-gcc") is not None, "aarch64-linux-gnu-gcc")
    from edgec.run.emulate import Emulator, build_elf
    src = r"""
#include <stdint.h>
#include <arm_neon.h>
int8_t a[32], b[32];
int64_t sum10(int64_t x0, int64_t x1, int64_t x2, int64_t x3, int64_t x4, int64_t x5, int64_t x6, int64_t x7,
              int64_t s0, int64_t s1) { return x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7 + 100 * s0 + 1000 * s1; }
int32_t dot(int32_t n) {
    int32x4_t acc = vdupq_n_s32(0);
    for (int32_t i = 0; i < n; i += 16) {
        int16x8_t lo = vmull_s8(vld1_s8(a + i), vld1_s8(b + i));
        int16x8_t hi = vmull_s8(vld1_s8(a + i + 8), vld1_s8(b + i + 8));
        acc = vpadalq_s16(acc, lo);
        acc = vpadalq_s16(acc, hi);
    }
    return vaddvq_s32(acc);
}
"""
    for core in ("cortex-a53", "cortex-a76"):
        emu = Emulator(build_elf([("t.c", src)], core), core)
        assert emu.call("sum10", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10) == 36 + 900 + 10000
        x = np.arange(-16, 16, dtype=np.int8)
        emu.write("a", x.tobytes())
        emu.write("b", x[::-1].copy().tobytes())
        assert np.int32(np.uint32(emu.call("dot", 32) & 0xFFFFFFFF)) == int((x.astype(int) * x[::-1]).sum())
        assert 10 < emu.instructions < 100


def test_scratch_sizes():
    p = dict(in_h=49, in_w=10, in_c=1, k_h=10, k_w=4)
    assert scratch_bytes("ec_conv2d_s8", "cmsis", p) == 2 * 40 * 2
    assert scratch_bytes("ec_conv2d_s8", "cmsis", {**p, "in_c": 3, "k_h": 3, "k_w": 3}) == 2 * 28 * 2
    assert scratch_bytes("ec_conv2d_s8", "ref", p) == 0
    assert scratch_bytes("ec_depthwise_conv2d_s8", "cmsis", p) == 0
    assert scratch_bytes("ec_fully_connected_s8", "cmsis", {}) == 0


def test_requantize_matches_tflite_on_host(tmp_path):
    """The kernels' cheaper requantization (one nudge, floor shift) equals ec_requantize (TFLite's
    MultiplyByQuantizedMultiplier) for every non-negative multiplier: random and edge values."""
    cc = shutil.which("cc") or shutil.which("gcc")
    require(cc is not None, "a host C compiler")
    src = tmp_path / "rq.c"
    body = (KERNELS / "include" / "ec_cmsis.h").read_text()   # the one definition the kernels share
    start = body.index("EC_INLINE int32_t ec_cm_requantize")
    fn = body[start:body.index("\n}\n", start) + 3]
    src.write_text('#include <stdio.h>\n#include "ec_common.h"\n' + fn + r"""
static uint64_t s = 88172645463325252ull;
static uint32_t rnd(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return (uint32_t)s; }
int main(void) {
    const int32_t edge[] = {0, 1, -1, 2, -2, 3, 1 << 30, -(1 << 30), INT32_MAX, INT32_MIN, INT32_MAX - 1, INT32_MIN + 1};
    long bad = 0;
    for (long i = 0; i < 4000000; i++) {
        int32_t x = (i < 144) ? edge[i % 12] : (int32_t)rnd() >> (rnd() % 31);
        int32_t m = (i < 144) ? (int32_t)(i / 12 < 6 ? (1u << 30) + (uint32_t)(i / 12) : (uint32_t)INT32_MAX - (uint32_t)(i / 12))
                              : (int32_t)(rnd() >> 1);
        int32_t sh = (int32_t)(rnd() % 40) - 31;
        if (sh > 0 && (x > (INT32_MAX >> sh) || x < (INT32_MIN >> sh))) x >>= sh;  /* TFLite: no overflow */
        if (ec_cm_requantize(x, m, sh) != ec_requantize(x, m, sh)) {
            if (bad++ < 5) printf("x=%d m=%d shift=%d: %d != %d\n", x, m, sh, ec_cm_requantize(x, m, sh), ec_requantize(x, m, sh));
        }
    }
    printf("%ld\n", bad);
    return bad != 0;
}
""")
    exe = tmp_path / "rq"
    subprocess.run([cc, "-O2", "-std=c99", f"-I{KERNELS / 'include'}", str(src), "-o", str(exe)], check=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout


if __name__ == "__main__":   # python tests/c/test_cmsis_kernels.py: print the DS-CNN table
    t = time.perf_counter()
    for name, (ref, cm) in dscnn_counts().items():
        print(f"{name:28s} ref {ref:9d}  cmsis {cm:9d}  ratio {cm / ref:.3f}")
    print(f"{time.perf_counter() - t:.1f} s")
