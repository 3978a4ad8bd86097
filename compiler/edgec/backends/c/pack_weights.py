"""Packed low-bit weights for the C backend (docs/quantization.md's IR contract; kernels in kernels/ref/*_s8w*.c,
declared in kernels/include/ec_lowbit.h).

A low-bit weight tensor (int8 container, quant.bits < 8, or scheme "kmeans") is stored as rows of codes,
one row per output channel: FULLY_CONNECTED [out][in], CONV_2D OHWI -> [out][k_h * k_w * in_c], DEPTHWISE
[1][k_h][k_w][C] -> (transposed) [C][k_h * k_w]. Each code is a field of `field_bits` bits, little-endian
within a byte (element j of a row occupies bits [j * field_bits, (j + 1) * field_bits) of the row, bit 0
being the least significant bit of the row's first byte; a 3-bit field may straddle two bytes), and each
row is padded with zero bits to whole bytes (row_bytes = ceil(K * field_bits / 8)).

Codes by scheme:
  uniform / ternary  the value's `bits`-bit two's complement (ternary: bits 2, -1 -> 0b11);
  binary             1 bit: 1 -> +1, 0 -> -1;
  pow2               sign (top bit, 1 = negative) | exponent code e + 1 (low bits - 1 bits) for +-2^e; 0 -> 0;
  kmeans             the index into the codebook (meta["codebook"], [n] or per channel [C, n]) in
                     ceil(log2 n) bits (at least 1).

Every scheme decodes through a table lut[code] (2^field_bits int8 entries per tensor; kmeans: the
codebook itself, per tensor or per channel with stride n); the specialised kernels (int4 / int2 two's
complement, binary) decode arithmetically instead and take no table.

Group-quantized weights (docs/quantization.md: meta["group_size"] = N, meta["group_mult"] = uint8 [R, G]) hold
the effective levels v = q * m in the container; the rows store the codes of q (uniform 2..4 bits and
ternary as two's complement, binary as 1 bit) and a uint8 [R * G] array keeps the multipliers, row-major.
Their kernels (*_s8g, ec_lowbit.h) compute acc = sum_g m[r, g] * sum_{j in g} q[r, j] * (x_j - in_zp),
the int8 kernel's sum over v exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import EdgecError
from ...ir import Tensor
from ...quant_weights import expand_groups

SCHEMES = ("uniform", "ternary", "binary", "pow2", "kmeans")
GROUP_SCHEMES = {"uniform": (2, 3, 4), "ternary": (2,), "binary": (1,)}   # scheme -> widths of q


def is_lowbit(t: Tensor | None) -> bool:
    """Whether the C backend stores `t` packed (an int8 container of a sub-byte, codebook or group-quantized
    weight; pack_tensor rejects a group-quantized one whose width is not 1..4)."""
    return (t is not None and t.is_const and t.dtype == "int8" and t.quant is not None
            and (t.quant.bits < 8 or t.quant.scheme == "kmeans" or is_grouped(t)))


def is_grouped(t: Tensor | None) -> bool:
    """Whether `t` carries per-group multipliers (docs/quantization.md)."""
    return t is not None and t.meta.get("group_mult") is not None


@dataclass
class Packed:
    data: np.ndarray          # uint8 [rows * row_bytes]
    rows: int
    k: int                    # fields per row
    field_bits: int
    row_bytes: int            # 0: no row padding, the rows' codes form one bit stream (depthwise)
    kind: str                 # "w4", "w2", "w1" (arithmetic decode), "lut", or "group" (codes of q, times mult)
    lut: np.ndarray           # int8: [2^field_bits] (per tensor) or [rows, n] (per-channel codebook); group: q
    lut_stride: int           # entries between channels' tables (0: one table)
    group_size: int = 0       # group: N
    mult: np.ndarray | None = None   # group: uint8 [rows, G] multipliers

    @property
    def nbytes(self) -> int:
        """Bytes stored for the weight: the packed rows, plus the group multipliers."""
        return int(self.data.size) + (int(self.mult.size) if self.mult is not None else 0)


def weight_rows(op_type: str, w: np.ndarray) -> np.ndarray:
    """The [output channel][K] matrix of a weight array, in the order the kernels walk it."""
    w = np.asarray(w)
    if op_type == "DEPTHWISE_CONV_2D":   # [1, kh, kw, C] -> [C, kh * kw]
        return w.reshape(-1, w.shape[-1]).T.copy()
    return w.reshape(w.shape[0], -1)


def kmeans_bits(n: int) -> int:
    return max(1, int(np.ceil(np.log2(n))) if n > 1 else 1)


def _twos_lut(bits: int) -> np.ndarray:
    c = np.arange(1 << bits, dtype=np.int64)
    return np.where(c >= 1 << (bits - 1), c - (1 << bits), c).astype(np.int8)


def _pow2_lut(bits: int) -> np.ndarray:
    lut = np.zeros(1 << bits, np.int8)
    low_mask = (1 << (bits - 1)) - 1
    for c in range(1 << bits):
        e = (c & low_mask) - 1
        if 0 <= e <= 6:
            lut[c] = -(1 << e) if c >> (bits - 1) else (1 << e)
    return lut


def scheme_lut(scheme: str, bits: int) -> np.ndarray:
    """The decode table of a non-codebook scheme: lut[code] = value."""
    if scheme in ("uniform", "ternary"):
        return _twos_lut(bits)
    if scheme == "binary":
        return np.array([-1, 1], np.int8)
    if scheme == "pow2":
        return _pow2_lut(bits)
    raise EdgecError(f"no decode table for weight scheme {scheme!r}")


def _codebook_rows(t: Tensor, rows: int, op_type: str) -> np.ndarray:
    """The codebook as [1, n] (per tensor) or [rows, n] (per channel)."""
    cb = t.meta.get("codebook")
    if cb is None:
        raise EdgecError(f"weight {t.name}: scheme kmeans without meta['codebook']")
    cb = np.asarray(cb)
    if cb.ndim == 1:
        return cb.astype(np.int8)[None, :]
    if cb.shape[0] != rows:
        raise EdgecError(f"weight {t.name}: per-channel codebook {list(cb.shape)} for {rows} channels")
    return cb.astype(np.int8)


def group_levels(t: Tensor, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(q [R, K] int64, multipliers uint8 [R, G], N) of the rows (v) of a group-quantized weight `t`,
    checking docs/quantization.md's invariant v[r, j] == q[r, j] * m[r, j // N] with q on the scheme's grid."""
    scheme, bits = t.quant.scheme, int(t.quant.bits)
    v = np.asarray(rows, np.int64)
    r, k = v.shape
    where = f"weight {t.name} (group, {scheme}, {bits} bits)"
    if bits not in GROUP_SCHEMES.get(scheme, ()):
        raise EdgecError(f"{where}: group scales need uniform 2..4 bits, ternary 2 bits or binary 1 bit")
    n = t.meta.get("group_size")
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 1:
        raise EdgecError(f"{where}: meta['group_size'] must be an integer >= 1, not {n!r}")
    n = int(n)
    g = -(-k // n)
    m = np.asarray(t.meta["group_mult"])
    if m.shape != (r, g):
        raise EdgecError(f"{where}: meta['group_mult'] has shape {list(m.shape)}, expected [{r}, {g}] "
                         f"({r} rows of {k} in groups of {n})")
    if m.dtype.kind not in "iu" or (m.size and (m.min() < 1 or m.max() > 255)):
        raise EdgecError(f"{where}: meta['group_mult'] must hold integers 1..255")
    full = expand_groups(m.astype(np.int64), n, k)
    q = v // full
    if scheme == "binary":
        on_grid = np.abs(q) == 1
    else:
        lim = 1 if scheme == "ternary" else (1 << (bits - 1)) - 1
        on_grid = np.abs(q) <= lim
    bad = (q * full != v) | ~on_grid
    if bad.any():
        br, bj = (int(i) for i in np.argwhere(bad)[0])
        raise EdgecError(f"{where}: row {br} element {bj} holds {int(v[br, bj])}, not q * {int(full[br, bj])} "
                         f"(group {bj // n}'s multiplier) with q on the {scheme} grid")
    return q, m.astype(np.uint8), n


def encode(t: Tensor, rows: np.ndarray, op_type: str = "FULLY_CONNECTED") -> tuple[np.ndarray, int, np.ndarray, int]:
    """(codes [rows, K], field_bits, lut, lut_stride) of the weight matrix `rows` of tensor `t`.
    For a group-quantized `t` the codes and table are those of q (rows / multipliers); group_levels
    gives the multipliers."""
    if is_grouped(t):
        rows = group_levels(t, rows)[0]
    return _encode_levels(t, rows, op_type)


def _encode_levels(t: Tensor, rows: np.ndarray, op_type: str) -> tuple[np.ndarray, int, np.ndarray, int]:
    """encode() of level values `rows` (for a group-quantized weight: q)."""
    q = t.quant
    scheme, bits = q.scheme, int(q.bits)
    v = np.asarray(rows, np.int64)
    where = f"weight {t.name} ({scheme}, {bits} bits)"
    if scheme == "kmeans":
        cb = _codebook_rows(t, v.shape[0], op_type)
        n = cb.shape[1]
        fb = kmeans_bits(n)
        codes = np.empty(v.shape, np.int64)
        for r in range(v.shape[0]):
            book = cb[r if cb.shape[0] > 1 else 0].astype(np.int64)
            idx = np.searchsorted(book, v[r])
            idx = np.clip(idx, 0, n - 1)
            if not np.array_equal(book[idx], v[r]):
                raise EdgecError(f"{where}: channel {r} holds values outside its codebook")
            codes[r] = idx
        lut = cb.reshape(-1) if cb.shape[0] > 1 else cb[0]
        return codes, fb, lut, (n if cb.shape[0] > 1 else 0)
    if scheme in ("uniform", "ternary"):
        fb = bits
        # the contract's uniform levels are symmetric; the field also holds -2^(bits-1), accepted
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if scheme == "uniform" else (-1, 1)
        if scheme == "ternary" and bits < 2:
            raise EdgecError(f"{where}: ternary needs 2 bits")
        if v.size and (v.min() < lo or v.max() > hi):
            raise EdgecError(f"{where}: values outside [{lo}, {hi}]")
        codes = v & ((1 << bits) - 1)
    elif scheme == "binary":
        fb = 1
        if v.size and not np.all(np.abs(v) == 1):
            raise EdgecError(f"{where}: binary weights must be -1 or +1")
        codes = (v > 0).astype(np.int64)
    elif scheme == "pow2":
        fb = bits
        if bits < 2:
            raise EdgecError(f"{where}: pow2 needs at least 2 bits")
        a = np.abs(v)
        e = np.zeros_like(a)
        nz = a > 0
        e[nz] = np.round(np.log2(a[nz])).astype(np.int64)
        emax = min((1 << (bits - 1)) - 2, 6)
        if np.any(nz & ((1 << e) != a)) or np.any(e[nz] > emax):
            raise EdgecError(f"{where}: values are not 0 or +-2^e, e <= {emax}")
        codes = np.where(nz, ((v < 0).astype(np.int64) << (bits - 1)) | (e + 1), 0)
    else:
        raise EdgecError(f"{where}: unknown weight scheme (known: {', '.join(SCHEMES)})")
    return codes, fb, scheme_lut(scheme, fb), 0


def pack_codes(codes: np.ndarray, field_bits: int) -> np.ndarray:
    """[rows, K] codes -> uint8 [rows, row_bytes], fields little-endian, rows padded to whole bytes."""
    codes = np.asarray(codes, np.int64)
    rows, k = codes.shape
    # bit j * field_bits + b of a row is bit b of code j
    bitplane = ((codes[:, :, None] >> np.arange(field_bits)) & 1).reshape(rows, k * field_bits)
    row_bytes = (k * field_bits + 7) // 8
    pad = row_bytes * 8 - k * field_bits
    bitplane = np.concatenate([bitplane, np.zeros((rows, pad), np.int64)], axis=1).astype(np.uint8)
    return np.packbits(bitplane.reshape(rows, row_bytes, 8), axis=2, bitorder="little").reshape(rows, row_bytes)


def unpack_codes(packed: np.ndarray, field_bits: int, k: int) -> np.ndarray:
    """uint8 [rows, row_bytes] -> [rows, K] codes (pack_codes' inverse)."""
    packed = np.asarray(packed, np.uint8)
    bits = np.unpackbits(packed, axis=1, bitorder="little")[:, :k * field_bits].astype(np.int64)
    return (bits.reshape(packed.shape[0], k, field_bits) << np.arange(field_bits)).sum(axis=2)


def pack_tensor(t: Tensor, op_type: str, specialise: bool = True) -> Packed:
    """The packed form of low-bit weight tensor `t` of an op of `op_type`."""
    rows = weight_rows(op_type, t.data)
    if is_grouped(t):
        q, mult, n = group_levels(t, rows)
        codes, fb, lut, stride = _encode_levels(t, q, op_type)
        data = pack_codes(codes, fb)
        return Packed(data.reshape(-1), q.shape[0], q.shape[1], fb, data.shape[1], "group",
                      np.asarray(lut, np.int8), stride, n, mult)
    codes, fb, lut, stride = encode(t, rows, op_type)
    if op_type == "DEPTHWISE_CONV_2D":   # channels back to back, no row padding (kernels/include/ec_lowbit_conv.h)
        data = pack_codes(codes.reshape(1, -1), fb)
        return Packed(data.reshape(-1), rows.shape[0], rows.shape[1], fb, 0, "lut", np.asarray(lut, np.int8), stride)
    data = pack_codes(codes, fb)
    kind = "lut"
    if specialise and t.quant.scheme in ("uniform", "ternary") and fb in (4, 2):
        kind = f"w{fb}"
    elif specialise and t.quant.scheme == "binary":
        kind = "w1"
    return Packed(data.reshape(-1), rows.shape[0], rows.shape[1], fb, data.shape[1], kind,
                  np.asarray(lut, np.int8), stride)


def unpack(p: Packed) -> np.ndarray:
    """The int8 [rows, K] weight matrix a Packed decodes to (what the kernels compute with)."""
    if p.row_bytes == 0:   # one bit stream (depthwise)
        codes = unpack_codes(p.data.reshape(1, -1), p.field_bits, p.rows * p.k).reshape(p.rows, p.k)
    else:
        codes = unpack_codes(p.data.reshape(p.rows, p.row_bytes), p.field_bits, p.k)
    if p.mult is not None:   # v = q * m of each element's group
        full = expand_groups(p.mult.astype(np.int64), p.group_size, p.k)
        return (p.lut[codes].astype(np.int64) * full).astype(np.int8)
    if p.lut_stride:
        return np.take_along_axis(p.lut.reshape(p.rows, p.lut_stride).astype(np.int64), codes, axis=1).astype(np.int8)
    return p.lut[codes].astype(np.int8)


def unpack_tensor(p: Packed, op_type: str, shape: tuple[int, ...]) -> np.ndarray:
    """The weight array in its IR layout (inverse of weight_rows)."""
    m = unpack(p)
    if op_type == "DEPTHWISE_CONV_2D":
        return m.T.reshape(shape)
    return m.reshape(shape)


# ------------------------------------------------------------------------------------------------
# C emission helpers (used by compiler/edgec/ir/ops/conv.py's _fc_c / _conv_family_c)

def fc_lowbit_call(op, cx, wt: Tensor, args: list, fields: dict, scratch_fn):
    """(kernel, args, (struct, fields), scratch) for a FULLY_CONNECTED with packed weights.
    args: the int8 kernel's [in, w, bias, out, scratch] (w replaced here)."""
    p = pack_tensor(wt, "FULLY_CONNECTED")
    args = list(args)
    args[1] = cx.array(op.name + "_wpacked", p.data, "uint8_t", weight=True)
    if p.kind == "group":
        kernel, struct = "ec_fully_connected_s8g", "ec_fc_s8g_params_t"
        f = {**{f"fc.{k}": v for k, v in fields.items()}, **_group_fields(op, cx, p)}
    elif p.kind != "lut":
        kernel, struct, f = f"ec_fully_connected_s8{p.kind}", "ec_fc_s8_params_t", dict(fields)
    else:
        kernel, struct = "ec_fully_connected_s8cb", "ec_fc_s8cb_params_t"
        f = {**{f"fc.{k}": v for k, v in fields.items()}, "bits": p.field_bits, "lut_stride": p.lut_stride,
             "lut": cx.array(op.name + "_wlut", p.lut, "int8_t", weight=True)}
    return kernel, args, (struct, f), scratch_fn(cx, kernel, fields)


def conv_lowbit_call(op, cx, kernel: str, wt: Tensor, args: list, fields: dict, scratch_fn):
    """As fc_lowbit_call for CONV_2D (kernel "ec_conv2d") / DEPTHWISE_CONV_2D ("ec_depthwise_conv2d")."""
    op_type = "DEPTHWISE_CONV_2D" if kernel == "ec_depthwise_conv2d" else "CONV_2D"
    p = pack_tensor(wt, op_type, specialise=False)
    args = list(args)
    args[1] = cx.array(op.name + "_wpacked", p.data, "uint8_t", weight=True)
    if p.kind == "group":
        name = f"{kernel}_s8g"
        f = {**{f"conv.{k}": v for k, v in fields.items()}, **_group_fields(op, cx, p)}
        return name, args, ("ec_conv_s8g_params_t", f), scratch_fn(cx, name, fields)
    name = f"{kernel}_s8wN"
    f = {**{f"conv.{k}": v for k, v in fields.items()}, "bits": p.field_bits, "lut_stride": p.lut_stride,
         "lut": cx.array(op.name + "_wlut", p.lut, "int8_t", weight=True)}
    return name, args, ("ec_conv_s8wN_params_t", f), scratch_fn(cx, name, fields)


def _group_fields(op, cx, p: Packed) -> dict:
    """The group fields of ec_fc_s8g_params_t / ec_conv_s8g_params_t; the multipliers go to flash."""
    return {"bits": p.field_bits, "group_size": p.group_size, "groups": int(p.mult.shape[1]),
            "mult": cx.array(op.name + "_wgmult", p.mult.reshape(-1), "uint8_t", weight=True)}
