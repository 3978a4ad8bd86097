"""Entropy-coded constant arrays for the C backend (emit_c(..., entropy="init" | "layer")).

Every constant array the generated model.c stores -- dense int8 weights, packed low-bit codes, codebook
indices and tables, sparse values / indices / counts, biases -- may be kept in flash as an entropy-coded
byte stream and decoded into RAM before a kernel reads it; the kernels see the same array as without
coding. Two places for the decoded copies (the user's choice, both static RAM sized here and reported):

  init   model_init() decodes every coded array once into its own static buffer: RAM = the sum of them;
         model_invoke pays nothing.
  layer  each layer decodes its coded arrays right before its kernel into one shared static buffer
         sized for the layer that needs most: RAM = one layer's arrays; every inference pays the decode.

An array is coded only when it holds at least MIN_BYTES and its stream (tables included) is more than
CALL_BYTES (about the flash its decode call takes) smaller than its raw bytes.

The coder: static rANS (Duda 2013; ryg_rans's byte-wise variant), order 0, one frequency table per
array. Why not Huffman: a Huffman code spends a whole number of bits, at least one, per symbol, which
costs most exactly where coding pays most -- streams where one symbol dominates, such as pruned weights'
zeros: a stream of 90 % zeros has an entropy near 0.86 bits per symbol, which rANS approaches and
Huffman, at one bit per symbol at least, cannot (tests/c/test_entropy_c.py prints what is reached on
such streams). The decoder is as small as a
table-driven Huffman one: per symbol a table lookup, a short scan, one multiply, a byte-wise refill, no
bit buffer (its Cortex-M4 instructions per decoded byte: printed by tests/c/test_entropy_c.py).

Symbols are the array's little-endian bytes cut into `bits`-bit fields (8, 4, 2 or 1), field j of a
byte being bits [j * bits, (j + 1) * bits) -- the low-bit packing's own order, so 4-bit codes and
codebook indices are coded per field; per array, the widest field whose stream is within 1/64 of the
smallest is chosen (a narrower field means more decode steps per byte).
Multi-byte arrays are coded as their little-endian bytes (model.c refuses to build big-endian).

Stream (the bytes of one `static const uint8_t X_rans[]`; kernels/include/ec_entropy.h):
  byte 0        symbol width `bits` (1, 2, 4 or 8)
  byte 1        `prec`: the frequencies sum to 2^prec; always PREC (15), which the C decoder requires
  byte 2        nsym - 1: the number of distinct symbols present, less one
  nsym bytes    the present symbols, ascending -- omitted when all 2^bits are present (index = symbol)
  2 (nsym - 1)  cum[1 .. nsym-1], uint16 little-endian: symbol index k owns slots [cum[k], cum[k+1]),
                cum[0] = 0, cum[nsym] = 2^prec; every frequency cum[k+1] - cum[k] >= 1
  4 bytes       the initial state x (uint32 little-endian), in [2^23, 2^31)
  the rest      renormalisation bytes, in the order the decoder reads them
Decoding symbol by symbol: slot = x mod 2^prec; k with cum[k] <= slot < cum[k+1];
x = (cum[k+1] - cum[k]) * (x >> prec) + slot - cum[k]; while x < 2^23: x = (x << 8) | next byte.
The encoder starts from x = 2^23, so a correct decode ends with x == 2^23 having read every byte:
the decoder checks both (a free check on the payload, state and frequency table; a changed symbol
list goes unnoticed).
"""
from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ...errors import EdgecError

MODES = ("off", "init", "layer")
PREC = 15                 # frequency precision: 2^15 slots (min probability 1/32768)
RANS_L = 1 << 23          # lower bound of the normalised state
SYMBOL_BITS = (8, 4, 2, 1)
MIN_BYTES = 256           # smaller arrays stay raw (each decode also costs ~0.9k instructions of set-up)
CALL_BYTES = 24           # flash one decode call takes (Thumb-2, measured ~23-26 B): the least saving
ALIGN = 16                # decoded copies are 16-byte aligned, as the raw const arrays are
DECODER = "ec_rans_decode"

# C element types the backend emits and their little-endian numpy layouts
NP_LAYOUT = {"int8_t": "<i1", "uint8_t": "<u1", "int16_t": "<i2", "uint16_t": "<u2", "int32_t": "<i4",
             "uint32_t": "<u4", "int64_t": "<i8", "float": "<f4"}


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise EdgecError(f"entropy {mode!r}: choose {', '.join(MODES)} (off: raw arrays; init: decoded once "
                         f"into RAM by model_init; layer: decoded per layer into one shared buffer)")
    return mode


def raw_bytes(values, ctype: str) -> bytes | None:
    """The bytes a C array of `ctype` holding `values` has on a little-endian target (None: not codable)."""
    layout = NP_LAYOUT.get(ctype)
    if layout is None:
        return None
    return np.ascontiguousarray(np.asarray(values).reshape(-1).astype(layout)).tobytes()


# ------------------------------------------------------------------------------------------------
# the coder

def fields_of(data: bytes, bits: int) -> np.ndarray:
    """The `bits`-bit fields of `data`, in stream order (little-endian within each byte)."""
    b = np.frombuffer(data, np.uint8)
    if bits == 8:
        return b.astype(np.int64)
    shifts = np.arange(0, 8, bits)
    return ((b[:, None].astype(np.int64) >> shifts) & ((1 << bits) - 1)).reshape(-1)


def normalize(counts: np.ndarray, prec: int = PREC) -> np.ndarray:
    """Frequencies of the (all non-zero) `counts` summing to 2^prec, each >= 1: the rounded-down shares,
    then single slots moved where they cost the fewest bits (ties to the lower symbol index)."""
    c = np.asarray(counts, np.float64)
    m = 1 << prec
    if len(c) > m:
        raise EdgecError(f"rANS: {len(c)} symbols do not fit 2^{prec} slots")
    f = np.maximum(1, np.floor(c * m / c.sum())).astype(np.int64)
    d = m - int(f.sum())
    # gain of one more slot for i: c_i * log2((f_i + 1) / f_i); loss of one fewer: c_i * log2(f_i / (f_i - 1))
    if d > 0:
        heap = [(-c[i] * np.log2((f[i] + 1) / f[i]), i) for i in range(len(f))]
        heapq.heapify(heap)
        for _ in range(d):
            _, i = heapq.heappop(heap)
            f[i] += 1
            heapq.heappush(heap, (-c[i] * np.log2((f[i] + 1) / f[i]), i))
    elif d < 0:
        heap = [(c[i] * np.log2(f[i] / (f[i] - 1)), i) for i in range(len(f)) if f[i] > 1]
        heapq.heapify(heap)
        for _ in range(-d):
            _, i = heapq.heappop(heap)
            f[i] -= 1
            if f[i] > 1:
                heapq.heappush(heap, (c[i] * np.log2(f[i] / (f[i] - 1)), i))
    return f


@dataclass
class _Model:
    bits: int
    symbols: np.ndarray      # present symbols, ascending
    freq: np.ndarray         # normalised, aligned with symbols
    index: np.ndarray        # field value -> symbol index (for the present ones)
    fields: np.ndarray       # the stream's symbols (field values)
    size_est: int            # estimated stream bytes

    @property
    def header(self) -> bytes:
        nsym = len(self.symbols)
        cum = np.cumsum(self.freq)[:-1]
        listed = bytes(self.symbols.astype(np.uint8)) if nsym < (1 << self.bits) else b""
        return bytes([self.bits, PREC, nsym - 1]) + listed + cum.astype("<u2").tobytes()


def _model(data: bytes, bits: int) -> _Model:
    fields = fields_of(data, bits)
    counts = np.bincount(fields, minlength=1 << bits)
    symbols = np.flatnonzero(counts)
    freq = normalize(counts[symbols])
    index = np.zeros(1 << bits, np.int64)
    index[symbols] = np.arange(len(symbols))
    payload_bits = float(np.sum(counts[symbols] * (PREC - np.log2(freq))))
    nsym = len(symbols)
    header = 3 + (nsym if nsym < (1 << bits) else 0) + 2 * (nsym - 1) + 4
    return _Model(bits, symbols, freq, index, fields, header + int(np.ceil(payload_bits / 8)))


def best_model(data: bytes, widths=SYMBOL_BITS) -> _Model:
    """The widest symbol field whose estimated stream is within 1/64 of the smallest: each halving of
    the width doubles the decode steps per byte, so a narrower field must really pay."""
    models = [_model(data, b) for b in sorted(widths, reverse=True)]
    best = min(m.size_est for m in models)
    return next(m for m in models if m.size_est <= best + best // 64)


def encode(data: bytes, bits: int | None = None) -> bytes:
    """The rANS stream of `data` (module docstring), with `bits`-bit symbols or the best width."""
    if not data:
        raise EdgecError("rANS: nothing to encode")
    m = best_model(data) if bits is None else _model(data, bits)
    return _encode(m)


def _encode(m: _Model) -> bytes:
    freq = m.freq.tolist()
    cum = [0] + np.cumsum(m.freq).tolist()
    x, out = RANS_L, bytearray()
    x_max_unit = (RANS_L >> PREC) << 8            # x must stay below this times freq before each step
    for k in m.index[m.fields][::-1].tolist():   # rANS is last in, first out: encode backwards
        f = freq[k]
        x_max = x_max_unit * f
        while x >= x_max:
            out.append(x & 0xFF)
            x >>= 8
        x = (x // f << PREC) + x % f + cum[k]
    out.reverse()
    return m.header + x.to_bytes(4, "little") + bytes(out)


def decode(stream: bytes, nbytes: int) -> bytes:
    """The `nbytes` bytes `stream` encodes (the C decoder's reference; raises on a corrupt stream)."""
    s = bytes(stream)
    if len(s) < 7:
        raise EdgecError("rANS: stream too short")
    bits, prec, nsym = s[0], s[1], s[2] + 1
    if bits not in SYMBOL_BITS or prec != PREC or nsym > 1 << bits:
        raise EdgecError("rANS: bad stream header")
    p = 3
    if nsym < 1 << bits:
        symbols, p = list(s[p:p + nsym]), p + nsym
    else:
        symbols = list(range(nsym))
    if len(s) < p + 2 * (nsym - 1) + 4:
        raise EdgecError("rANS: stream too short")
    cum = [0] + [int.from_bytes(s[p + 2 * i:p + 2 * i + 2], "little") for i in range(nsym - 1)] + [1 << prec]
    p += 2 * (nsym - 1)
    if any(a >= b for a, b in zip(cum, cum[1:])):
        raise EdgecError("rANS: frequencies not increasing")
    x, p = int.from_bytes(s[p:p + 4], "little"), p + 4
    slot_sym = np.repeat(np.arange(nsym), np.diff(cum)).tolist()
    mask = (1 << prec) - 1
    per_byte = 8 // bits
    out = bytearray(nbytes)
    for i in range(nbytes):
        b = 0
        for j in range(per_byte):
            slot = x & mask
            k = slot_sym[slot]
            x = (cum[k + 1] - cum[k]) * (x >> prec) + slot - cum[k]
            while x < RANS_L:
                if p >= len(s):
                    raise EdgecError("rANS: stream ends early")
                x, p = (x << 8) | s[p], p + 1
            b |= symbols[k] << (j * bits)
        out[i] = b
    if x != RANS_L or p != len(s):
        raise EdgecError("rANS: stream does not end where it should (corrupt)")
    return bytes(out)


def code_array(data: bytes) -> bytes | None:
    """The stream to store instead of `data`, or None when coding does not pay (module docstring)."""
    if len(data) < MIN_BYTES:
        return None
    m = best_model(data)
    if m.size_est + CALL_BYTES >= len(data):
        return None
    stream = _encode(m)
    return stream if len(stream) + CALL_BYTES < len(data) else None


# ------------------------------------------------------------------------------------------------
# the emitter side (backends/c/emit.py's CEmit holds one when entropy is not "off")

def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass
class CodedArray:
    name: str            # the C symbol of the decoded array (init) / the name it would have had (layer)
    stream: str          # the C symbol of the coded stream in flash
    ctype: str
    raw_bytes: int
    coded_bytes: int
    bits: int            # symbol width chosen


@dataclass
class EntropyReport:
    """What entropy coding did to a C project (CProject.entropy)."""
    mode: str
    arrays: list[CodedArray]
    data_bytes: int      # bytes of every const array model.c would hold without coding
    stored_bytes: int    # the same with the coded arrays stored as their streams
    ram_bytes: int       # static RAM the decoded copies take (outside the arena): MODEL_DECODE_BYTES

    @property
    def saved_bytes(self) -> int:
        return self.data_bytes - self.stored_bytes

    def as_dict(self) -> dict:
        return {"mode": self.mode, "coder": "rANS", "arrays_coded": len(self.arrays),
                "data_bytes": self.data_bytes, "stored_bytes": self.stored_bytes, "saved_bytes": self.saved_bytes,
                "ram_bytes": self.ram_bytes,
                "arrays": [{"name": a.name, "ctype": a.ctype, "raw_bytes": a.raw_bytes, "coded_bytes": a.coded_bytes,
                            "symbol_bits": a.bits} for a in self.arrays]}


@dataclass
class EntropyStore:
    """Decides which const arrays are coded, declares their streams and decoded copies, and writes
    the decode calls: init -> model_init's body; layer -> before each op's kernel call."""
    mode: str
    symbol: Callable[[str], str]    # CEmit._symbol: a fresh C identifier from a base name
    buffer: str = ""                # layer: the shared decode buffer's symbol
    decls: list[str] = field(default_factory=list)
    coded: dict[str, CodedArray] = field(default_factory=dict)
    data_bytes: int = 0
    stored_bytes: int = 0
    ram_bytes: int = 0
    _op: dict[str, int] | None = None     # layer: coded array -> offset in the buffer, for the current op
    _op_top: int = 0

    def __post_init__(self):
        if self.mode == "layer":
            self.buffer = self.symbol("ec_decoded")

    def store(self, sym: str, values, ctype: str) -> bool:
        """Count array `sym`; code it (declaring its stream and, for init, its RAM copy) when that pays."""
        data = raw_bytes(values, ctype)
        stream = code_array(data) if data is not None else None
        if stream is None:   # (an element type the coder does not know is counted at numpy's size)
            n = len(data) if data is not None else int(np.asarray(values).nbytes)
            self.data_bytes += n
            self.stored_bytes += n
            return False
        n = len(data)
        self.data_bytes += n
        self.stored_bytes += len(stream)
        ssym = self.symbol(sym + "_rans")
        body = ",\n".join("    " + ", ".join(str(b) for b in stream[i:i + 16]) for i in range(0, len(stream), 16))
        self.decls.append(f"/* {sym}: {n} bytes of {ctype}, rANS-coded to {len(stream)} ({stream[0]}-bit symbols) */")
        self.decls.append(f"static const uint8_t {ssym}[{len(stream)}] = {{\n{body}\n}};")
        if self.mode == "init":
            self.decls.append(f"static {ctype} {sym}[{n // _csize(ctype)}] EC_ALIGN({ALIGN});")
            self.ram_bytes += _align(n)
        self.coded[sym] = CodedArray(sym, ssym, ctype, n, len(stream), stream[0])
        return True

    def is_coded(self, sym: str) -> bool:
        return sym in self.coded

    def ref(self, sym: str) -> str:
        """The C expression the kernel reads coded array `sym` through, in the op being emitted."""
        if self.mode == "init":
            return sym
        if self._op is None:
            raise EdgecError(f"entropy layer: array {sym} referenced outside an op")
        if sym not in self._op:
            self._op[sym] = self._op_top
            self._op_top += _align(self.coded[sym].raw_bytes)
            self.ram_bytes = max(self.ram_bytes, self._op_top)
        return f"(({self.coded[sym].ctype} *)({self.buffer} + {self._op[sym]}))"

    def begin_op(self) -> None:
        self._op, self._op_top = {}, 0

    def end_op(self) -> list[str]:
        """layer: the decode calls the op needs before its kernel (init: none)."""
        placed, self._op = self._op or {}, None
        return [self._call(self.coded[s], f"{self.buffer} + {off}") for s, off in placed.items()]

    def init_lines(self) -> list[str]:
        """init: model_init's decode calls, one per coded array."""
        if self.mode != "init":
            return []
        return [self._call(a, f"(uint8_t *){a.name}") for a in self.coded.values()]

    def head_decls(self) -> list[str]:
        """Declarations that must precede every other (the layer buffer, the byte-order check)."""
        out = []
        if any(_csize(a.ctype) > 1 for a in self.coded.values()):
            out += ["#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__",
                    "#error \"entropy-coded arrays hold little-endian bytes\"", "#endif"]
        if self.mode == "layer" and self.coded:
            out.append(f"static uint8_t {self.buffer}[{self.ram_bytes}] EC_ALIGN({ALIGN});")
        return out

    def report(self) -> EntropyReport:
        return EntropyReport(self.mode, list(self.coded.values()), self.data_bytes, self.stored_bytes,
                             self.ram_bytes if self.coded else 0)

    @staticmethod
    def _call(a: CodedArray, dst: str) -> str:
        return f"    if ({DECODER}({a.stream}, {a.coded_bytes}u, {dst}, {a.raw_bytes}u) != 0) return -1;"


def _csize(ctype: str) -> int:
    return np.dtype(NP_LAYOUT[ctype]).itemsize
