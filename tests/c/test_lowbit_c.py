"""Packed low-bit weights in the C backend (backends/c/pack_weights.py, kernels/include/ec_lowbit.h):
graphs whose weights follow docs/quantization.md's contract (int8 containers holding the level values,
QuantParams.bits / scheme, meta["codebook"]) run bit-exactly in generated C (== TFLite Micro, which
runs the int8 containers, == the reference interpreter) for every scheme and width, per tensor and
per channel, over odd shapes; packing round-trips in numpy; the packed const arrays model.c holds
match the report's weight bytes; cross-built projects (Cortex-M4 in the emulator, AArch64 under
qemu) are bit-exact too."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from toolchain import require

from ccheck import check_c_exact
from edgec.backends.c import pack_weights as pw
from edgec.backends.c.emit import emit_c
from edgec.ir import Graph, Op, QuantParams, Tensor
from edgec.ir import ops as opreg
from edgec.ir.interpret import run_batch
from edgec.ir.ops import default_attrs
from edgec.profile.report import layer_rows

N = 100
AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}

# (scheme, bits, codebook entries or None)
CASES = [("uniform", 4, None), ("uniform", 3, None), ("uniform", 2, None), ("ternary", 2, None),
         ("binary", 1, None), ("pow2", 4, None), ("pow2", 3, None), ("pow2", 2, None),
         ("kmeans", 4, 16), ("kmeans", 2, 4), ("kmeans", 2, 3), ("kmeans", 1, 2)]
CASE_IDS = [f"{s}{b}" + (f"_n{n}" if n else "") for s, b, n in CASES]


def levels(scheme: str, bits: int, n: int | None, shape, axis: int, rng) -> tuple[np.ndarray, np.ndarray | None]:
    """Random level values of a weight (int8 container) and, for kmeans, its codebook."""
    shape = tuple(shape)
    if scheme == "uniform":
        lim = (1 << (bits - 1)) - 1
        return rng.integers(-lim, lim + 1, shape).astype(np.int8), None
    if scheme == "ternary":
        return rng.integers(-1, 2, shape).astype(np.int8), None
    if scheme == "binary":
        return rng.choice(np.array([-1, 1], np.int8), shape), None
    if scheme == "pow2":
        emax = min((1 << (bits - 1)) - 2, 6)
        lv = np.array([0] + [s * (1 << e) for e in range(emax + 1) for s in (1, -1)], np.int8)
        return rng.choice(lv, shape), None
    # kmeans: per tensor ([n]) when axis is None, else per channel ([channels, n])
    def book():
        return np.sort(rng.choice(np.arange(-127, 128), n, replace=False)).astype(np.int8)
    if axis is None:
        cb = book()
        return rng.choice(cb, shape), cb
    ch = shape[axis]
    cb = np.stack([book() for _ in range(ch)])
    idx = rng.integers(0, n, shape)
    sel = [slice(None)] * len(shape)
    w = np.empty(shape, np.int8)
    for c in range(ch):
        sel[axis] = c
        w[tuple(sel)] = cb[c][idx[tuple(sel)]]
    return w, cb


def qp(scale, zp=0, axis=None, bits=8, scheme="uniform") -> QuantParams:
    return QuantParams(np.asarray(scale, np.float32), np.asarray(zp), axis, bits, scheme)


def add_layer(g: Graph, op_type: str, x: str, w_shape, attrs: dict, rng, case, per_channel: bool,
              out: str, bias: bool = True) -> str:
    """Append one low-bit-weight layer; its output scale keeps outputs mostly in range."""
    scheme, bits, n = case
    it = g.t(x)
    s_in = float(it.quant.scale[0])
    axis = AXIS[op_type]
    nch = w_shape[axis]
    wv, cb = levels(scheme, bits, n, w_shape, axis if per_channel else None, rng)
    if per_channel:
        ws = rng.uniform(0.002, 0.02, nch).astype(np.float32)
        wq = qp(ws, np.zeros(nch, np.int64), axis, bits, scheme)
    else:
        ws = np.float32(rng.uniform(0.002, 0.02))
        wq = qp([ws], 0, None, bits, scheme)
    wn = g.const(f"{out}_w", wv, wq)
    if cb is not None:
        g.t(wn).meta["codebook"] = cb
    inputs = [x, wn]
    if bias:
        bs = np.atleast_1d(np.float32(s_in) * np.asarray(ws, np.float32)).astype(np.float32)
        bq = QuantParams(bs, np.zeros(bs.size, np.int64), 0 if per_channel else None)
        inputs.append(g.const(f"{out}_b", rng.integers(-3000, 3000, nch).astype(np.int32), bq))
    k = int(np.prod(w_shape)) // nch
    rms = float(np.sqrt(np.mean(wv.astype(np.float64) ** 2))) or 1.0
    s_out = s_in * float(np.mean(ws)) * np.sqrt(k) * rms * 74 / 40
    op = Op(op_type, inputs, [out], default_attrs(op_type, **attrs), name=f"{out}_op")
    shape = opreg.get(op_type).shape(op, [g.t(i) for i in inputs])[0]
    g.add_tensor(Tensor(out, shape, "int8", quant=qp(s_out * 16, int(rng.integers(-10, 10)))))
    g.ops.append(op)
    _calibrate(g, out)
    return out


def _calibrate(g: Graph, out: str, target: float = 30.0) -> None:
    """Rescale `out` so that its outputs on random inputs have a std of ~`target` LSB (few saturate)."""
    t = g.t(out)
    x = g.t("x")
    xs = np.random.default_rng(99).integers(-128, 128, (16,) + x.shape[1:]).astype(np.int8)
    inputs, outputs = g.inputs, g.outputs
    g.inputs, g.outputs = ["x"], [out]
    try:
        for _ in range(6):
            y = run_batch(g, [xs])[0].astype(np.float64) - float(t.quant.zero_point[0])
            sat = float(np.mean((y <= -128 - t.quant.zero_point[0]) | (y >= 127 - t.quant.zero_point[0])))
            std = float(y.std())
            factor = 2.0 if sat > 0.02 else max(std, 0.5) / target
            t.quant = qp(float(t.quant.scale[0]) * factor, int(t.quant.zero_point[0]))
    finally:
        g.inputs, g.outputs = inputs, outputs


def S(sh, sw, padding="SAME", act="NONE", **kw):
    return dict(stride_h=sh, stride_w=sw, padding=padding, fused_activation_function=act, **kw)


# input [1, 7, 9, 5] -> CONV 3x3 (7 filters, K = 45) -> DEPTHWISE 3x3 stride 2, multiplier 3 (21 channels)
# -> DEPTHWISE 2x3 dilated VALID -> FULLY_CONNECTED per pixel (batches > 1, 21 -> 13 features)
def chain(case, per_channel: bool, seed: int = 0) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph(name="lowbit")
    g.add_tensor(Tensor("x", (1, 7, 9, 5), "int8", quant=qp(0.03, -4)))
    x = add_layer(g, "CONV_2D", "x", (7, 3, 3, 5), S(1, 1, act="RELU"), rng, case, per_channel, "c1")
    x = add_layer(g, "DEPTHWISE_CONV_2D", x, (1, 3, 3, 21), S(2, 2, act="RELU6", depth_multiplier=3), rng, case,
                  per_channel, "d1", bias=per_channel)
    x = add_layer(g, "DEPTHWISE_CONV_2D", x, (1, 2, 3, 21),
                  S(1, 1, "SAME", depth_multiplier=1, dilation_h_factor=2, dilation_w_factor=1), rng, case,
                  per_channel, "d2")
    x = add_layer(g, "FULLY_CONNECTED", x, (13, 21), {"fused_activation_function": "NONE"}, rng, case,
                  per_channel, "f1", bias=not per_channel)
    g.inputs, g.outputs = ["x"], [x]
    return g


def fc_graph(case, per_channel: bool, n_in: int = 37, n_out: int = 11, batch: int = 3, seed: int = 1) -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph(name="lowbit_fc")
    g.add_tensor(Tensor("x", (1, batch, n_in), "int8", quant=qp(0.05, 7)))
    y = add_layer(g, "FULLY_CONNECTED", "x", (n_out, n_in), {"fused_activation_function": "RELU",
                                                             "keep_num_dims": True}, rng, case, per_channel, "f")
    g.inputs, g.outputs = ["x"], [y]
    return g


def kernels_used(g: Graph) -> dict:
    return emit_c(g).kernels


@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_chain(case, per_channel):
    g = chain(case, per_channel, seed=CASES.index(case))
    ks = kernels_used(g)
    assert {"ec_conv2d_s8wN", "ec_depthwise_conv2d_s8wN"} <= set(ks), ks
    assert not {"ec_conv2d_s8", "ec_depthwise_conv2d_s8", "ec_fully_connected_s8"} & set(ks), ks
    check_c_exact(g, n=N)


FC_KERNEL = {("uniform", 4): "ec_fully_connected_s8w4", ("uniform", 2): "ec_fully_connected_s8w2",
             ("ternary", 2): "ec_fully_connected_s8w2", ("binary", 1): "ec_fully_connected_s8w1"}


@pytest.mark.parametrize("shape", [(37, 11, 3), (8, 5, 1), (1, 3, 2), (70, 9, 1)], ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("case", [c for c in CASES if c[0] in ("uniform", "ternary", "binary") or c[2] == 16],
                         ids=lambda c: f"{c[0]}{c[1]}")
def test_fc_kernels(case, shape, no_sparse):
    """Each FC kernel over odd / tail-only / multiple-of-8 row lengths (the w4 / w2 / w1 loops' tails)."""
    n_in, n_out, batch = shape
    g = fc_graph(case, per_channel=(n_in % 2 == 1), n_in=n_in, n_out=n_out, batch=batch, seed=n_in)
    ks = kernels_used(g)
    assert FC_KERNEL.get(case[:2], "ec_fully_connected_s8cb") in ks, ks
    check_c_exact(g, n=N)


# ------------------------------------------------------------------------------------------------
# packing in numpy

@pytest.mark.parametrize("per_channel", [True, False], ids=["per_channel", "per_tensor"])
@pytest.mark.parametrize("case", CASES + [("uniform", 1, None), ("pow2", 5, None), ("kmeans", 8, 200),
                                          ("kmeans", 3, 1)], ids=lambda c: f"{c[0]}{c[1]}_{c[2]}")
def test_pack_roundtrip(case, per_channel):
    rng = np.random.default_rng(5)
    for op_type, shape in [("FULLY_CONNECTED", (5, 13)), ("CONV_2D", (3, 3, 1, 7)),
                           ("DEPTHWISE_CONV_2D", (1, 3, 3, 6))]:
        axis = AXIS[op_type]
        w, cb = levels(*case, shape, axis if per_channel else None, rng)
        t = Tensor("w", shape, "int8", w, qp(np.ones(shape[axis]), 0, axis, case[1], case[0]))
        if cb is not None:
            t.meta["codebook"] = cb
        p = pw.pack_tensor(t, op_type)
        rows = shape[axis]
        k = w.size // rows
        fb = pw.kmeans_bits(case[2]) if case[0] == "kmeans" else case[1]
        if op_type == "DEPTHWISE_CONV_2D":   # channels back to back: one bit stream, no row padding
            assert p.field_bits == fb and p.row_bytes == 0 and p.data.size == (rows * k * fb + 7) // 8
        else:
            assert p.field_bits == fb and p.row_bytes == (k * fb + 7) // 8
            assert p.data.size == rows * p.row_bytes
        assert p.data.dtype == np.uint8
        assert np.array_equal(pw.unpack_tensor(p, op_type, shape), w)


def test_pack_layout():
    """The bit layout itself: little-endian fields, rows padded to bytes."""
    t = Tensor("w", (2, 3), "int8", np.array([[1, -1, -2], [3, 0, -4]], np.int8), qp([1.0], bits=3))
    p = pw.pack_tensor(t, "FULLY_CONNECTED")
    # row 0: codes 001, 111, 110 -> byte 0 = 001 | 111 << 3 | (10) << 6 = 0xB9, byte 1 = 1 (padded)
    # row 1: codes 011, 000, 100 -> 0b00_000_011 = 0x03, 0b0000000_1 = 0x01
    assert p.data.tolist() == [0xB9, 0x01, 0x03, 0x01]
    b = Tensor("b", (1, 9), "int8", np.array([[1, -1, -1, 1, 1, 1, -1, -1, 1]], np.int8), qp([1.0], bits=1, scheme="binary"))
    assert pw.pack_tensor(b, "FULLY_CONNECTED").data.tolist() == [0b00111001, 0b1]
    q = Tensor("q", (1, 4), "int8", np.array([[0, 1, -4, 64]], np.int8), qp([1.0], bits=4, scheme="pow2"))
    assert pw.pack_tensor(q, "FULLY_CONNECTED").data.tolist() == [0x10, 0x7B]   # 0, +2^0, -2^2, +2^6


def test_pack_rejects_bad_levels():
    from edgec.errors import EdgecError
    t = Tensor("w", (1, 3), "int8", np.array([[8, 0, 1]], np.int8), qp([1.0], bits=4))
    with pytest.raises(EdgecError):
        pw.pack_tensor(t, "FULLY_CONNECTED")
    t = Tensor("w", (1, 3), "int8", np.array([[3, 0, 1]], np.int8), qp([1.0], bits=4, scheme="pow2"))
    with pytest.raises(EdgecError):
        pw.pack_tensor(t, "FULLY_CONNECTED")


# ------------------------------------------------------------------------------------------------
# weight bytes: model.c's packed arrays vs the report (Tensor.nbytes)

ARRAY = re.compile(r"static const (\w+) (\w+)\[(\d+)\]")
CSIZE = {"uint8_t": 1, "int8_t": 1, "int32_t": 4, "float": 4}


def emitted_arrays(project) -> dict[str, int]:
    src = project.files["model.c"].decode()
    return {name: int(n) * CSIZE[ct] for ct, name, n in ARRAY.findall(src)}


def sample_model(case, per_channel=True) -> Graph:
    """A small keyword-spotting-like model (weights dominated by rows of >= 64 elements)."""
    rng = np.random.default_rng(3)
    g = Graph(name="sample")
    g.add_tensor(Tensor("x", (1, 12, 10, 8), "int8", quant=qp(0.03, -4)))
    x = add_layer(g, "CONV_2D", "x", (32, 3, 3, 8), S(2, 2, act="RELU"), rng, case, per_channel, "c1")
    x = add_layer(g, "DEPTHWISE_CONV_2D", x, (1, 3, 3, 32), S(1, 1, act="RELU", depth_multiplier=1), rng, case,
                  per_channel, "d1")
    x = add_layer(g, "CONV_2D", x, (48, 1, 1, 32), S(1, 1, act="RELU"), rng, case, per_channel, "c2")
    op = Op("RESHAPE", [x, g.const("shape", np.array([1, 6 * 5 * 48], np.int32))], ["flat"],
            default_attrs("RESHAPE"), name="flatten")
    g.add_tensor(Tensor("flat", (1, 6 * 5 * 48), "int8", quant=g.t(x).quant))
    g.ops.append(op)
    y = add_layer(g, "FULLY_CONNECTED", "flat", (12, 6 * 5 * 48), {"fused_activation_function": "NONE"}, rng, case,
                  per_channel, "f1")
    g.inputs, g.outputs = ["x"], [y]
    return g


WEIGHT_CASES = [("uniform", 4, None), ("uniform", 3, None), ("ternary", 2, None), ("binary", 1, None),
                ("pow2", 4, None), ("kmeans", 4, 16), ("kmeans", 2, 4)]


def weight_figures(g: Graph) -> dict:
    """packed bytes in model.c, tables, the report's weight bytes (weights only), params."""
    project = emit_c(g)
    arrays = emitted_arrays(project)
    packed = sum(v for k, v in arrays.items() if k.endswith("wpacked"))
    tables = sum(v for k, v in arrays.items() if k.endswith("wlut"))
    int8_weights = sum(v for k, v in arrays.items() if k.endswith("_w"))   # unpacked int8 containers
    wnames = {op.inputs[1] for op in g.ops if op.type in AXIS}
    report_w = sum(g.t(n).nbytes for n in wnames)
    params = sum(g.t(n).size for n in wnames)
    rows = {r["name"]: r for r in layer_rows(g)}
    return dict(packed=packed, tables=tables, int8_left=int8_weights, report=report_w, params=params,
                report_layers=sum(rows[op.name]["weight_bytes"] for op in g.ops if op.type in AXIS))


@pytest.mark.parametrize("case", WEIGHT_CASES, ids=lambda c: f"{c[0]}{c[1]}_{c[2]}")
def test_weight_bytes(case):
    g = sample_model(case)
    f = weight_figures(g)
    bits = pw.kmeans_bits(case[2]) if case[0] == "kmeans" else case[1]
    assert f["int8_left"] == 0, f                        # no int8 copy of a packed weight is emitted
    assert f["report"] <= f["packed"] <= 1.05 * f["report"] + 64, f     # row padding only (tiny depthwise rows)
    # exact: one padded row per output channel
    want = sum(pw.pack_tensor(g.t(op.inputs[1]), op.type).nbytes for op in g.ops if op.type in AXIS)
    assert f["packed"] == want
    if case[0] != "kmeans":
        assert f["packed"] <= bits / 8 * f["params"] * 1.05 + 64, f
    print(f"\n{case}: params {f['params']} int8 {f['params']} B -> packed {f['packed']} B "
          f"(+{f['tables']} B tables), report {f['report']} B")


def test_sample_model_exact():
    """The sample model's generated C is exact too (int4, per channel)."""
    check_c_exact(sample_model(("uniform", 4, None)), n=N)


# ------------------------------------------------------------------------------------------------
# cross-built projects

MIXED = [("CONV_2D", ("uniform", 4, None)), ("DEPTHWISE_CONV_2D", ("kmeans", 2, 4)),
         ("DEPTHWISE_CONV_2D", ("pow2", 3, None)), ("FULLY_CONNECTED", ("binary", 1, None))]


def mixed_graph(seed: int = 11) -> Graph:
    """Different schemes per layer: conv int4, depthwise kmeans-4 and pow2-3, FC binary then int4 (FC rows
    of 20 / 23: the NEON / DSP loops and their scalar tails)."""
    rng = np.random.default_rng(seed)
    g = Graph(name="mixed")
    g.add_tensor(Tensor("x", (1, 9, 7, 3), "int8", quant=qp(0.03, 5)))
    x = add_layer(g, "CONV_2D", "x", (10, 3, 3, 3), S(2, 1, act="RELU"), rng, ("uniform", 4, None), True, "c1")
    x = add_layer(g, "DEPTHWISE_CONV_2D", x, (1, 3, 3, 20), S(1, 1, depth_multiplier=2), rng, ("kmeans", 2, 4),
                  True, "d1")
    x = add_layer(g, "DEPTHWISE_CONV_2D", x, (1, 3, 3, 20), S(1, 1, "VALID", depth_multiplier=1), rng,
                  ("pow2", 3, None), False, "d2")
    x = add_layer(g, "FULLY_CONNECTED", x, (23, 20), {"fused_activation_function": "NONE"}, rng,
                  ("binary", 1, None), True, "f1")
    x = add_layer(g, "FULLY_CONNECTED", x, (11, 23), {"fused_activation_function": "NONE"}, rng,
                  ("uniform", 4, None), False, "f0")
    g.inputs, g.outputs = ["x"], [x]
    return g


def test_mixed_host():
    check_c_exact(mixed_graph(), n=N)


def _write(project, root):
    for rel, data in project.files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


@pytest.mark.parametrize("variants", [("cmsis", "ref"), ("ref",)], ids=["cmsis", "ref"])
def test_cortex_m4_emulated(tmp_path, variants):
    require(shutil.which("arm-none-eabi-gcc") is not None, "arm-none-eabi-gcc")
    try:
        from edgec.run.emulate import Emulator, available, build_elf
    except ImportError:
        available = None
    require(available is not None and available(), "unicorn/pyelftools (the emulator)")
    g = mixed_graph()
    project = emit_c(g, variants=variants)
    if variants[0] == "cmsis":
        assert project.kernels["ec_fully_connected_s8w4"] == "cmsis", project.kernels
    _write(project, tmp_path)
    x_t, y_t = g.t("x"), g.t(g.outputs[0])
    harness = (f'#include "model.h"\nuint8_t arena[{max(project.arena_size, 16)}] __attribute__((aligned(16)));\n'
               f"int8_t x_buf[{x_t.size}], y_buf[{y_t.size}];\n"
               "int run_model(void) { return model_invoke(arena, x_buf, y_buf); }\n")
    sources = [("harness.c", harness)] + [tmp_path / rel for rel in project.files if rel.endswith(".c")]
    emu = Emulator(build_elf(sources, "cortex-m4", include_dirs=[tmp_path, tmp_path / "kernels" / "include"]),
                   "cortex-m4")
    xs = np.random.default_rng(2).integers(-128, 128, (N,) + x_t.shape).astype(np.int8)
    want = run_batch(g, [xs.reshape((N,) + x_t.shape[1:])])[0].reshape(N, -1)
    for k, x in enumerate(xs):
        emu.write("x_buf", x.tobytes())
        assert emu.call("run_model") == 0
        got = np.frombuffer(emu.read("y_buf", y_t.size), np.int8)
        assert np.array_equal(got, want[k]), f"input {k} differs"


MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "model.h"
int main(int argc, char **argv) {
    static const size_t in_bytes[] = MODEL_INPUT_BYTES, out_bytes[] = MODEL_OUTPUT_BYTES;
    if (argc != 4) return 2;
    const int n = atoi(argv[3]);
    FILE *fi = fopen(argv[1], "rb"), *fo = fopen(argv[2], "wb");
    static uint8_t x[1 << 16], y[1 << 16], arena[MODEL_ARENA_SIZE + 16] __attribute__((aligned(16)));
    if (!fi || !fo) return 2;
    for (int s = 0; s < n; s++) {
        const void *ins[1] = {x};
        void *outs[1] = {y};
        if (fread(x, 1, in_bytes[0], fi) != in_bytes[0]) return 2;
        if (model_invoke_v(arena, ins, outs) != 0) return 1;
        fwrite(y, 1, out_bytes[0], fo);
    }
    fclose(fo);
    return 0;
}
"""


@pytest.mark.parametrize("variants", [("neon",), ("ref",)], ids=["neon", "ref"])
def test_aarch64_qemu(tmp_path, variants):
    cc = "aarch64-linux-gnu-gcc"
    require(shutil.which(cc) is not None and shutil.which("qemu-aarch64") is not None, "aarch64-linux-gnu-gcc / qemu")
    g = mixed_graph()
    project = emit_c(g, variants=variants)
    if variants[0] == "neon":
        assert project.kernels["ec_fully_connected_s8w4"] == project.kernels["ec_fully_connected_s8w1"] == "neon"
    _write(project, tmp_path)
    (tmp_path / "main.c").write_text(MAIN)
    srcs = [str(tmp_path / rel) for rel in project.files if rel.endswith(".c")] + [str(tmp_path / "main.c")]
    exe = tmp_path / "model"
    r = subprocess.run([cc, "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-march=armv8-a", f"-I{tmp_path}",
                        f"-I{tmp_path / 'kernels' / 'include'}", *srcs, "-static", "-lm", "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    x_t = g.t("x")
    xs = np.random.default_rng(3).integers(-128, 128, (N,) + x_t.shape[1:]).astype(np.int8)
    want = run_batch(g, [xs])[0].reshape(N, -1)
    (tmp_path / "in.bin").write_bytes(xs.tobytes())
    r = subprocess.run(["qemu-aarch64", str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out.bin"), str(N)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = np.frombuffer((tmp_path / "out.bin").read_bytes(), np.int8).reshape(N, -1)
    assert int((got != want).sum()) == 0, f"{int((got != want).sum())} of {got.size} values differ"
