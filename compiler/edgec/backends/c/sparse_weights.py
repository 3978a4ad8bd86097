"""Compressed sparse weights for the C backend (kernels in kernels/*/ec_{fully_connected,conv2d}_s8sp?.c,
declared in kernels/include/ec_sparse.h).

Pruning leaves no marks in the IR: a pruned weight is an int8 weight with many exact zeros. For each
constant int8 weight of an int8 FULLY_CONNECTED or CONV_2D (ungrouped; 1x1 and k x k), the C backend
measures every compressed format below on the weight's [output channel][K] matrix (FC [out][in], CONV_2D
OHWI -> [out][k_h * k_w * in_c], the order the kernels walk) and stores the smallest one -- but only if
it, plus the int32 bias it needs, is smaller than the dense weight (int8, or its packed low-bit form)
plus the dense bias. `tensor.meta["sparsity"]` ("block:RxC", "nm:N:M") only adds a block shape to try;
nothing depends on it.

Formats (every one holds, per output channel, the kept values as int8 in row order):

  c  CSR: per row the number of entries, and each value's absolute column, uint8 when K <= 256 else
     uint16. 2-3 bytes per non-zero; the index decodes with no dependency between entries, so it is the
     fastest to gather (and the only unstructured format the x86 host kernels implement: see below).
  d  Relative (delta) indices, as in Deep Compression (Han et al. 2016, section 3): each entry stores the
     number of zeros skipped since the previous entry in `bits` bits (2, 3, 4, 5, 6 or 8); a gap longer
     than 2^bits - 1 is bridged by filler entries of value 0 that skip 2^bits - 1 zeros each (a filler
     sits at prev + 2^bits). Fields are packed 32 // bits per little-endian uint32 word (field f in bits
     [f * bits, (f + 1) * bits)); each row starts a new word. Fillers keep the decode branch-free (every
     entry is a multiply-add) at the price of a value byte each, so the width is chosen per tensor: at
     10 % density 5 bits take 1.75 bytes per non-zero (4 bits ~1.85, 8 bits ~2.0, CSR 3), which puts
     LeNet-300-100 at 90 % sparsity at 5.5x fewer bytes than int8. The entry count per row includes
     the fillers.
  b  Block CSR: the matrix in R x C blocks (R, C <= 16; C must divide K; the last block row may be
     partial, its missing rows stored as zeros); per block row the number of non-zero blocks, each
     block's column (in blocks) as uint8 / uint16, and its R * C values row by row. Structured pruning
     (1x4, 4x4, 16x1 ...) amortises one index over R * C values, and the kernels load C inputs at once.
  n  N:M with M = 4 (N = 1 or 2: 1:4, 2:4): every group of 4 consecutive row elements holds <= N
     non-zeros; per group exactly N values (zeros fill short groups) and N 2-bit in-group positions,
     packed 4 per byte little-endian, each row padded to a whole byte. No counts: 0.3125 / 0.625 bytes
     per element. A fill entry points at the group's first element (always inside the row).

Counts (c, d: per row; b: per block row) are uint8 when every count is <= 255, else uint16.

The kernels compute TFLite's sum_k w * (x - in_zp) as bias' + sum_k w * x with bias' = bias -
in_zp * sum_k w folded here (modulo 2^32 like the int32 accumulator; CMSIS-NN's kernel sums do the
same), so the inner loops are plain gather-multiply-adds that skip every zero. Conv taps in the padding
read x = in_zp, whose term cancels in the folded bias as TFLite skips it.

Which formats a target may use: the ones its sparse kernel variant implements (the variant folder that
serves the CSR kernel, e.g. cmsis for Cortex-M, opt for the host). kernels/opt/ (x86 hosts) implements
c, and b for blocks 4, 8 or 16 wide, only: against SIMD dense kernels at ~12 MACs per cycle, a delta
decode (a serial prefix sum), an N:M gather or a narrow block is slower than dense, whereas CSR's
independent gathers are faster at 90 % sparsity (benchmarks/results/sparse_kernels.md). Size alone
decides among the implemented formats.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ...errors import EdgecError
from ...ir import Tensor

FORMATS = ("c", "n", "b", "d")          # ties in bytes go to the earlier (faster) format
DELTA_BITS = (2, 3, 4, 5, 6, 8)         # 16, 10, 8, 6, 5, 4 fields per word (7 bits: 4 per word, as 8)
NM_M = 4
NM_N = (1, 2)
BLOCKS = ((1, 2), (1, 4), (1, 8), (1, 16), (2, 1), (4, 1), (8, 1), (16, 1), (2, 2), (2, 4), (4, 2),
          (4, 4), (8, 8))
MAX_BLOCK = 16
# block widths a variant's block kernel has a fast path for, where it is not all (kernels/opt/: whole
# 4 / 8 / 16-byte loads; narrower blocks there run slower than the dense SIMD kernel, CSR does better)
BLOCK_COLUMNS = {"opt": (4, 8, 16)}
KERNELS = {"FULLY_CONNECTED": "ec_fully_connected_s8sp", "CONV_2D": "ec_conv2d_s8sp"}


@dataclass
class SparseWeights:
    fmt: str                     # "c", "d", "b" or "n" (module docstring)
    rows: int                    # output channels
    k: int                       # row length
    values: np.ndarray           # int8, in kernel order
    counts: np.ndarray | None    # uint8 / uint16 per row (c, d) or block row (b); None for n
    index: np.ndarray            # c, b: uint8 / uint16; d: uint32 words; n: uint8 packed positions
    index_bits: int              # c, b: 8 | 16; d: field width; n: 2
    block: tuple[int, int] = (1, 1)   # b: (R, C); n: (N, M)

    @property
    def nbytes(self) -> int:
        """Flash bytes: values + indices + counts (the folded int32 bias is not included)."""
        return int(self.values.nbytes + self.index.nbytes + (0 if self.counts is None else self.counts.nbytes))

    @property
    def label(self) -> str:
        if self.fmt == "c":
            return f"csr{self.index_bits}"
        if self.fmt == "d":
            return f"delta{self.index_bits}"
        if self.fmt == "b":
            return f"block{self.block[0]}x{self.block[1]}"
        return f"nm{self.block[0]}:{self.block[1]}"

    @property
    def count_bytes(self) -> int:
        return 0 if self.counts is None else self.counts.itemsize


# ------------------------------------------------------------------------------------------------
# sizes (computed before encoding, to pick a format without building every candidate)

def _count_dtype(n_max: int):
    return np.uint8 if n_max <= 0xFF else (np.uint16 if n_max <= 0xFFFF else None)


def _delta_codes(m: np.ndarray, bits: int) -> np.ndarray:
    """Entries per row (non-zeros + fillers) of the delta format with `bits`-bit fields."""
    rows, k = m.shape
    r, c = np.nonzero(m)
    if r.size == 0:
        return np.zeros(rows, np.int64)
    first = np.r_[True, r[1:] != r[:-1]]
    prev = np.where(first, -1, np.r_[-1, c[:-1]])
    fill = (c - prev - 1) >> bits                       # gap // 2^bits fillers before each non-zero
    return np.bincount(r, minlength=rows) + np.bincount(r, weights=fill, minlength=rows).astype(np.int64)


def format_sizes(m: np.ndarray, hint=None) -> dict[tuple, int]:
    """Bytes of every feasible encoding of the int8 matrix m [rows, K]: {(fmt, param...): bytes}."""
    m = np.asarray(m)
    rows, k = m.shape
    nz = m != 0
    per_row = nz.sum(axis=1)
    nnz = int(per_row.sum())
    out: dict[tuple, int] = {}
    ct = _count_dtype(int(per_row.max(initial=0)))
    if ct is not None:
        ib = 1 if k <= 256 else (2 if k <= 65536 else 0)
        if ib:
            out[("c", 8 * ib)] = nnz * (1 + ib) + rows * np.dtype(ct).itemsize
    for bits in DELTA_BITS:
        codes = _delta_codes(m, bits)
        ct = _count_dtype(int(codes.max(initial=0)))
        if ct is not None:
            f = 32 // bits
            out[("d", bits)] = int(codes.sum()) + 4 * int(((codes + f - 1) // f).sum()) + rows * np.dtype(ct).itemsize
    g = -(-k // NM_M)
    if k:
        grp = np.zeros((rows, g * NM_M), bool)
        grp[:, :k] = nz
        most = int(grp.reshape(rows, g, NM_M).sum(axis=2).max(initial=0))
        for n in NM_N:
            if most <= n:
                out[("n", n)] = rows * g * n + rows * (-(-g * n // 4))
    for r, c in _block_shapes(hint):
        if k % c:
            continue
        br, bc = -(-rows // r), k // c
        pad = np.zeros((br * r, k), bool)
        pad[:rows] = nz
        blocks = pad.reshape(br, r, bc, c).any(axis=(1, 3))
        nb = int(blocks.sum())
        ct = _count_dtype(int(blocks.sum(axis=1).max(initial=0)))
        ib = 1 if bc <= 256 else (2 if bc <= 65536 else 0)
        if ct is not None and ib:
            out[("b", r, c)] = nb * (r * c + ib) + br * np.dtype(ct).itemsize
    return out


def _block_shapes(hint) -> list[tuple[int, int]]:
    shapes = list(BLOCKS)
    h = parse_hint(hint)
    if h and h[0] == "b" and h[1:] not in shapes and max(h[1:]) <= MAX_BLOCK:
        shapes.append(h[1:])
    return shapes


def parse_hint(hint) -> tuple | None:
    """meta["sparsity"] as ("b", R, C) / ("n", N, M) / ("weight",), or None (absent, a number, unknown)."""
    if not isinstance(hint, str):
        return None
    mb = re.fullmatch(r"block:(\d+)x(\d+)", hint.strip())
    if mb:
        return ("b", int(mb.group(1)), int(mb.group(2)))
    mn = re.fullmatch(r"nm:(\d+):(\d+)", hint.strip())
    if mn:
        return ("n", int(mn.group(1)), int(mn.group(2)))
    return ("weight",) if hint.strip() == "weight" else None


# ------------------------------------------------------------------------------------------------
# encoders

def encode(m: np.ndarray, key: tuple) -> SparseWeights:
    """The encoding `key` (a key of format_sizes) of the int8 matrix m [rows, K]."""
    m = np.asarray(m, np.int8)
    fmt = key[0]
    if fmt == "c":
        return _encode_csr(m, key[1])
    if fmt == "d":
        return _encode_delta(m, key[1])
    if fmt == "b":
        return _encode_block(m, key[1], key[2])
    if fmt == "n":
        return _encode_nm(m, key[1])
    raise EdgecError(f"unknown sparse format {key!r}")


def _counts(n: np.ndarray) -> np.ndarray:
    ct = _count_dtype(int(np.max(n, initial=0)))
    if ct is None:
        raise EdgecError(f"sparse rows of up to {int(np.max(n))} entries exceed uint16 counts")
    return np.asarray(n).astype(ct)


def _encode_csr(m: np.ndarray, bits: int) -> SparseWeights:
    rows, k = m.shape
    if k > 1 << bits:
        raise EdgecError(f"CSR with {bits}-bit columns cannot index rows of {k}")
    r, c = np.nonzero(m)
    return SparseWeights("c", rows, k, m[r, c].astype(np.int8), _counts(np.bincount(r, minlength=rows)),
                         c.astype(np.uint8 if bits == 8 else np.uint16), bits)


def _encode_delta(m: np.ndarray, bits: int) -> SparseWeights:
    rows, k = m.shape
    if bits not in DELTA_BITS:
        raise EdgecError(f"delta fields of {bits} bits (supported: {DELTA_BITS})")
    per_word, top = 32 // bits, (1 << bits) - 1
    words, values, counts = [], [], np.zeros(rows, np.int64)
    for i in range(rows):
        c = np.flatnonzero(m[i])
        gaps = np.diff(np.r_[-1, c]) - 1
        fill = gaps >> bits
        # per non-zero: `fill` fillers of field top (value 0), then the remainder gap with the value
        n = int(fill.sum()) + c.size
        field = np.full(n, top, np.int64)
        val = np.zeros(n, np.int8)
        last = np.cumsum(fill + 1) - 1                   # where each non-zero lands
        field[last] = gaps & top
        val[last] = m[i, c]
        nw = -(-n // per_word)
        f = np.zeros(nw * per_word, np.int64)
        f[:n] = field
        words.append((f.reshape(nw, per_word) << (bits * np.arange(per_word))).sum(axis=1).astype(np.uint32))
        values.append(val)
        counts[i] = n
    return SparseWeights("d", rows, k, np.concatenate(values) if values else np.zeros(0, np.int8), _counts(counts),
                         np.concatenate(words) if words else np.zeros(0, np.uint32), bits)


def _encode_block(m: np.ndarray, r: int, c: int) -> SparseWeights:
    rows, k = m.shape
    if not (1 <= r <= MAX_BLOCK and 1 <= c <= MAX_BLOCK) or k % c:
        raise EdgecError(f"block {r}x{c} does not tile rows of {k} (blocks up to {MAX_BLOCK}x{MAX_BLOCK}, "
                         f"columns dividing the row)")
    br, bc = -(-rows // r), k // c
    pad = np.zeros((br * r, k), np.int8)
    pad[:rows] = m
    blk = pad.reshape(br, r, bc, c).transpose(0, 2, 1, 3)          # [br, bc, r, c]
    keep = blk.any(axis=(2, 3))
    bi, bj = np.nonzero(keep)
    ib = np.uint8 if bc <= 256 else np.uint16
    return SparseWeights("b", rows, k, blk[bi, bj].reshape(-1).astype(np.int8),
                         _counts(keep.sum(axis=1)), bj.astype(ib), 8 * np.dtype(ib).itemsize, (r, c))


def _encode_nm(m: np.ndarray, n: int) -> SparseWeights:
    rows, k = m.shape
    g = -(-k // NM_M)
    grp = np.zeros((rows, g * NM_M), np.int8)
    grp[:, :k] = m
    grp = grp.reshape(rows, g, NM_M)
    if (grp != 0).sum(axis=2).max(initial=0) > n:
        raise EdgecError(f"weights are not {n}:{NM_M} sparse")
    # the first n positions in the order: non-zeros first (ascending), then the others (value 0 ->
    # position 0, the group's first element)
    order = np.argsort(grp == 0, axis=2, kind="stable")[:, :, :n]
    vals = np.take_along_axis(grp, order, axis=2)
    pos = np.where(vals != 0, order, 0)
    per_row = g * n
    fields = np.zeros((rows, -(-per_row // 4) * 4), np.int64)
    fields[:, :per_row] = pos.reshape(rows, per_row)
    packed = (fields.reshape(rows, -1, 4) << (2 * np.arange(4))).sum(axis=2).astype(np.uint8)
    return SparseWeights("n", rows, k, vals.reshape(-1).astype(np.int8), None, packed.reshape(-1), 2, (n, NM_M))


def decode(s: SparseWeights) -> np.ndarray:
    """The int8 [rows, K] matrix an encoding stands for, by walking it as the kernels do."""
    out = np.zeros((s.rows, s.k), np.int64)
    if s.fmt == "c":
        r = np.repeat(np.arange(s.rows), s.counts.astype(np.int64))
        np.add.at(out, (r, s.index.astype(np.int64)), s.values)
    elif s.fmt == "d":
        per_word, mask = 32 // s.index_bits, (1 << s.index_bits) - 1
        words = s.index.astype(np.int64)
        w = v = 0
        for i in range(s.rows):
            n = int(s.counts[i])
            nw = -(-n // per_word)
            fields = ((words[w:w + nw, None] >> (s.index_bits * np.arange(per_word))) & mask).reshape(-1)[:n]
            pos = np.cumsum(fields + 1) - 1
            if n and pos[-1] >= s.k:
                raise EdgecError(f"delta row {i} runs past its {s.k} columns")
            np.add.at(out[i], pos, s.values[v:v + n])
            w, v = w + nw, v + n
    elif s.fmt == "b":
        r, c = s.block
        br = -(-s.rows // r)
        full = np.zeros((br * r, s.k), np.int64)
        bi = np.repeat(np.arange(br), s.counts.astype(np.int64))
        blocks = s.values.reshape(-1, r, c).astype(np.int64)
        for b, (i, j) in enumerate(zip(bi, s.index.astype(np.int64))):
            full[i * r:(i + 1) * r, j * c:(j + 1) * c] += blocks[b]
        if np.any(full[s.rows:]):
            raise EdgecError("block padding rows hold non-zeros")
        out = full[:s.rows]
    else:
        n, mm = s.block
        g = -(-s.k // mm)
        per_row = g * n
        rb = -(-per_row // 4)
        fields = ((s.index.reshape(s.rows, rb, 1).astype(np.int64) >> (2 * np.arange(4))) & 3).reshape(s.rows, -1)
        pos = fields[:, :per_row].reshape(s.rows, g, n) + mm * np.arange(g)[None, :, None]
        if np.any(pos >= s.k):
            raise EdgecError("N:M position outside the row")
        vals = s.values.reshape(s.rows, g, n).astype(np.int64)
        for i in range(s.rows):
            np.add.at(out[i], pos[i].reshape(-1), vals[i].reshape(-1))
    return out.astype(np.int8)


# ------------------------------------------------------------------------------------------------
# the choice

def weight_matrix(op_type: str, w: np.ndarray) -> np.ndarray:
    """[output channel][K] in the kernels' order (FC [out][in]; CONV_2D OHWI -> [out][kh * kw * in_c])."""
    w = np.asarray(w)
    return w.reshape(w.shape[0], -1)


def dense_bytes(t: Tensor, op_type: str) -> int:
    """Bytes the C backend stores the weight in when dense: int8, or packed low-bit (pack_weights.py)."""
    from .pack_weights import is_lowbit, pack_tensor
    if is_lowbit(t):
        p = pack_tensor(t, op_type)
        return p.nbytes + (p.lut.nbytes if p.kind == "lut" else 0)
    return int(np.asarray(t.data).size)


@dataclass
class SparsePlan:
    weights: SparseWeights
    bias: np.ndarray | None      # folded int32 bias (None: no bias and in_zp == 0)
    dense_bytes: int             # dense weight + bias bytes
    sparse_bytes: int            # sparse weight + folded bias bytes


def folded_bias(m: np.ndarray, bias: np.ndarray | None, in_zp: int) -> np.ndarray | None:
    """bias - in_zp * sum(w) per row, wrapped to int32 (None when there is nothing to add)."""
    if bias is None and in_zp == 0:
        return None
    b = np.zeros(m.shape[0], np.int64) if bias is None else np.asarray(bias, np.int64)
    v = b - np.int64(in_zp) * np.asarray(m, np.int64).sum(axis=1)
    return (((v + 2 ** 31) & 0xFFFFFFFF) - 2 ** 31).astype(np.int32)


def plan(op_type: str, wt: Tensor, bt: Tensor | None, in_zp: int, formats=FORMATS) -> SparsePlan | None:
    """The sparse storage of weight `wt` if one of `formats` (target_formats' form) is smaller than
    dense, else None."""
    m = weight_matrix(op_type, wt.data)
    bias = None if bt is None else np.asarray(bt.data)
    dense = dense_bytes(wt, op_type) + (0 if bias is None else 4 * m.shape[0])
    extra = 0 if (bias is None and in_zp == 0) else 4 * m.shape[0]   # the folded bias
    if np.count_nonzero(m) + extra >= dense:    # every format stores at least a byte per non-zero
        return None
    sizes = {key: b for key, b in format_sizes(m, wt.meta.get("sparsity")).items() if _allowed(key, formats)}
    if not sizes:
        return None
    key = min(sizes, key=lambda kk: (sizes[kk], FORMATS.index(kk[0])))
    fb = folded_bias(m, bias, in_zp)
    sparse = sizes[key] + extra
    if sparse >= dense:
        return None
    s = encode(m, key)
    assert s.nbytes == sizes[key], (key, s.nbytes, sizes[key])
    return SparsePlan(s, fb, dense, sparse)


def _eligible(wt: Tensor, bt: Tensor | None) -> bool:
    return (wt is not None and wt.is_const and wt.dtype == "int8" and wt.data is not None
            and (bt is None or (bt.is_const and bt.dtype == "int32")))


def target_formats(cx, op_type: str) -> tuple:
    """The formats the target's sparse kernel variant implements (module docstring): format letters, a
    block format as ("b", allowed block widths) where the variant restricts them (BLOCK_COLUMNS)."""
    base = KERNELS[op_type]
    home = cx.variant(base + "c")
    out = []
    for f in FORMATS:
        if cx.variant(base + f) == home:
            out.append(("b", BLOCK_COLUMNS[home]) if f == "b" and home in BLOCK_COLUMNS else f)
    return tuple(out)


def _allowed(key: tuple, formats) -> bool:
    for f in formats:
        if f == key[0] or (isinstance(f, tuple) and f[0] == key[0] == "b" and key[2] in f[1]):
            return True
    return False


# ------------------------------------------------------------------------------------------------
# C emission (hooks in compiler/edgec/ir/ops/conv.py's _fc_c / _conv_family_c)

def _sparse_fields(op, cx, s: SparseWeights) -> dict:
    """The ec_sparse_t fields (index and counts arrays emitted into flash)."""
    ctype = {"d": "uint32_t", "n": "uint8_t"}.get(s.fmt) or ("uint8_t" if s.index_bits == 8 else "uint16_t")
    counts = "NULL" if s.counts is None else cx.array(op.name + "_spn", s.counts,
                                                         "uint8_t" if s.count_bytes == 1 else "uint16_t", weight=True)
    return {"sp.count_bytes": s.count_bytes, "sp.counts": counts,
            "sp.index": cx.array(op.name + "_spi", s.index, ctype, weight=True), "sp.index_bits": s.index_bits,
            "sp.block_r": s.block[0], "sp.block_c": s.block[1]}


def fc_sparse_call(op, cx, it: Tensor, wt: Tensor, bt: Tensor | None, ot: Tensor):
    """The CCall of an int8 FULLY_CONNECTED with sparse weights, or None (not int8 with constant
    symmetric weights, or dense is smaller) to let _fc_c emit it. Called before _fc_c takes a pointer to
    the weights (which would emit them dense), so it builds the int8 fields itself, with _fc_c's helpers."""
    from ...ir.ops import CCall
    from ...ir.ops.conv import _scale, _zp, fc_multipliers
    from ...ir.quant import activation_range
    if (it.dtype != "int8" or ot.dtype != "int8" or it.quant is None or ot.quant is None or wt.quant is None
            or not _eligible(wt, bt) or np.any(np.asarray(wt.quant.zero_point) != 0)):
        return None
    o, i = wt.shape
    in_zp = _zp(it)
    p = plan("FULLY_CONNECTED", wt, bt, in_zp, target_formats(cx, "FULLY_CONNECTED"))
    if p is None:
        return None
    mult, shift = fc_multipliers(it, wt, ot, o)
    lo, hi = activation_range(op.attrs["fused_activation_function"], ot.dtype, float(_scale(ot)), _zp(ot))
    fields = {"batches": it.size // i, "in_features": i, "out_features": o, "in_zp": in_zp, "out_zp": _zp(ot),
              "act_min": lo, "act_max": hi, "mult": cx.array(op.name + "_mult", mult, "int32_t"),
              "shift": cx.array(op.name + "_shift", shift, "int32_t")}
    s = p.weights
    kernel = KERNELS["FULLY_CONNECTED"] + s.fmt
    values = cx.array(op.name + "_spv", s.values, "int8_t", weight=True)
    bias = "NULL" if p.bias is None else cx.array(op.name + "_spb", p.bias, "int32_t", weight=True)
    f = {**{f"fc.{k}": v for k, v in fields.items()}, **_sparse_fields(op, cx, s)}
    args = [cx.ptr(op.inputs[0]), values, bias, cx.ptr(op.outputs[0]), cx.scratch_expr]
    return CCall(kernel, args, ("ec_fc_s8sp_params_t", f), scratch=0)


def conv_scratch(fields: dict) -> int:
    """ec_conv2d_s8sp*: the input patch of one output pixel (int8, K bytes, rounded up to 4), none for 1x1."""
    if int(fields["k_h"]) == 1 and int(fields["k_w"]) == 1:
        return 0
    k = int(fields["k_h"]) * int(fields["k_w"]) * int(fields["in_c"])
    return (k + 3) // 4 * 4


def conv_sparse_call(op, cx, kernel: str, suffix: str, groups: int, ft: Tensor, bt: Tensor | None,
                     fields: dict, in_name: str):
    """The CCall of an int8 CONV_2D (kernel "ec_conv2d", one group) with sparse weights, or None.
    fields: the ec_conv_s8_params_t dict _conv_family_c built."""
    from ...ir.ops import CCall
    if kernel != "ec_conv2d" or suffix != "s8" or groups != 1 or not _eligible(ft, bt):
        return None
    p = plan("CONV_2D", ft, bt, int(fields["in_zp"]), target_formats(cx, "CONV_2D"))
    if p is None:
        return None
    s = p.weights
    name = KERNELS["CONV_2D"] + s.fmt
    values = cx.array(op.name + "_spv", s.values, "int8_t", weight=True)
    bias = "NULL" if p.bias is None else cx.array(op.name + "_spb", p.bias, "int32_t", weight=True)
    f = {**{f"conv.{k}": v for k, v in fields.items()}, **_sparse_fields(op, cx, s)}
    args = [cx.ptr(in_name), values, bias, cx.ptr(op.outputs[0]), cx.scratch_expr]
    return CCall(name, args, ("ec_conv_s8sp_params_t", f), scratch=conv_scratch(fields))
