"""Entropy-coded weights in the C backend (backends/c/entropy.py, kernels/ref/ec_rans_decode.c).

1. rANS round trips (numpy encoder -> numpy decoder, and -> the C decoder built for the host) on random
   and skewed streams: one symbol, all 256, long runs, 90 % zeros, 16 levels, nibble and 2-bit fields,
   every symbol width forced, lengths 1..; corrupt, truncated and padded streams are refused.
2. Generated C with entropy "init" and "layer" == without it == the numpy reference, bit for bit on 100
   inputs, for int8 (16 clustered levels), pruned int8 (90 % zeros: sparse streams), int4-packed,
   kmeans-codebook and float32 models, with the weight arrays really coded; a weight tensor shared by
   two layers is stored once and decoded by each (layer); incompressible weights stay raw.
3. Bytes: coded flash < raw on clustered / pruned distributions (bits per weight before / after printed),
   the RAM the project reports (MODEL_DECODE_BYTES) is what the ELF's .bss grows by, and flash measured
   on the Cortex-M4 ELF shrinks.
4. Cortex-M4 (emulated): the decoder's instructions per decoded byte, and a coded model bit-exact.
5. Warning-free builds of the decoder (gcc, clang, Cortex-M4 / M0+, AArch64) and of coded projects (clang).
"""
from __future__ import annotations

import ctypes
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgec.backends.c import entropy as ent
from edgec.backends.c.emit import emit_c
from edgec.errors import EdgecError
from edgec.ir import Graph, Op, QuantParams, Tensor
from edgec.ir import ops as opreg
from edgec.ir.interpret import run_batch
from edgec.ir.ops import default_attrs
from edgec.run.host import load_host
from test_lowbit_c import AXIS, S, _calibrate, _write, qp
from toolchain import need

N = 100
KROOT = Path(__file__).resolve().parents[2] / "kernels"
DECODER_C = KROOT / "ref" / "ec_rans_decode.c"
WARN = ["-std=c99", "-Wall", "-Wextra", "-Werror"]


# ------------------------------------------------------------------------------------------------
# streams

def streams() -> dict[str, bytes]:
    rng = np.random.default_rng(5)
    n = 6000
    pairs = lambda v: (v[0::2] | (v[1::2] << 4)).astype(np.uint8).tobytes()  # noqa: E731
    levels16 = np.array([-97, -61, -40, -26, -17, -11, -6, -2, 0, 3, 7, 12, 19, 29, 45, 80], np.int8)
    p16 = np.exp(-np.abs(np.arange(16) - 8) / 2.0)
    return {
        "one_symbol": bytes([0x5A]) * 3000,
        "one_byte": b"\x07",
        "all_256": bytes(range(256)) * 9,
        "random": rng.integers(0, 256, n).astype(np.uint8).tobytes(),
        "long_runs": bytes([0] * 2500 + [255] * 2500 + [1] * 7 + [0] * 991),
        "zeros_90": np.where(rng.random(n) < 0.9, 0, rng.integers(-127, 128, n)).astype(np.int8).tobytes(),
        "levels_16": rng.choice(levels16, n, p=p16 / p16.sum()).tobytes(),
        "nibbles": pairs(np.clip(np.round(rng.normal(0, 1.3, 2 * n)), -7, 7).astype(np.int64) & 15),
        "crumbs": np.packbits(rng.random(8 * n) < 0.1, bitorder="little").tobytes(),
        "ramp": bytes(i % 251 for i in range(n)),
    }


@pytest.mark.parametrize("name", list(streams()))
def test_roundtrip_numpy(name):
    data = streams()[name]
    for bits in (None,) + ent.SYMBOL_BITS:
        s = ent.encode(data, bits)
        assert ent.decode(s, len(data)) == data, (name, bits)
        if bits is not None:
            assert s[0] == bits
    m = ent.best_model(data)
    s = ent.encode(data)
    assert abs(len(s) - m.size_est) <= 2, (len(s), m.size_est)       # the size decision's estimate holds
    assert ent.encode(data) == s                                      # deterministic


def test_skew_costs_near_entropy():
    """rANS spends within 2 % (+ its tables) of the order-0 entropy, even where one symbol dominates."""
    for name in ("zeros_90", "levels_16", "nibbles", "crumbs", "long_runs"):
        data = streams()[name]
        m = ent.best_model(data)
        f = ent.fields_of(data, m.bits)
        p = np.bincount(f) / f.size
        h = -float(np.sum(p[p > 0] * np.log2(p[p > 0]))) * f.size / 8
        payload = len(ent.encode(data)) - len(m.header) - 4
        assert payload <= 1.02 * h + 8, (name, payload, h)


def test_lengths_and_errors():
    rng = np.random.default_rng(1)
    for n in (1, 2, 3, 7, 64, 255, 256, 257, 1000):
        d = rng.integers(0, 3, n).astype(np.uint8).tobytes()
        assert ent.decode(ent.encode(d), n) == d
    with pytest.raises(EdgecError):
        ent.encode(b"")
    s = ent.encode(streams()["levels_16"])
    for bad in (s[:-1], s + b"\0", s[:-40] + bytes([s[-40] ^ 4]) + s[-39:], bytes([3]) + s[1:], s[:20]):
        with pytest.raises(EdgecError):
            ent.decode(bad, 6000)


def test_size_decision():
    assert ent.code_array(bytes(ent.MIN_BYTES - 1)) is None                       # tiny: raw
    assert ent.code_array(streams()["random"]) is None                            # incompressible: raw
    s = ent.code_array(streams()["zeros_90"])
    assert s is not None and len(s) + ent.CALL_BYTES < 6000


# -- the C decoder on the host ----------------------------------------------------------------------

_lib = {}


def host_decoder(tmp_path_factory):
    if "lib" not in _lib:
        out = tmp_path_factory.mktemp("rans") / "librans.so"
        r = subprocess.run(["cc", "-O2", *WARN, "-shared", "-fPIC", f"-I{KROOT / 'include'}", str(DECODER_C),
                            "-o", str(out)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        lib = ctypes.CDLL(str(out))
        lib.ec_rans_decode.restype = ctypes.c_int
        lib.ec_rans_decode.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_size_t]
        _lib["lib"] = lib
    return _lib["lib"]


def c_decode(lib, stream: bytes, n: int) -> tuple[int, bytes]:
    buf = ctypes.create_string_buffer(max(n, 1))
    rc = lib.ec_rans_decode(stream, len(stream), buf, n)
    return rc, buf.raw[:n]


def test_c_decoder_host(tmp_path_factory):
    lib = host_decoder(tmp_path_factory)
    for name, data in streams().items():
        for bits in (None,) + ent.SYMBOL_BITS:
            rc, got = c_decode(lib, ent.encode(data, bits), len(data))
            assert rc == 0 and got == data, (name, bits)
    data = streams()["levels_16"]
    s, n = ent.encode(data), len(data)
    h = len(ent.best_model(data).header)            # 3 + 16 symbols + 15 cum entries; the state follows

    def flip(i, bit=1):
        return s[:i] + bytes([s[i] ^ bit]) + s[i + 1:]
    bad = {"truncated": s[:-1], "padded": s + b"\0", "short header": s[:5], "payload bit": flip(len(s) - 40, 4),
           "state bit": flip(h + 1), "cum bit": flip(h - 3), "cum order": s[:3 + 16] + b"\xff\xff" + s[3 + 18:],
           "width 3": bytes([3]) + s[1:], "prec 16": s[:1] + b"\x10" + s[2:]}
    for what, b in bad.items():
        rc, _ = c_decode(lib, b, n)
        assert rc == -1, what
    rc, _ = c_decode(lib, s, n - 1)                 # asked for fewer bytes than coded: state check fails
    assert rc == -1


# ------------------------------------------------------------------------------------------------
# models

def add(g: Graph, op_type: str, x: str, w: np.ndarray, attrs: dict, rng, out: str, per_channel: bool = True,
        bits: int = 8, scheme: str = "uniform", codebook=None, bias: bool = True) -> str:
    """Append an int8 layer with weights `w` (IR layout) stored as `bits` / `scheme` (kmeans: `codebook`)."""
    s_in = float(g.t(x).quant.scale[0])
    axis = AXIS[op_type]
    nch = w.shape[axis]
    ws = rng.uniform(0.002, 0.02, nch).astype(np.float32) if per_channel else np.float32(rng.uniform(0.002, 0.02))
    wq = qp(ws, np.zeros(nch, np.int64), axis, bits, scheme) if per_channel else qp([ws], 0, None, bits, scheme)
    wn = g.const(f"{out}_w", w.astype(np.int8), wq)
    if codebook is not None:
        g.t(wn).meta["codebook"] = codebook
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


LEVELS16 = np.array([-110, -72, -50, -35, -24, -16, -9, -4, 0, 4, 10, 17, 26, 38, 55, 90])


def clustered(shape, rng) -> np.ndarray:
    """int8 weights on 16 levels, the middle ones most used (what 16-cluster weight sharing leaves)."""
    p = np.exp(-np.abs(np.arange(16) - 8) / 2.5)
    return rng.choice(LEVELS16, shape, p=p / p.sum()).astype(np.int8)


def pruned(shape, rng, density: float = 0.1) -> np.ndarray:
    """Deep Compression's weights: 90 % pruned, the survivors shared among 15 non-zero levels."""
    return np.where(rng.random(shape) < density, rng.choice(LEVELS16[LEVELS16 != 0], shape), 0).astype(np.int8)


def int4(shape, rng) -> np.ndarray:
    return np.clip(np.round(rng.normal(0, 1.6, shape)), -7, 7).astype(np.int8)


def kmeans(shape, axis: int | None, rng, n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (axis) or per-tensor codebooks of n entries, indices used with skewed frequencies."""
    p = 0.6 ** np.abs(np.arange(n) - n // 2)
    p /= p.sum()

    def book():
        return np.sort(rng.choice(np.arange(-127, 128), n, replace=False)).astype(np.int8)
    idx = rng.choice(n, shape, p=p)
    if axis is None:
        cb = book()
        return cb[idx], cb
    cb = np.stack([book() for _ in range(shape[axis])])
    w = np.empty(shape, np.int8)
    for c in range(shape[axis]):
        sel = [slice(None)] * len(shape)
        sel[axis] = c
        w[tuple(sel)] = cb[c][idx[tuple(sel)]]
    return w, cb


def conv_chain(kind: str, seed: int = 0) -> Graph:
    """x [1, 9, 11, 5] -> CONV_2D 3x3 (29 filters) -> DEPTHWISE 3x3 (multiplier 1) -> FC per pixel 29 -> 203
    -> FC 203 -> 37, weights drawn per `kind`: "int8" (16 clustered levels), "int4" (uniform 4-bit,
    packed), "kmeans" (16-entry codebooks, per channel and per tensor)."""
    rng = np.random.default_rng(seed)
    g = Graph(name=f"entropy_{kind}")
    g.add_tensor(Tensor("x", (1, 9, 11, 5), "int8", quant=qp(0.03, -4)))
    layers = [("CONV_2D", (29, 3, 3, 5), S(1, 1, act="RELU")),
              ("DEPTHWISE_CONV_2D", (1, 3, 3, 29), S(2, 2, act="RELU6", depth_multiplier=1)),
              ("FULLY_CONNECTED", (203, 29), {"fused_activation_function": "RELU"}),
              ("FULLY_CONNECTED", (37, 203), {"fused_activation_function": "NONE"})]
    x = "x"
    for k, (op_type, shape, attrs) in enumerate(layers):
        per_channel = k != 1
        if kind == "int8":
            x = add(g, op_type, x, clustered(shape, rng), attrs, rng, f"l{k}", per_channel)
        elif kind == "int4":
            x = add(g, op_type, x, int4(shape, rng), attrs, rng, f"l{k}", per_channel, bits=4)
        else:
            w, cb = kmeans(shape, AXIS[op_type] if per_channel else None, rng)
            x = add(g, op_type, x, w, attrs, rng, f"l{k}", per_channel, bits=4, scheme="kmeans", codebook=cb)
    g.inputs, g.outputs = ["x"], [x]
    return g


def pruned_fc(seed: int = 2) -> Graph:
    """A LeNet-300-100-like FC stack at 90 % unstructured sparsity, 15 shared levels (200 -> 150 -> 60 -> 10):
    stored sparse (values, delta indices, counts), then coded."""
    rng = np.random.default_rng(seed)
    g = Graph(name="entropy_pruned")
    g.add_tensor(Tensor("x", (1, 200), "int8", quant=qp(1 / 255, -128)))
    x, n_in = "x", 200
    for k, (n_out, act) in enumerate([(150, "RELU"), (60, "RELU"), (10, "NONE")]):
        x = add(g, "FULLY_CONNECTED", x, pruned((n_out, n_in), rng), {"fused_activation_function": act}, rng, f"p{k}")
        n_in = n_out
    g.inputs, g.outputs = ["x"], [x]
    return g


def float_fc(seed: int = 3) -> Graph:
    """float32 FC 67 -> 53 -> 9 whose weights take 16 values (float weight sharing)."""
    rng = np.random.default_rng(seed)
    g = Graph(name="entropy_f32")
    g.add_tensor(Tensor("x", (1, 2, 67), "float32"))
    x, n_in = "x", 67
    book = np.sort(rng.normal(0, 0.2, 16)).astype(np.float32)
    for k, n_out in enumerate((53, 9)):
        w = g.const(f"f{k}_w", book[rng.integers(0, 16, (n_out, n_in))])
        b = g.const(f"f{k}_b", rng.normal(0, 0.1, n_out).astype(np.float32))
        op = Op("FULLY_CONNECTED", [x, w, b], [f"f{k}"], default_attrs("FULLY_CONNECTED", keep_num_dims=True,
                                                                           fused_activation_function="RELU"),
                name=f"f{k}_op")
        g.add_tensor(Tensor(f"f{k}", opreg.get("FULLY_CONNECTED").shape(op, [g.t(i) for i in op.inputs])[0], "float32"))
        g.ops.append(op)
        x, n_in = f"f{k}", n_out
    g.inputs, g.outputs = ["x"], [x]
    return g


def shared_fc(seed: int = 4) -> Graph:
    """Two FULLY_CONNECTED layers reading one weight tensor (ALBERT-style tying): 64 -> 64 -> 64."""
    rng = np.random.default_rng(seed)
    g = Graph(name="entropy_shared")
    g.add_tensor(Tensor("x", (1, 64), "int8", quant=qp(0.05, 3)))
    w = g.const("tied_w", clustered((64, 64), rng), qp(rng.uniform(0.002, 0.02, 64).astype(np.float32),
                                                        np.zeros(64, np.int64), 0))
    x = "x"
    for k in range(2):
        attrs = default_attrs("FULLY_CONNECTED", fused_activation_function="RELU")
        op = Op("FULLY_CONNECTED", [x, w], [f"h{k}"], attrs, name=f"h{k}_op")
        g.add_tensor(Tensor(f"h{k}", (1, 64), "int8", quant=qp(0.05, -20)))
        g.ops.append(op)
        _calibrate(g, f"h{k}")
        x = f"h{k}"
    g.inputs, g.outputs = ["x"], [x]
    return g


MODELS = {"int8": lambda: conv_chain("int8"), "int4": lambda: conv_chain("int4", 1),
          "kmeans": lambda: conv_chain("kmeans", 2), "pruned": pruned_fc, "float32": float_fc, "shared": shared_fc}
_graphs: dict = {}


def model(name: str):
    """(graph, inputs, reference outputs) for MODELS[name], built once."""
    if name not in _graphs:
        g = MODELS[name]()
        t = g.t("x")
        rng = np.random.default_rng(17)
        xs = (rng.standard_normal((N,) + t.shape[1:]).astype(np.float32) if t.dtype == "float32"
              else rng.integers(-128, 128, (N,) + t.shape[1:]).astype(np.int8))
        _graphs[name] = (g, xs, run_batch(g, [xs])[0])
    return _graphs[name]


# which emitted arrays hold the weights (int8 containers, packed codes and tables, sparse streams)
WEIGHT_ARRAY = re.compile(r"(_w|_wpacked|_wlut|_spv|_spi|_spn)(_\d+)?$")
ARRAY = re.compile(r"static const (\w+) (\w+)\[(\d+)\]")
CODED = re.compile(r"/\* (\w+): (\d+) bytes of \w+, rANS-coded to (\d+)")
CSIZE = {"uint8_t": 1, "int8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4, "float": 4}


def weight_storage(project) -> tuple[int, int]:
    """(raw bytes, stored bytes) of the weight arrays in model.c: stored counts a coded array's stream."""
    src = project.files["model.c"].decode()
    raw = {name: int(n) * CSIZE[ct] for ct, name, n in ARRAY.findall(src) if not name.endswith("_rans")}
    stored = dict(raw)
    for name, n, coded in CODED.findall(src):
        raw[name], stored[name] = int(n), int(coded)
    keep = [k for k in raw if WEIGHT_ARRAY.search(k)]
    return sum(raw[k] for k in keep), sum(stored[k] for k in keep)


def n_weights(g: Graph) -> int:
    return sum(g.t(op.inputs[1]).size for op in g.ops if op.type in AXIS)


@pytest.mark.parametrize("name", list(MODELS))
def test_model_exact(name):
    """entropy off == init == layer == the numpy reference, bit for bit (float32: 1e-5), on 100 inputs."""
    g, xs, want = model(name)
    got = {}
    for mode in ent.MODES:
        p = emit_c(g, entropy=mode)
        got[mode] = load_host(p.files, g, p.arena_size).run([xs])[0]
        if mode == "off":
            assert p.entropy is None and "ec_rans_decode" not in p.kernels
            continue
        r = p.entropy
        assert r.mode == mode and r.arrays, "nothing coded"
        assert p.kernels["ec_rans_decode"] == "ref"
        assert r.stored_bytes < r.data_bytes
        raw, stored = weight_storage(p)
        assert stored < raw, (raw, stored)      # the weights themselves are coded, not only the side arrays
        assert f"#define MODEL_DECODE_BYTES {r.ram_bytes}" in p.files["model.h"].decode()
        if mode == "init":
            assert r.ram_bytes == sum(-(-a.raw_bytes // 16) * 16 for a in r.arrays)
        else:   # one layer's arrays at a time: at most the largest layer's, never all of them
            assert 0 < r.ram_bytes < sum(-(-a.raw_bytes // 16) * 16 for a in r.arrays) or len(g.ops) == 1
    for mode in ("init", "layer"):
        if want.dtype.kind == "f":
            np.testing.assert_allclose(got[mode], want, rtol=1e-5, atol=1e-5)
            assert np.array_equal(got[mode], got["off"]), mode
        else:
            assert np.array_equal(got["off"], want), "off vs reference"
            assert np.array_equal(got[mode], want), f"{mode} vs reference: {int((got[mode] != want).sum())} differ"


def test_bits_per_weight():
    """Coded weight storage < raw on clustered / pruned / peaked distributions; prints bits per weight."""
    rows = []
    for name in ("int8", "pruned", "int4", "kmeans"):
        g, _, _ = model(name)
        raw, stored = weight_storage(emit_c(g, entropy="init"))
        off_raw, _ = weight_storage(emit_c(g))
        assert raw == off_raw                       # the same arrays, before coding
        w = n_weights(g)
        rows.append((name, w, 8 * raw / w, 8 * stored / w))
        assert stored < raw
    print("\nmodel     weights  bits/weight stored: before -> after entropy coding")
    for name, w, b, a in rows:
        print(f"{name:8s} {w:8d}  {b:6.3f} -> {a:6.3f}  ({b / a:.2f}x)")
    byname = {r[0]: r for r in rows}
    assert byname["int8"][3] < 4.5            # 16 levels of entropy ~3.5 bits: well under 8
    assert byname["pruned"][3] < 0.8 * byname["pruned"][2]


def test_shared_weight_decoded_per_layer():
    g, xs, want = model("shared")
    p = emit_c(g, entropy="layer")
    src = p.files["model.c"].decode()
    assert src.count("static const uint8_t tied_w_rans[") == 1                   # one stream in flash
    assert len(re.findall(r"ec_rans_decode\(tied_w_rans,", src)) == 2           # decoded before each layer
    assert p.entropy.ram_bytes == 64 * 64 + 64 * 4       # one copy of the weights (+ the layer's shifts) at a time
    p = emit_c(g, entropy="init")
    assert len(re.findall(r"ec_rans_decode\(tied_w_rans,", p.files["model.c"].decode())) == 1


def test_incompressible_stays_raw():
    """Uniformly random int8 weights do not shrink: entropy init emits them as without coding."""
    rng = np.random.default_rng(8)
    g = Graph(name="noise")
    g.add_tensor(Tensor("x", (1, 96), "int8", quant=qp(0.05, 3)))
    y = add(g, "FULLY_CONNECTED", "x", rng.integers(-127, 128, (80, 96)).astype(np.int8),
            {"fused_activation_function": "NONE"}, rng, "n0", bias=False)
    g.inputs, g.outputs = ["x"], [y]
    p = emit_c(g, entropy="init")
    assert not any(a.name == "n0_w" for a in p.entropy.arrays)
    assert "static const int8_t n0_w[7680]" in p.files["model.c"].decode()
    assert p.entropy.ram_bytes == sum(-(-a.raw_bytes // 16) * 16 for a in p.entropy.arrays)


def test_bad_mode():
    g, _, _ = model("shared")
    with pytest.raises(EdgecError, match="entropy 'fast'"):
        emit_c(g, entropy="fast")
    assert emit_c(g).files == emit_c(g, entropy="off").files


# ------------------------------------------------------------------------------------------------
# Cortex-M4

def _elf_for(tmp_path, project, g: Graph, tag: str):
    from edgec.run.emulate import build_elf
    root = tmp_path / tag
    _write(project, root)
    x_t, y_t = g.t("x"), g.t(g.outputs[0])
    harness = (f'#include "model.h"\nuint8_t arena[{max(project.arena_size, 16)}] __attribute__((aligned(16)));\n'
               f"int8_t x_buf[{x_t.size}], y_buf[{y_t.size}];\n"
               "int run_model(void) { return model_invoke(arena, x_buf, y_buf); }\n")
    sources = [("harness.c", harness)] + [root / rel for rel in project.files if rel.endswith(".c")]
    return build_elf(sources, "cortex-m4", include_dirs=[root, root / "kernels" / "include"])


def symbol_size(elf, name: str) -> int:
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        return int(ELFFile(f).get_section_by_name(".symtab").get_symbol_by_name(name)[0]["st_size"])


def test_cortex_m4_model(tmp_path):
    """An int8 (16-level) model coded at init and per layer runs bit-exactly on the emulated M4 (30 inputs);
    flash and RAM measured on the ELFs: flash shrinks by about what the report says, .bss grows by
    MODEL_DECODE_BYTES; instructions per invoke: init only on the first, layer on every one."""
    need("arm-none-eabi-gcc", emulator=True)
    from edgec.profile.emulated import elf_sizes
    from edgec.run.emulate import Emulator
    g, xs, want = model("int8")
    want = want.reshape(N, -1)
    sizes, counts, elfs, calls = {}, {}, {}, {}
    for mode in ent.MODES:
        p = emit_c(g, variants=("cmsis", "ref"), entropy=mode)
        elf = _elf_for(tmp_path, p, g, mode)
        emu = Emulator(elf, "cortex-m4")
        n = []
        for k, x in enumerate(xs[:30]):
            emu.write("x_buf", x.tobytes())
            assert emu.call("run_model") == 0
            n.append(emu.instructions)
            assert np.array_equal(np.frombuffer(emu.read("y_buf", want.shape[1]), np.int8), want[k]), (mode, k)
        flash, ram, _ = elf_sizes(elf)
        sizes[mode], elfs[mode] = (flash, ram, p.entropy), elf
        calls[mode] = p.files["model.c"].decode().count("ec_rans_decode(")
        counts[mode] = (n[0], float(np.median(n[1:])))   # the first init invoke decodes everything
    f0, r0, _ = sizes["off"]
    print(f"\n[cortex-m4] int8 16-level model: flash off {f0} B; RAM off {r0} B; instructions/invoke off "
          f"{counts['off'][1]:.0f}")
    for mode in ("init", "layer"):
        f, r, rep = sizes[mode]
        print(f"  {mode:5s}: flash {f} B ({f0 - f} B saved; report {rep.saved_bytes} B), static RAM +{r - r0} B "
              f"(MODEL_DECODE_BYTES {rep.ram_bytes}); instructions first invoke {counts[mode][0]}, "
              f"then {counts[mode][1]:.0f}")
        assert f < f0
        # what the report saves, less the decoder's code and ~32 B of code per decode call
        low = rep.saved_bytes - symbol_size(elfs[mode], "ec_rans_decode") - 32 * calls[mode] - 64
        assert low < f0 - f <= rep.saved_bytes + 64, (low, f0 - f)
        assert rep.ram_bytes <= r - r0 <= rep.ram_bytes + 32
    assert counts["init"][1] <= counts["off"][1] * 1.01      # init: decoding only on the first invoke
    assert counts["init"][0] > counts["off"][1]
    assert counts["layer"][1] > counts["off"][1]             # layer: decoding on every invoke


def test_cortex_m4_decoder_speed(tmp_path):
    """The decoder on the emulated M4: equal output; instructions per decoded byte printed and bounded
    (8-bit symbols ~22-24, 4-bit ~42-44 when measured; the bound leaves a margin)."""
    need("arm-none-eabi-gcc", emulator=True)
    from edgec.run.emulate import Emulator, build_elf
    s = streams()
    cases = [("levels_16", None), ("zeros_90", 8), ("zeros_90", None), ("nibbles", None), ("long_runs", None),
             ("crumbs", 2), ("crumbs", 1)]
    coded = [ent.encode(s[name], bits) for name, bits in cases]
    lines, calls = [], []
    for k, ((name, _), c) in enumerate(zip(cases, coded)):
        lines.append(f"static const uint8_t s{k}[{len(c)}] = {{{', '.join(map(str, c))}}};")
        calls.append(f"    case {k}: return ec_rans_decode(s{k}, {len(c)}u, out, {len(s[name])}u);")
    src = "\n".join(['#include "ec_entropy.h"', "uint8_t out[8192];", *lines, "int run(int which);",
                     "int run(int which) {", "    switch (which) {", *calls, "    default: return -2;",
                     "    }", "}", ""])
    emu = Emulator(build_elf([("harness.c", src), DECODER_C], "cortex-m4", include_dirs=[KROOT / "include"]),
                   "cortex-m4")
    print("\n[cortex-m4] ec_rans_decode: instructions per decoded byte")
    for k, ((name, _), c) in enumerate(zip(cases, coded)):
        data = s[name]
        assert emu.call("run", k) == 0, name
        assert emu.read("out", len(data)) == data, name
        per_byte = emu.instructions / len(data)
        print(f"  {name:10s} {c[0]}-bit symbols ({c[2] + 1:3d} present): {per_byte:6.1f} instructions / byte; "
              f"{8 * len(c) / len(data):.2f} bits / byte stored")
        assert per_byte < {8: 30, 4: 55, 2: 125, 1: 250}[c[0]], (name, per_byte)


# ------------------------------------------------------------------------------------------------
# builds

@pytest.mark.parametrize("cc,flags", [("gcc", []), ("clang", []),
                                      ("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb"]),
                                      ("arm-none-eabi-gcc", ["-mcpu=cortex-m0plus", "-mthumb"]),
                                      ("aarch64-linux-gnu-gcc", ["-march=armv8-a"])],
                         ids=["gcc", "clang", "m4", "m0plus", "aarch64"])
def test_decoder_compiles_warning_free(tmp_path, cc, flags):
    need(cc)
    r = subprocess.run([cc, *flags, *WARN, "-O2", f"-I{KROOT / 'include'}", "-c", str(DECODER_C), "-o",
                        str(tmp_path / "d.o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("mode", ["init", "layer"])
def test_project_compiles_with_clang(tmp_path, mode):
    """Coded projects (pointers into the decode buffer in const parameter structs, typed RAM copies)
    compile warning-free with clang too (the host runs above build with gcc)."""
    need("clang")
    for name in ("kmeans", "pruned", "float32"):
        g, _, _ = model(name)
        root = tmp_path / name
        _write(emit_c(g, entropy=mode), root)
        for c in ["model.c", "kernels/ec_rans_decode.c"]:
            r = subprocess.run(["clang", *WARN, "-O2", f"-I{root}", f"-I{root / 'kernels' / 'include'}", "-c",
                                str(root / c), "-o", str(tmp_path / "o.o")], capture_output=True, text=True)
            assert r.returncode == 0, f"{name} {c}: {r.stderr}"
