"""arm64 NEON kernels (kernels/neon/): bit for bit equal to the ref kernels and to the numpy reference,
and at most half the ref kernels' instructions on the MLPerf-Tiny DS-CNN layers.

1. Correctness: a driver built with aarch64-linux-gnu-gcc -O2 -static runs every case under
   qemu-aarch64, twice: -march=armv8-a on a Cortex-A53 model (vmull/vpadal path; an SDOT would trap)
   and -march=armv8.2-a+dotprod on -cpu max (SDOT path). It runs the NEON kernel, the ref kernel
   (linked under ref_* names) and, where there is one, the NEON kernel's scratch-less fallback on 100
   random inputs per case, with every tensor, parameter array and the scratch buffer placed against
   an inaccessible page (alternately after and before it), so that a read or write out of bounds —
   e.g. scratch smaller than the documented formula — crashes the run. Parameters come from the ops'
   C emitters (compiler/edgec/ir/ops/conv.py), expected outputs from the numpy reference
   (edgec.ir.interpret). Shapes sweep odd channel counts, 1x1 / 3x3 / 5x3 / 10x4 kernels, strides,
   dilations, SAME / VALID padding, depth multipliers, activations, bias / no bias, per-tensor /
   per-channel scales and extreme zero points; int8 weights include -128. int8 must match bit for bit
   (and neon == ref); float32 to 1e-5.
2. The vectorised requantization of each kernel file equals ec_requantize on every shift in
   [-31, 30], edge and random multipliers, and exhaustive / edge / random accumulators.
3. Graphs chaining the kernels (DS-CNN int8 and float32, an odd-shaped int8 one), emitted with
   emit_c(variants=("neon",)), cross-built and run under qemu, equal the reference interpreter.
4. Instruction counts (edgec.run.emulate, freestanding ELFs): ref vs neon on the DS-CNN layers on
   cortex-a53 (armv8-a) and cortex-a76 (armv8.2-a+dotprod); neon <= 0.5 x ref.

Tools missing (aarch64-linux-gnu-gcc, qemu-aarch64, unicorn): skip, or fail when
EDGEC_REQUIRE_TOOLCHAINS=1.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from toolchain import require

from edgec.backends.c.emit import emit_c
from edgec.ir import Graph, Op, QuantParams, Tensor
from edgec.ir import ops as opreg
from edgec.ir.interpret import run_batch
from edgec.ir.ops import default_attrs
from edgec.paths import data_dir
from edgec.run.host import cache_root

CC = "aarch64-linux-gnu-gcc"
OBJDUMP = "aarch64-linux-gnu-objdump"
QEMU = "qemu-aarch64"
KROOT = data_dir("kernels")
N = 100
WARN = ["-std=c99", "-Wall", "-Wextra", "-Werror"]
# build flavour -> (-march, qemu -cpu, emulator core)
ARCHES = {"armv8": ("armv8-a", "cortex-a53", "cortex-a53"),
          "dotprod": ("armv8.2-a+dotprod", "max", "cortex-a76")}
KERNELS = ["ec_conv2d_s8", "ec_depthwise_conv2d_s8", "ec_fully_connected_s8",
           "ec_conv2d_f32", "ec_fully_connected_f32"]
REF_RENAME = [f"-D{k}=ref_{k}" for k in KERNELS]


def _ceil(x: int, m: int) -> int:
    return (x + m - 1) // m * m


def neon_scratch(kernel: str, f: dict) -> int:
    """Scratch bytes of the neon kernels (what backends/c/scratch.py must register), from the
    ec_conv_*_params_t fields."""
    if kernel not in ("ec_conv2d_s8", "ec_conv2d_f32"):
        return 0
    k, oc4 = f["k_h"] * f["k_w"] * f["in_c"], _ceil(f["out_c"], 4)
    if kernel == "ec_conv2d_s8":   # per-channel params, filter-row tails, two im2col patches
        return 16 + 16 * oc4 + (16 * oc4 if k % 16 else 0) + 2 * _ceil(k, 16)
    return 16 + (16 * oc4 if k % 4 else 0) + 8 * _ceil(k, 4)


def _missing(what: str):
    require(False, what)


def _need_cross(qemu: bool = True):
    for tool in [CC, OBJDUMP] + ([QEMU] if qemu else []):
        if shutil.which(tool) is None:
            _missing(tool)


def _need_unicorn():
    try:
        from edgec.run import emulate
    except ImportError:
        _missing("edgec.run.emulate")
    if not emulate.available():
        _missing("unicorn / pyelftools / capstone")


# ------------------------------------------------------------------------------------------------
# Cached cross builds: units = [(file name, source bytes, extra cflags)], linked with `link`.

def _build(tag: str, units: list[tuple[str, bytes, list[str]]], link: list[str], include: list[Path]) -> Path:
    h = hashlib.sha256(f"{CC}|{tag}|{' '.join(link)}".encode())
    for name, src, flags in units:
        h.update(name.encode() + b"\0" + src + b"\0" + " ".join(flags).encode() + b"\0")
    for inc in include:
        for p in sorted(inc.glob("*.[ch]")):
            h.update(p.name.encode() + p.read_bytes())
    out_dir = cache_root() / "neon" / h.hexdigest()[:20]
    target = out_dir / tag
    if target.is_file():
        return target
    cache_root().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_root()) as tmp:
        objs = []
        for k, (name, src, flags) in enumerate(units):
            path = Path(tmp) / f"{k}_{name}"
            path.write_bytes(src)
            obj = path.with_suffix(".o")
            cmd = [CC, *flags, *[f"-I{i}" for i in include], "-c", str(path), "-o", str(obj)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
            objs.append(str(obj))
        cmd = [CC, *objs, *link, "-o", str(Path(tmp) / tag)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        assert r.returncode == 0, f"{' '.join(cmd)}\n{r.stderr}"
        out_dir.mkdir(parents=True, exist_ok=True)
        os.replace(Path(tmp) / tag, target)
    return target


def _kernel_units(march: str, extra: list[str]) -> list:
    """The neon kernels (warning-free C99) and the ref kernels renamed ref_*."""
    flags = ["-O2", f"-march={march}", *WARN, *extra]
    units = [(f"neon_{k}.c", (KROOT / "neon" / f"{k}.c").read_bytes(), flags) for k in KERNELS]
    units += [(f"ref_{k}.c", (KROOT / "ref" / f"{k}.c").read_bytes(), flags + REF_RENAME) for k in KERNELS]
    return units


# ------------------------------------------------------------------------------------------------
# The qemu driver: runs neon, ref and neon-without-scratch on every case, tensors against guard pages.

DRIVER = r"""
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "ec_conv.h"

#define REF(k) void ref_##k
REF(ec_conv2d_s8)(const ec_conv_s8_params_t *, const int8_t *, const int8_t *, const int32_t *, int8_t *, void *);
REF(ec_depthwise_conv2d_s8)(const ec_conv_s8_params_t *, const int8_t *, const int8_t *, const int32_t *, int8_t *, void *);
REF(ec_fully_connected_s8)(const ec_fc_s8_params_t *, const int8_t *, const int8_t *, const int32_t *, int8_t *, void *);
REF(ec_conv2d_f32)(const ec_conv_f32_params_t *, const float *, const float *, const float *, float *, void *);
REF(ec_fully_connected_f32)(const ec_fc_f32_params_t *, const float *, const float *, const float *, float *, void *);

static const int32_t *cur;
static int32_t next(void) { return *cur++; }
static const void *take(size_t n) { const void *p = cur; cur += (n + 3) / 4; return p; }

/* n bytes right after (at_start) or right before an inaccessible page */
static void *guarded(const void *src, size_t n, int at_start) {
    const size_t pg = (size_t)sysconf(_SC_PAGESIZE), span = (n + pg - 1) / pg * pg + pg;
    uint8_t *b = mmap(NULL, span + 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED) { perror("mmap"); exit(3); }
    mprotect(b, pg, PROT_NONE);
    mprotect(b + pg + span, pg, PROT_NONE);
    uint8_t *p = at_start ? b + pg : b + pg + span - n;
    if (src) memcpy(p, src, n);
    return p;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    FILE *f = fopen(argv[1], "rb");
    if (!f) return 2;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    int32_t *buf = malloc((size_t)size + 4);
    if (fread(buf, 1, (size_t)size, f) != (size_t)size) return 2;
    fclose(f);
    FILE *fo = fopen(argv[2], "wb");
    cur = buf;
    const int32_t ncases = next();
    for (int32_t c = 0; c < ncases; c++) {
        const int32_t kind = next(), n = next(), has_bias = next(), at_start = next(), scratch_bytes = next();
        const int32_t np = next();
        int32_t pv[32];
        for (int32_t i = 0; i < np; i++) pv[i] = next();
        const int32_t in_bytes = next(), w_bytes = next(), out_bytes = next(), nch = next(), bias_bytes = next();
        const int32_t *mult = guarded(take(4 * (size_t)nch), 4 * (size_t)nch, at_start);
        const int32_t *shift = guarded(take(4 * (size_t)nch), 4 * (size_t)nch, !at_start);
        const void *bias = has_bias ? guarded(take((size_t)bias_bytes), (size_t)bias_bytes, at_start) : NULL;
        const void *w = guarded(take((size_t)w_bytes), (size_t)w_bytes, !at_start);
        const uint8_t *inputs = take((size_t)in_bytes * (size_t)n);
        void *in = guarded(NULL, (size_t)in_bytes, at_start);
        void *out = guarded(NULL, (size_t)out_bytes, !at_start);
        void *scratch = scratch_bytes ? guarded(NULL, (size_t)scratch_bytes, at_start) : NULL;
        fprintf(stderr, "case %d kind %d\n", c, kind);
        ec_conv_s8_params_t cs;
        ec_fc_s8_params_t fs;
        ec_conv_f32_params_t cf;
        ec_fc_f32_params_t ff;
        if (kind == 0 || kind == 1) {
            int32_t *q = &cs.in_h;
            for (int i = 0; i < 19; i++) q[i] = pv[i];
            cs.mult = mult;
            cs.shift = shift;
        } else if (kind == 2) {
            fs.batches = pv[0]; fs.in_features = pv[1]; fs.out_features = pv[2];
            fs.in_zp = pv[3]; fs.out_zp = pv[4]; fs.act_min = pv[5]; fs.act_max = pv[6];
            fs.mult = mult;
            fs.shift = shift;
        } else if (kind == 3) {
            int32_t *q = &cf.in_h;
            for (int i = 0; i < 15; i++) q[i] = pv[i];
            memcpy(&cf.act_min, &pv[15], 4);
            memcpy(&cf.act_max, &pv[16], 4);
        } else {
            ff.batches = pv[0]; ff.in_features = pv[1]; ff.out_features = pv[2];
            memcpy(&ff.act_min, &pv[3], 4);
            memcpy(&ff.act_max, &pv[4], 4);
        }
        for (int variant = 0; variant < 3; variant++) {
            void *s = variant == 2 ? NULL : scratch;
            for (int32_t k = 0; k < n; k++) {
                memcpy(in, inputs + (size_t)k * (size_t)in_bytes, (size_t)in_bytes);
                memset(out, 0x5a + variant, (size_t)out_bytes);
#define CALL(fn, P, B) do { if (variant == 1) ref_##fn(&P, in, w, B, out, s); else fn(&P, in, w, B, out, s); } while (0)
                switch (kind) {
                case 0: CALL(ec_conv2d_s8, cs, bias); break;
                case 1: CALL(ec_depthwise_conv2d_s8, cs, bias); break;
                case 2: CALL(ec_fully_connected_s8, fs, bias); break;
                case 3: CALL(ec_conv2d_f32, cf, bias); break;
                case 4: CALL(ec_fully_connected_f32, ff, bias); break;
                default: return 4;
                }
                fwrite(out, 1, (size_t)out_bytes, fo);
            }
        }
    }
    fclose(fo);
    return 0;
}
"""


class FakeCx:
    """The emit context an op's C emitter talks to, recording the arrays it asks for."""

    def __init__(self, variant: str = "neon"):
        self.arrays: dict[str, np.ndarray] = {}
        self.scratch_expr = "scratch"
        self._variant = variant
        self.variants = (variant, "ref")

    def variant(self, kernel):
        return self._variant if (KROOT / self._variant / f"{kernel}.c").is_file() else "ref"

    def array(self, base, values, ctype, weight=False):
        key = f"@{len(self.arrays)}"
        self.arrays[key] = np.asarray(values).reshape(-1)
        return key

    def ptr(self, name):
        return "NULL" if name is None else name


def qp(scale, zp=0, axis=None) -> QuantParams:
    return QuantParams(np.asarray(scale, np.float32), np.asarray(zp), axis)


CHANNEL_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}


def add_layer(g: Graph, op_type: str, x: str, w_shape, attrs, rng, *, out: str = "y", bias=True,
              per_channel=True, z_out=None, s_out=None) -> str:
    """Appends op_type(x) with random full-range weights (int8: -128 included) and scales; returns its output."""
    xt = g.tensors[x]
    nch = w_shape[CHANNEL_AXIS[op_type]]
    attrs = default_attrs(op_type, **attrs)
    if xt.dtype == "float32":
        wn = g.const("w", (rng.standard_normal(w_shape) * 0.3).astype(np.float32))
        bn = g.const("b", rng.standard_normal(nch).astype(np.float32)) if bias else None
        oq = None
    else:
        s_in = float(xt.quant.scale[0])
        if per_channel:
            ws = rng.uniform(0.002, 0.02, nch).astype(np.float32)
            wq = qp(ws, np.zeros(nch, np.int64), CHANNEL_AXIS[op_type])
        else:
            ws = np.float32(rng.uniform(0.002, 0.02))
            wq = qp([ws])
        wn = g.const("w", rng.integers(-128, 128, w_shape).astype(np.int8), wq)
        bn = None
        if bias:
            bs = np.atleast_1d(np.float32(s_in) * np.asarray(ws, np.float32)).astype(np.float32)
            bq = QuantParams(bs, np.zeros(bs.size, np.int64), 0 if per_channel else None)
            bn = g.const("b", rng.integers(-30000, 30000, nch).astype(np.int32), bq)
        k = int(np.prod(w_shape)) // nch   # terms per output: outputs of std ~50 at this scale
        s_out = s_out if s_out is not None else rng.uniform(0.5, 2.0) * 110 * np.sqrt(k) * s_in * float(np.mean(ws))
        z_out = int(rng.integers(-128, 128)) if z_out is None else z_out
        oq = qp(s_out, z_out)
    op = Op(op_type, [x, wn] + ([bn] if bn else []), [out], attrs)
    shape = opreg.get(op_type).shape(op, [g.t(i) for i in op.inputs])[0]
    g.add_tensor(Tensor(out, shape, xt.dtype, quant=oq))
    g.ops.append(op)
    return out


def one_op(op_type, in_shape, w_shape, attrs, *, dtype="int8", seed=0, z_in=None, **kw) -> Graph:
    """A one-op graph x -> y (see add_layer)."""
    rng = np.random.default_rng(seed)
    g = Graph(name=op_type.lower())
    if dtype == "float32":
        g.add_tensor(Tensor("x", in_shape, "float32"))
    else:
        z_in = int(rng.integers(-128, 128)) if z_in is None else z_in
        g.add_tensor(Tensor("x", in_shape, "int8", quant=qp(rng.uniform(0.005, 0.05), z_in)))
    g.inputs, g.outputs = ["x"], [add_layer(g, op_type, "x", w_shape, attrs, rng, **kw)]
    return g


def S(sh, sw, padding="SAME", act="NONE", dh=1, dw=1, **kw):
    return dict(stride_h=sh, stride_w=sw, padding=padding, fused_activation_function=act,
                dilation_h_factor=dh, dilation_w_factor=dw, **kw)


def F(act="NONE"):
    return dict(fused_activation_function=act)


# (op, input shape, filter shape, attrs, keyword arguments of one_op)
S8_CASES = [
    # CONV_2D
    ("CONV_2D", (1, 49, 10, 1), (64, 10, 4, 1), S(2, 2, act="RELU"), {}),              # DS-CNN conv1 (K 40)
    ("CONV_2D", (1, 25, 5, 64), (64, 1, 1, 64), S(1, 1, act="RELU"), {}),              # DS-CNN pointwise
    ("CONV_2D", (1, 7, 5, 19), (13, 1, 1, 19), S(1, 1), {"z_in": -128}),                # 1x1, K 19, in place
    ("CONV_2D", (1, 9, 7, 21), (11, 1, 1, 21), S(2, 2, "VALID", "RELU6"), {"bias": False}),
    ("CONV_2D", (1, 9, 11, 3), (17, 3, 3, 3), S(1, 1, act="RELU6"), {"z_in": 127}),    # K 27
    ("CONV_2D", (1, 10, 9, 24), (5, 3, 3, 24), S(2, 2, "VALID"), {"per_channel": False}),  # K 216
    ("CONV_2D", (1, 11, 10, 7), (9, 5, 3, 7), S(1, 2, dh=2, dw=3, act="RELU"), {}),    # dilated
    ("CONV_2D", (1, 6, 7, 33), (3, 2, 2, 33), S(2, 1), {"bias": False}),                # out_c < 4
    ("CONV_2D", (1, 5, 4, 5), (1, 1, 3, 5), S(1, 1, act="RELU_N1_TO_1"), {"z_in": 0}),  # out_c 1
    ("CONV_2D", (1, 7, 6, 1), (6, 3, 3, 1), S(1, 1), {}),                               # K 9 < 16
    ("CONV_2D", (1, 4, 3, 2), (7, 5, 4, 2), S(2, 2), {}),                               # filter > image
    ("CONV_2D", (1, 5, 6, 64), (7, 3, 3, 64), S(3, 2, act="RELU"), {"per_channel": False}),  # K 576
    ("CONV_2D", (1, 3, 5, 17), (6, 1, 1, 17), S(1, 1), {"s_out": 1e-5}),               # shift > 0, saturating
    # DEPTHWISE_CONV_2D
    ("DEPTHWISE_CONV_2D", (1, 25, 5, 64), (1, 3, 3, 64), S(1, 1, act="RELU", depth_multiplier=1), {}),  # DS-CNN
    ("DEPTHWISE_CONV_2D", (1, 7, 9, 19), (1, 3, 3, 19), S(1, 1, depth_multiplier=1), {"z_in": -128}),
    ("DEPTHWISE_CONV_2D", (1, 9, 8, 12), (1, 3, 3, 12), S(2, 2, "VALID", "RELU6", depth_multiplier=1), {}),
    ("DEPTHWISE_CONV_2D", (1, 8, 9, 5), (1, 5, 3, 5), S(1, 2, dh=2, dw=1, depth_multiplier=1), {"bias": False}),
    ("DEPTHWISE_CONV_2D", (1, 6, 7, 8), (1, 3, 3, 8), S(1, 1, depth_multiplier=1), {"per_channel": False}),
    ("DEPTHWISE_CONV_2D", (1, 6, 5, 33), (1, 3, 2, 33), S(2, 1, depth_multiplier=1), {}),
    ("DEPTHWISE_CONV_2D", (1, 7, 6, 5), (1, 3, 3, 10), S(1, 1, depth_multiplier=2), {}),
    ("DEPTHWISE_CONV_2D", (1, 8, 6, 3), (1, 3, 3, 24), S(2, 2, "VALID", "RELU", depth_multiplier=8), {}),
    ("DEPTHWISE_CONV_2D", (1, 7, 5, 2), (1, 3, 3, 22), S(1, 1, depth_multiplier=11), {"bias": False}),
    ("DEPTHWISE_CONV_2D", (1, 9, 9, 1), (1, 5, 5, 16), S(1, 1, depth_multiplier=16), {}),
    ("DEPTHWISE_CONV_2D", (1, 5, 6, 16), (1, 7, 6, 16), S(2, 2, depth_multiplier=1), {}),  # filter > image
    # FULLY_CONNECTED
    ("FULLY_CONNECTED", (1, 64), (12, 64), F(), {}),                                     # DS-CNN
    ("FULLY_CONNECTED", (1, 37), (9, 37), F("RELU"), {"z_in": -128}),
    ("FULLY_CONNECTED", (1, 5), (3, 5), F(), {}),                                        # rows < 16
    ("FULLY_CONNECTED", (1, 16), (4, 16), F("RELU6"), {"z_in": 0}),
    ("FULLY_CONNECTED", (1, 100), (1, 100), F(), {"bias": False}),
    ("FULLY_CONNECTED", (1, 1), (7, 1), F(), {}),
    ("FULLY_CONNECTED", (1, 3, 20), (6, 20), F(), {"per_channel": False}),              # 3 batches
    ("FULLY_CONNECTED", (1, 300), (13, 300), F("RELU"), {"per_channel": False, "z_in": 0}),
]

F32_CASES = [
    ("CONV_2D", (1, 49, 10, 1), (64, 10, 4, 1), S(2, 2, act="RELU"), {}),
    ("CONV_2D", (1, 7, 5, 19), (13, 1, 1, 19), S(1, 1), {}),
    ("CONV_2D", (1, 9, 11, 3), (17, 3, 3, 3), S(1, 1, act="RELU6"), {"bias": False}),
    ("CONV_2D", (1, 11, 10, 7), (9, 5, 3, 7), S(1, 2, dh=2, dw=3, act="RELU_N1_TO_1"), {}),
    ("CONV_2D", (1, 6, 7, 33), (3, 2, 2, 33), S(2, 1, "VALID"), {}),
    ("FULLY_CONNECTED", (1, 37), (9, 37), F("RELU"), {}),
    ("FULLY_CONNECTED", (1, 3), (5, 3), F(), {"bias": False}),
    ("FULLY_CONNECTED", (1, 2, 64), (12, 64), F(), {}),
]
KIND = {("CONV_2D", "s8"): 0, ("DEPTHWISE_CONV_2D", "s8"): 1, ("FULLY_CONNECTED", "s8"): 2,
        ("CONV_2D", "f32"): 3, ("FULLY_CONNECTED", "f32"): 4}
CONV_FIELDS = ["in_h", "in_w", "in_c", "out_h", "out_w", "out_c", "k_h", "k_w", "stride_h", "stride_w",
               "dil_h", "dil_w", "pad_h", "pad_w", "depth_mult", "in_zp", "out_zp", "act_min", "act_max"]
FC_FIELDS = ["batches", "in_features", "out_features", "in_zp", "out_zp", "act_min", "act_max"]


def _f32_bits(v) -> int:
    return struct.unpack("<i", struct.pack("<f", float(v)))[0]


def c_call(g: Graph, variant: str = "neon"):
    """(kernel, params fields with arrays resolved, scratch bytes) from the op's C emitter."""
    op = g.ops[0]
    cx = FakeCx(variant)
    call = opreg.get(op.type).c(op, [g.t(i) for i in op.inputs], [g.tensors[o] for o in op.outputs], cx)
    fields = {k: cx.arrays.get(v, v) if isinstance(v, str) else v for k, v in call.params[1].items()}
    return call.kernel, fields


def pack_case(g: Graph, xs: np.ndarray, at_start: int) -> bytes:
    kernel, f = c_call(g)
    op = g.ops[0]
    suffix = kernel.rsplit("_", 1)[1]
    kind = KIND[(op.type, suffix)]
    w = g.tensors[op.inputs[1]].data
    b = g.tensors[op.inputs[2]].data if len(op.inputs) > 2 and op.inputs[2] else None
    y = g.tensors[op.outputs[0]]
    if suffix == "s8":
        pv = [int(f[k]) for k in (CONV_FIELDS if kind < 2 else FC_FIELDS)]
        mult, shift = np.asarray(f["mult"], np.int32), np.asarray(f["shift"], np.int32)
    else:
        names = CONV_FIELDS[:15] if kind == 3 else FC_FIELDS[:3]
        pv = [int(f[k]) for k in names] + [_f32_bits(f["act_min"]), _f32_bits(f["act_max"])]
        mult = shift = np.zeros(0, np.int32)
    scratch = neon_scratch(kernel, f) if kind in (0, 3) else 0
    out_bytes = y.size * np.dtype(y.dtype).itemsize
    in_bytes = xs[0].nbytes
    bias_bytes = b.nbytes if b is not None else 0
    head = [kind, len(xs), int(b is not None), at_start, scratch, len(pv), *pv,
            in_bytes, w.nbytes, out_bytes, mult.size, bias_bytes]

    def pad(a: bytes) -> bytes:
        return a + b"\0" * (-len(a) % 4)

    body = [np.asarray(head, "<i4").tobytes(), mult.astype("<i4").tobytes(), shift.astype("<i4").tobytes()]
    if b is not None:
        body.append(pad(b.tobytes()))
    body += [pad(w.tobytes()), pad(np.ascontiguousarray(xs).tobytes())]
    return b"".join(body)


def run_driver(exe: Path, cpu: str, blobs: list[bytes]) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "cases.bin", Path(tmp) / "out.bin"
        src.write_bytes(struct.pack("<i", len(blobs)) + b"".join(blobs))
        r = subprocess.run([QEMU, "-cpu", cpu, str(exe), str(src), str(dst)], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, f"driver failed ({r.returncode}) in {r.stderr.strip().splitlines()[-1:]}"
        return dst.read_bytes()


def driver_exe(flavour: str) -> Path:
    march = ARCHES[flavour][0]
    units = _kernel_units(march, [])
    units.append(("driver.c", DRIVER.encode(), ["-O1", f"-march={march}", "-std=gnu11"]))
    return _build(f"driver_{flavour}", units, ["-static", "-lm"], [KROOT / "include"])


def _check_cases(flavour: str, cases: list, dtype: str):
    _need_cross()
    exe = driver_exe(flavour)
    graphs, inputs, expected = [], [], []
    for k, (op_type, shape, wshape, attrs, kw) in enumerate(cases):
        g = one_op(op_type, shape, wshape, attrs, dtype=dtype, seed=k, **kw)
        rng = np.random.default_rng(100 + k)
        if dtype == "int8":
            xs = rng.integers(-128, 128, (N,) + shape[1:]).astype(np.int8)
        else:
            xs = rng.standard_normal((N,) + shape[1:]).astype(np.float32)
        graphs.append(g)
        inputs.append(xs)
        expected.append(run_batch(g, [xs])[0].reshape(N, -1))
    blobs = [pack_case(g, xs, k % 2) for k, (g, xs) in enumerate(zip(graphs, inputs))]
    raw = run_driver(exe, ARCHES[flavour][1], blobs)
    pos = 0
    for k, (g, want) in enumerate(zip(graphs, expected)):
        n_out = want.shape[1]
        got = {}
        for variant in ("neon", "ref", "neon_no_scratch"):
            a = np.frombuffer(raw, want.dtype, N * n_out, pos).reshape(N, n_out)
            pos += a.nbytes
            got[variant] = a
        where = f"case {k} {cases[k][:4]} [{flavour}]"
        for variant, a in got.items():
            if dtype == "int8":
                bad = int((a != want).sum())
                assert bad == 0, f"{where}: {variant} differs from the numpy reference in {bad} of {a.size} values"
            else:
                np.testing.assert_allclose(a, want, rtol=1e-5, atol=1e-5, err_msg=f"{where}: {variant}")
        if dtype == "int8":
            assert np.array_equal(got["neon"], got["ref"]), where
    assert pos == len(raw)


@pytest.mark.parametrize("flavour", list(ARCHES))
def test_s8_kernels_bit_exact(flavour):
    _check_cases(flavour, S8_CASES, "int8")


@pytest.mark.parametrize("flavour", list(ARCHES))
def test_f32_kernels(flavour):
    _check_cases(flavour, F32_CASES, "float32")


def test_dotprod_build_uses_sdot():
    """The dotprod flavour really runs SDOT; the armv8-a one has none (it runs on a Cortex-A53 model,
    where SDOT would trap)."""
    _need_cross(qemu=False)
    dis = {}
    for flavour in ARCHES:
        exe = driver_exe(flavour)
        r = subprocess.run([OBJDUMP, "-d", "--no-show-raw-insn", str(exe)], capture_output=True, text=True)
        assert r.returncode == 0
        dis[flavour] = r.stdout
    assert "\tsdot\t" in dis["dotprod"] and "\tsdot\t" not in dis["armv8"]


# ------------------------------------------------------------------------------------------------
# Requantization: each kernel file's vector requant against ec_requantize

REQUANT_TEST = r"""
#include <stdio.h>
#include KERNEL_FILE

static int32x4_t rq(int32x4_t a, const int32_t *m, const int32_t *s) {
#if KIND == 0
    const int32x4_t sv = vld1q_s32(s), z = vdupq_n_s32(0);
    return ec_requant4(a, vld1q_s32(m), vmaxq_s32(sv, z), vminq_s32(sv, z));
#elif KIND == 1
    return ec_requant4(a, m, s);
#else
    return ec_requant4(a, vld1q_s32(m), vld1q_s32(s));
#endif
}

static uint64_t state = 0x9E3779B97F4A7C15ull;
static uint32_t rnd(void) { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return (uint32_t)(state >> 16); }
static int32_t rnd_bits(void) { uint32_t v = rnd(); int b = (int)(rnd() % 32u); return (int32_t)(b == 31 ? v : (v & ((2u << b) - 1u)) - (1u << b)); }

static long long checked, bad;
static void check4(const int32_t *x, const int32_t *m, const int32_t *s) {
    int32_t got[4];
    vst1q_s32(got, rq(vld1q_s32(x), m, s));
    for (int i = 0; i < 4; i++) {
        int32_t want = ec_requantize(x[i], m[i], s[i]);
        checked++;
        if (got[i] != want && bad++ < 10) printf("x=%d mult=%d shift=%d: %d != %d\n", x[i], m[i], s[i], got[i], want);
    }
}

int main(void) {
    static int32_t edges[200];
    int ne = 0;
    const int32_t fixed[] = {INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX - 1, INT32_MAX};
    for (int i = 0; i < 7; i++) edges[ne++] = fixed[i];
    for (int k = 0; k < 31; k++) {
        int32_t v = (int32_t)(1u << k), h = k ? (int32_t)(1u << (k - 1)) : 0;
        edges[ne++] = v; edges[ne++] = -v; edges[ne++] = v + h; edges[ne++] = -v - h;
        edges[ne++] = v + h + 1; edges[ne++] = -v - h - 1;
    }
    for (int32_t shift = -31; shift <= 30; shift++) {
        int32_t mults[24] = {0, 1, 2, 1 << 30, (1 << 30) + 1, INT32_MAX, INT32_MAX - 1, 1518500250, -1, -(1 << 30), INT32_MIN};
        for (int i = 11; i < 24; i++) mults[i] = (int32_t)((rnd() >> 1) | (i < 20 ? 0x40000000u : 0u));
        for (int mi = 0; mi < 24; mi++) {
            int32_t m[4] = {mults[mi], mults[mi], mults[mi], mults[mi]}, s[4] = {shift, shift, shift, shift};
            int32_t x[4];
            for (int i = 0; i < ne; i++) {      /* edge accumulators, 4 lanes of mixed parameters */
                x[i % 4] = edges[i];
                if (i % 4 == 3) check4(x, m, s);
            }
            for (int32_t v = -2048; v < 2048; v += 4) {   /* every small accumulator */
                for (int i = 0; i < 4; i++) x[i] = v + i;
                check4(x, m, s);
            }
            for (int r = 0; r < 512; r++) {     /* random magnitudes */
                for (int i = 0; i < 4; i++) x[i] = rnd_bits();
                check4(x, m, s);
            }
            /* random accumulators around the rounding boundary of the final shift */
            for (int r = 0; r < 256 && shift < 0; r++) {
                int32_t base = (int32_t)(rnd() % 4096u) - 2048;
                for (int i = 0; i < 4; i++) {
                    int64_t t = ((int64_t)base * 2 + 1) << (-shift - 1);   /* odd multiple of half a step */
                    x[i] = (int32_t)(t + (int64_t)(rnd() % 3u) - 1);
                }
                int32_t one[4] = {1 << 30, 1 << 30, 1 << 30, 1 << 30};
                check4(x, one, s);
            }
        }
        /* per-lane mixed shifts and multipliers */
        for (int r = 0; r < 256; r++) {
            int32_t x[4], m[4], s[4];
            for (int i = 0; i < 4; i++) {
                x[i] = rnd_bits();
                m[i] = (int32_t)((rnd() >> 1) | 0x40000000u);
                s[i] = (int32_t)(rnd() % 62u) - 31;
            }
            check4(x, m, s);
        }
    }
    printf("%lld checked, %lld differ\n", checked, bad);
    return bad != 0;
}
"""


@pytest.mark.parametrize("flavour", list(ARCHES))
def test_requantize_matches_ec_requantize(flavour):
    _need_cross()
    march, cpu, _ = ARCHES[flavour]
    for kind, kernel in enumerate(["ec_conv2d_s8", "ec_depthwise_conv2d_s8", "ec_fully_connected_s8"]):
        unit = (f"requant_{kernel}.c", REQUANT_TEST.encode(),
                ["-O2", f"-march={march}", "-std=c99", "-Wall", "-Wextra", "-Wno-unused-function",
                 f'-DKERNEL_FILE="{kernel}.c"', f"-DKIND={kind}"])
        exe = _build(f"requant_{kernel}_{flavour}", [unit], ["-static"], [KROOT / "include", KROOT / "neon"])
        r = subprocess.run([QEMU, "-cpu", cpu, str(exe)], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"{kernel}: {r.stdout}"
        assert " 0 differ" in r.stdout and int(r.stdout.split()[0]) > 1_000_000, r.stdout


# ------------------------------------------------------------------------------------------------
# Instruction counts on the MLPerf-Tiny DS-CNN (keyword spotting) layers

COUNT_HARNESS = r"""
#include "ec_conv.h"

void ref_ec_conv2d_s8(const ec_conv_s8_params_t *, const int8_t *, const int8_t *, const int32_t *, int8_t *, void *);

int32_t cfg[32];
int32_t mult_buf[256], shift_buf[256], bias_buf[256];
int8_t in_buf[16384], w_buf[16384], out_buf[16384];
uint8_t scratch_buf[16384] __attribute__((aligned(16)));
ec_conv_s8_params_t conv_p;
ec_fc_s8_params_t fc_p;

void setup(void) {
    int32_t *q = &conv_p.in_h;
    for (int i = 0; i < 19; i++) q[i] = cfg[i];
    conv_p.mult = mult_buf;
    conv_p.shift = shift_buf;
    fc_p.batches = cfg[20]; fc_p.in_features = cfg[21]; fc_p.out_features = cfg[22];
    fc_p.in_zp = cfg[23]; fc_p.out_zp = cfg[24]; fc_p.act_min = cfg[25]; fc_p.act_max = cfg[26];
    fc_p.mult = mult_buf;
    fc_p.shift = shift_buf;
}

/* what the compiler may call in freestanding code */
void *memcpy(void *d, const void *s, size_t n) {
    uint8_t *a = d;
    const uint8_t *b = s;
    while (n--) *a++ = *b++;
    return d;
}
void *memset(void *d, int v, size_t n) {
    uint8_t *a = d;
    while (n--) *a++ = (uint8_t)v;
    return d;
}
void *memmove(void *d, const void *s, size_t n) {
    uint8_t *a = d;
    const uint8_t *b = s;
    if (a < b) while (n--) *a++ = *b++;
    else while (n--) a[n] = b[n];
    return d;
}
"""

DSCNN = [  # (name, op, input shape, filter shape, attrs)
    ("conv1 49x10x1 -> 64, 10x4 s2", "CONV_2D", (1, 49, 10, 1), (64, 10, 4, 1), S(2, 2, act="RELU")),
    ("depthwise 3x3 25x5x64", "DEPTHWISE_CONV_2D", (1, 25, 5, 64), (1, 3, 3, 64),
     S(1, 1, act="RELU", depth_multiplier=1)),
    ("pointwise 1x1 25x5 64 -> 64", "CONV_2D", (1, 25, 5, 64), (64, 1, 1, 64), S(1, 1, act="RELU")),
    ("fc 64 -> 12", "FULLY_CONNECTED", (1, 64), (12, 64), F()),
]


def count_elf(flavour: str) -> Path:
    march = ARCHES[flavour][0]
    flags = ["-ffreestanding", "-fno-tree-loop-distribute-patterns"]
    units = _kernel_units(march, flags)
    units.append(("harness.c", COUNT_HARNESS.encode(), ["-O2", f"-march={march}", "-std=c99", *flags]))
    return _build(f"count_{flavour}.elf", units, ["-nostdlib", "-static", "-Wl,-e,setup", "-lgcc"],
                  [KROOT / "include"])


def count_instructions(flavour: str) -> list[tuple[str, int, int]]:
    """[(layer, ref instructions, neon instructions)] on the flavour's core; outputs checked too."""
    from edgec.run.emulate import Emulator
    emu = Emulator(count_elf(flavour), ARCHES[flavour][2])
    rows = []
    for k, (name, op_type, shape, wshape, attrs) in enumerate(DSCNN):
        g = one_op(op_type, shape, wshape, attrs, seed=50 + k)
        kernel, f = c_call(g)
        op = g.ops[0]
        x = np.random.default_rng(k).integers(-128, 128, (1,) + shape[1:]).astype(np.int8)
        want = run_batch(g, [x])[0].tobytes()
        cfg = np.zeros(32, np.int32)
        if op_type == "FULLY_CONNECTED":
            cfg[20:27] = [f[n] for n in FC_FIELDS]
        else:
            cfg[:19] = [f[n] for n in CONV_FIELDS]
        emu.write("cfg", cfg.tobytes())
        emu.write("mult_buf", np.asarray(f["mult"], np.int32).tobytes())
        emu.write("shift_buf", np.asarray(f["shift"], np.int32).tobytes())
        emu.write("bias_buf", g.tensors[op.inputs[2]].data.astype(np.int32).tobytes())
        emu.write("w_buf", g.tensors[op.inputs[1]].data.tobytes())
        emu.write("in_buf", x.tobytes())
        emu.call("setup")
        assert neon_scratch(kernel, f) <= emu.symbol_size("scratch_buf")
        params = emu.symbol("fc_p" if op_type == "FULLY_CONNECTED" else "conv_p")
        counts = {}
        for variant in ("ref", "neon"):
            emu.write("out_buf", b"\x5a" * len(want))
            fn = kernel if variant == "neon" else "ref_" + kernel
            emu.call(fn, params, emu.symbol("in_buf"), emu.symbol("w_buf"), emu.symbol("bias_buf"),
                     emu.symbol("out_buf"), emu.symbol("scratch_buf"))
            counts[variant] = emu.instructions
            assert emu.read("out_buf", len(want)) == want, f"{name}: {variant} output differs on {flavour}"
        rows.append((name, counts["ref"], counts["neon"]))
    return rows


@pytest.mark.parametrize("flavour", list(ARCHES))
def test_dscnn_instruction_counts(flavour):
    _need_cross(qemu=False)
    _need_unicorn()
    rows = count_instructions(flavour)
    core = ARCHES[flavour][2]
    report = "\n".join(f"{core:10} {name:32} ref {r:>9} neon {n:>8} ratio {n / r:.3f}" for name, r, n in rows)
    print("\n" + report)
    for name, r, n in rows:
        assert n <= 0.5 * r, f"{name} on {core}: neon {n} > 0.5 x ref {r}\n{report}"


# ------------------------------------------------------------------------------------------------
# Generated projects: emit_c(variants=("neon",)), cross-built, under qemu, against the interpreter

CHAINS = {  # name: (input shape, [(op, filter shape, attrs)])
    "dscnn": ((1, 49, 10, 1), [("CONV_2D", (64, 10, 4, 1), S(2, 2, act="RELU")),
                               ("DEPTHWISE_CONV_2D", (1, 3, 3, 64), S(1, 1, act="RELU", depth_multiplier=1)),
                               ("CONV_2D", (64, 1, 1, 64), S(1, 1, act="RELU")),
                               ("FULLY_CONNECTED", (12, 64), F())]),
    "odd": ((1, 13, 11, 3), [("CONV_2D", (19, 3, 3, 3), S(1, 1, act="RELU6")),
                             ("DEPTHWISE_CONV_2D", (1, 3, 3, 38), S(2, 2, depth_multiplier=2)),
                             ("DEPTHWISE_CONV_2D", (1, 3, 3, 38), S(1, 1, "VALID", dh=2, depth_multiplier=1)),
                             ("CONV_2D", (13, 1, 1, 38), S(1, 1)),
                             ("FULLY_CONNECTED", (7, 13), F("RELU"))]),
}

MAIN = r"""
#include <stdio.h>
#include <stdlib.h>
#include "model.h"

/* usage: main IN.bin OUT.bin N: N samples of the single input, back to back */
int main(int argc, char **argv) {
    static const size_t in_bytes[] = MODEL_INPUT_BYTES, out_bytes[] = MODEL_OUTPUT_BYTES;
    if (argc != 4 || MODEL_NUM_INPUTS != 1 || MODEL_NUM_OUTPUTS != 1) return 2;
    const int n = atoi(argv[3]);
    FILE *fi = fopen(argv[1], "rb"), *fo = fopen(argv[2], "wb");
    uint8_t *x = malloc(in_bytes[0]), *y = malloc(out_bytes[0]), *block = malloc(MODEL_ARENA_SIZE + 16);
    uint8_t *arena = block + ((16 - ((uintptr_t)block & 15u)) & 15u);
    if (!fi || !fo || !x || !y || !block) return 2;
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


def chain(name: str, dtype: str) -> Graph:
    shape, layers = CHAINS[name]
    rng = np.random.default_rng(7)
    g = Graph(name=name)
    g.add_tensor(Tensor("x", shape, dtype, quant=qp(0.02, -3) if dtype == "int8" else None))
    x = "x"
    for k, (op_type, wshape, attrs) in enumerate(layers):
        x = add_layer(g, op_type, x, wshape, attrs, rng, out=f"t{k}")
    g.inputs, g.outputs = ["x"], [x]
    return g


def _wire_scratch(monkeypatch):
    """The neon conv kernels' scratch: backends/c/scratch.py's size once it has one (which must cover
    neon_scratch), else neon_scratch."""
    from edgec.backends.c import scratch
    registered_bytes = scratch.scratch_bytes

    def scratch_bytes(kernel, variant, params):
        registered = registered_bytes(kernel, variant, params)
        if variant != "neon" or kernel not in ("ec_conv2d_s8", "ec_conv2d_f32"):
            return registered
        need = neon_scratch(kernel, params)
        assert registered == 0 or registered >= need, f"scratch.py gives {kernel} {registered} < {need} bytes"
        return registered or need

    monkeypatch.setattr(scratch, "scratch_bytes", scratch_bytes)


@pytest.mark.parametrize("flavour", list(ARCHES))
@pytest.mark.parametrize("name,dtype", [("dscnn", "int8"), ("odd", "int8"), ("dscnn", "float32")])
def test_emitted_project(name, dtype, flavour, monkeypatch, tmp_path):
    _need_cross()
    _wire_scratch(monkeypatch)
    g = chain(name, dtype)
    project = emit_c(g, variants=("neon",))
    used = {k: v for k, v in project.kernels.items() if k in KERNELS}
    assert used and set(used.values()) == {"neon"}, project.kernels
    model_c = project.files["model.c"].decode()
    for line in model_c.splitlines():   # the conv kernels got scratch (else they run scalar code)
        if line.strip().startswith("ec_conv2d_"):
            assert not line.rstrip().endswith("NULL);"), line
    march, cpu, _ = ARCHES[flavour]
    flags = ["-O2", f"-march={march}", *WARN]
    units = [(k.replace("/", "_"), v, flags) for k, v in sorted(project.files.items()) if k.endswith(".c")]
    units.append(("main.c", MAIN.encode(), ["-O2", f"-march={march}", "-std=c99"]))
    inc = tmp_path / "include"
    inc.mkdir()
    for k, v in project.files.items():
        if k.endswith(".h"):
            (inc / Path(k).name).write_bytes(v)
    exe = _build(f"model_{name}_{dtype}_{flavour}", units, ["-static", "-lm"], [inc])
    x_t = g.tensors["x"]
    rng = np.random.default_rng(1)
    if dtype == "int8":
        xs = rng.integers(-128, 128, (N,) + x_t.shape[1:]).astype(np.int8)
    else:
        xs = rng.standard_normal((N,) + x_t.shape[1:]).astype(np.float32)
    want = run_batch(g, [xs])[0].reshape(N, -1)
    (tmp_path / "in.bin").write_bytes(xs.tobytes())
    r = subprocess.run([QEMU, "-cpu", cpu, str(exe), str(tmp_path / "in.bin"), str(tmp_path / "out.bin"), str(N)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = np.frombuffer((tmp_path / "out.bin").read_bytes(), want.dtype).reshape(N, -1)
    if dtype == "int8":
        assert int((got != want).sum()) == 0, f"{int((got != want).sum())} of {got.size} values differ"
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
