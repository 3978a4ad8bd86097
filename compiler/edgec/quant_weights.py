"""Weight quantizers for the quantize pass: level grids, scale search, rounding, and GPTQ.

A weight tensor becomes integer *levels* (held in an int8 container, docs/quantization.md's contract) times a
scale per tensor or per output channel; zero points are 0. Every scheme is a set of allowed integer
levels (a "grid"), shared by all channels or (kmeans) one per channel:

- uniform, b bits: -(2^(b-1)-1) .. 2^(b-1)-1;
- ternary: {-1, 0, 1} (b = 2), scale a per channel from TWN's closed form, refined by search;
- binary: {-1, 1} (b = 1), scale a = mean|w| (the MSE-optimal a for sign(w));
- pow2, b bits: {0, ±1, ±2, ..., ±2^(2^(b-1)-2)} (capped at ±64 so the levels fit int8);
- kmeans, b bits: a codebook of ≤ 2^b int8 values per channel (or tensor) from 1-D k-means on w / s with
  s = max|w| / 127, so the centroids are int8-representable; meta["codebook"] records it.

Scales: "max" maps max|w| to the largest level; "mse" searches clipping ratios per channel for the least
quantization MSE. Rounding: "nearest", or "stochastic" (unbiased between the two neighbouring levels,
seeded). `gptq` quantizes a weight matrix column by column with error feedback through the inverse
Hessian of the layer's inputs (Frantar et al. 2022), onto the same grids and scales.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCHEMES = ("uniform", "ternary", "binary", "pow2", "kmeans")
BITS = (8, 4, 3, 2, 1)
ROUNDING = ("nearest", "stochastic")
SCALES = ("max", "mse")
MSE_RATIOS = np.linspace(0.2, 1.0, 81)


def scheme_bits(bits: int, scheme: str) -> int:
    """The stored width a scheme implies (ternary 2, binary 1), checking the combination."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown weight scheme {scheme!r}; choose one of {', '.join(SCHEMES)}")
    if scheme == "ternary":
        return 2
    if scheme == "binary":
        return 1
    if bits not in (8, 4, 3, 2):
        raise ValueError(f"weight_bits must be 8, 4, 3 or 2 for scheme {scheme!r}, not {bits!r}")
    return bits


def levels(bits: int, scheme: str) -> np.ndarray:
    """The sorted integer levels of a fixed-grid scheme (not kmeans)."""
    if scheme == "uniform":
        m = 2 ** (bits - 1) - 1
        return np.arange(-m, m + 1, dtype=np.float64)
    if scheme == "ternary":
        return np.array([-1.0, 0.0, 1.0])
    if scheme == "binary":
        return np.array([-1.0, 1.0])
    if scheme == "pow2":
        top = min(2 ** (bits - 1) - 2, 6)   # 2^6 = 64 is the largest power of two in int8
        p = 2.0 ** np.arange(0, top + 1)
        return np.concatenate([-p[::-1], [0.0], p])
    raise ValueError(f"scheme {scheme!r} has no fixed grid")


def round_to_grid(x: np.ndarray, grid: np.ndarray, rounding: str = "nearest",
                  rng: np.random.Generator | None = None) -> np.ndarray:
    """x (rows [C, K]) onto the grid's values: grid [n] shared, or [C, n] one per row (sorted
    ascending). Values outside the grid clamp to its ends."""
    x = np.asarray(x, np.float64)
    if grid.ndim == 1:
        return _round_row(x, grid, rounding, rng)
    out = np.empty_like(x)
    for c in range(x.shape[0]):
        out[c] = _round_row(x[c], grid[c], rounding, rng)
    return out


def _round_row(x, grid, rounding, rng):
    if grid.size == 1:
        return np.full_like(x, grid[0])
    xc = np.clip(x, grid[0], grid[-1])
    hi = np.clip(np.searchsorted(grid, xc, side="right"), 1, grid.size - 1)
    a, b = grid[hi - 1], grid[hi]
    p = (xc - a) / np.where(b > a, b - a, 1.0)
    if rounding == "stochastic":
        up = (rng or np.random.default_rng(0)).random(np.shape(xc)) < p
    else:
        up = p >= 0.5
    return np.where(up, b, a)


@dataclass
class QuantizedWeight:
    levels: np.ndarray          # int8 values, in the weight's original layout
    scale: np.ndarray           # [C] float32 (C = 1 per tensor)
    codebook: np.ndarray | None  # int8 [n] or [C, n] for kmeans
    bits: int
    scheme: str
    group_size: int = 0                  # > 0: per-group multipliers (docs/quantization.md), levels = q * mult
    group_mult: np.ndarray | None = None  # uint8 [R, G] on the rows of the tensor

    def dequantized(self, axis: int | None) -> np.ndarray:
        s = self.scale.astype(np.float64)
        if axis is None or s.size == 1:
            return (self.levels.astype(np.float64) * s[0]).astype(np.float32)
        shape = [1] * self.levels.ndim
        shape[axis] = -1
        return (self.levels.astype(np.float64) * s.reshape(shape)).astype(np.float32)


def to_rows(w: np.ndarray, axis: int | None) -> np.ndarray:
    """[C, K] rows, one per channel along axis (one row for per tensor)."""
    if axis is None:
        return w.reshape(1, -1)
    return np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)


def from_rows(rows: np.ndarray, shape, axis: int | None) -> np.ndarray:
    if axis is None:
        return rows.reshape(shape)
    moved = (shape[axis],) + tuple(d for k, d in enumerate(shape) if k != axis)
    return np.moveaxis(rows.reshape(moved), 0, axis)


class Grid:
    """Where a tensor's rows may go: per-row scale [R] and integer grid ([n] shared or [R, n]); with
    `mult` [R, K] (per-group multipliers expanded to columns) element (r, j) has the scale
    scale[r] * mult[r, j] and its level is stored as q * mult[r, j]."""

    def __init__(self, scale: np.ndarray, grid: np.ndarray, mult: np.ndarray | None = None):
        self.scale = np.asarray(scale, np.float64)
        self.grid = grid
        self.mult = mult

    def sub(self, r: int) -> "Grid":
        return Grid(self.scale[r:r + 1], self.grid if self.grid.ndim == 1 else self.grid[r:r + 1],
                    None if self.mult is None else self.mult[r:r + 1])

    def col(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """(scale [R], multiplier [R]) of column j."""
        m = np.ones_like(self.scale) if self.mult is None else self.mult[:, j].astype(np.float64)
        return self.scale * m, m

    def quantize(self, w: np.ndarray, rounding="nearest", rng=None) -> np.ndarray:
        """Stored levels (q, times the multiplier where there is one) of rows w [R, K]."""
        s = self.scale.reshape(-1, *([1] * (w.ndim - 1)))
        m = 1.0 if self.mult is None else self.mult.astype(np.float64)
        if self.grid.ndim == 1:
            return _round_row(w / (s * m), self.grid, rounding, rng) * m
        return np.stack([_round_row(w[r] / s[r], self.grid[r], rounding, rng) for r in range(w.shape[0])])


def choose_grid(rows: np.ndarray, bits: int, scheme: str, scale_mode: str, per_row: bool) -> Grid:
    """Scales (and kmeans codebooks) for rows [R, K]; per_row False gives one scale for all rows
    (rows are then flattened for the search)."""
    if not per_row:
        g = choose_grid(rows.reshape(1, -1), bits, scheme, scale_mode, True)
        grid = g.grid if g.grid.ndim == 1 else np.repeat(g.grid, rows.shape[0], axis=0)
        return Grid(np.repeat(g.scale, rows.shape[0]), grid)
    rows = rows.astype(np.float64)
    absw = np.abs(rows)
    m = absw.max(axis=1)
    safe = lambda s: np.where(s > 0, s, 1.0)  # noqa: E731  all-zero rows: any scale works
    if scheme == "binary":
        return Grid(safe(absw.mean(axis=1)), levels(1, "binary"))
    if scheme == "kmeans":
        s = safe(m / 127.0)
        books = [kmeans_1d(rows[r] / s[r], 2 ** bits) for r in range(rows.shape[0])]
        n = max(len(b) for b in books)
        grid = np.stack([np.pad(b, (0, n - len(b)), mode="edge") for b in books])
        return Grid(s, grid)
    grid = levels(bits, scheme)
    top = grid[-1]
    if scheme == "ternary":
        # TWN closed form: threshold 0.7 mean|w|, a = mean of |w| above it; then a search around it
        delta = 0.7 * absw.mean(axis=1, keepdims=True)
        above = absw > delta
        a0 = safe(np.where(above.any(axis=1), (absw * above).sum(axis=1) / np.maximum(above.sum(axis=1), 1), m))
        cands = np.outer(np.linspace(0.5, 2.0, 61), a0)   # a; the MSE-best threshold for a is a/2
        if scale_mode == "max":
            return Grid(a0, grid)
        return Grid(_best_scale(rows, cands, grid), grid)
    base = safe(m / top)
    if scale_mode == "max":
        return Grid(base, grid)
    return Grid(_best_scale(rows, np.outer(MSE_RATIOS, base), grid), grid)


def _best_scale(rows: np.ndarray, cands: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Per row, the candidate scale (cands [T, R]) with the least squared error."""
    best = cands[-1].copy()
    best_err = np.full(rows.shape[0], np.inf)
    for s in cands:
        s_ = np.where(s > 0, s, 1.0)[:, None]
        q = _round_row(rows / s_, grid, "nearest", None) * s_
        err = ((q - rows) ** 2).sum(axis=1)
        better = err < best_err
        best[better], best_err[better] = s_[better, 0], err[better]
    return best


def kmeans_1d(x: np.ndarray, k: int, iters: int = 30) -> np.ndarray:
    """A sorted int8 codebook of at most k values in [-127, 127] for the values x (Lloyd's algorithm
    from quantile seeds, centroids rounded to integers)."""
    x = np.asarray(x, np.float64).reshape(-1)
    uniq = np.unique(np.clip(np.round(x), -127, 127))
    if uniq.size <= k:
        return uniq
    c = np.quantile(x, (np.arange(k) + 0.5) / k)
    for _ in range(iters):
        idx = np.abs(x[:, None] - c[None, :]).argmin(axis=1)
        new = np.array([x[idx == j].mean() if np.any(idx == j) else c[j] for j in range(k)])
        if np.allclose(new, c):
            break
        c = new
    return np.unique(np.clip(np.round(c), -127, 127))


GROUP_SCHEMES = ("uniform", "ternary", "binary")
# ops whose weight rows can take per-group multipliers (their rows: backends/c/pack_weights.weight_rows)
GROUP_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "GATHER", "BATCH_MATMUL")


def group_mult_max(bits: int, scheme: str) -> int:
    """The largest integer multiplier whose products with the scheme's levels still fit int8."""
    qmax = int(np.abs(levels(bits, scheme)).max())
    return min(255, 127 // qmax)


def choose_groups(rows: np.ndarray, bits: int, scheme: str, group_size: int, scale_mode: str = "mse",
                  per_row: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-group scales as integer multiples of a row (or tensor) scale (docs/quantization.md): returns
    (scale [R], mult uint8 [R, G]) for rows [R, K] in groups of `group_size` consecutive elements.

    Each group first gets its own best scale (choose_grid on the group alone); the row scale is the
    largest of them over the largest multiplier M, so the widest group keeps its scale exactly; every
    group then takes the multiplier in 1..M with the least squared error ("mse") or the smallest one
    that does not clip its largest weight ("max")."""
    if scheme not in GROUP_SCHEMES:
        raise ValueError(f"group scales work with schemes {', '.join(GROUP_SCHEMES)}, not {scheme!r}")
    M = group_mult_max(bits, scheme)
    if M < 2:
        raise ValueError(f"group scales need weights of at most 6 bits ({bits}-bit {scheme} levels fill int8)")
    rows = np.asarray(rows, np.float64)
    R, K = rows.shape
    N = int(group_size)
    G = -(-K // N)
    a = np.stack([choose_grid(rows[:, g * N:(g + 1) * N], bits, scheme, scale_mode, True).scale
                  for g in range(G)], axis=1)                                        # [R, G]
    top = a.max(axis=1) if per_row else np.full(R, a.max())
    scale = np.where(top > 0, top / M, 1.0)
    grid = levels(bits, scheme)
    mult = np.empty((R, G), np.uint8)
    cand = np.arange(1, M + 1, dtype=np.float64)
    for g in range(G):
        w = rows[:, g * N:(g + 1) * N]
        if scale_mode == "max":
            need = np.abs(w).max(axis=1) / (scale * grid[-1])
            mult[:, g] = np.clip(np.ceil(need - 1e-9), 1, M)
            continue
        best_err = np.full(R, np.inf)
        for m in cand:
            s = (scale * m)[:, None]
            err = ((_round_row(w / s, grid, "nearest", None) * s - w) ** 2).sum(axis=1)
            better = err < best_err
            best_err[better] = err[better]
            mult[better, g] = int(m)
    return scale, mult


def expand_groups(mult: np.ndarray, group_size: int, k: int) -> np.ndarray:
    """[R, G] group multipliers as [R, K] per element."""
    return np.repeat(np.asarray(mult), group_size, axis=1)[:, :k]


def group_levels(v_rows: np.ndarray, mult: np.ndarray, group_size: int) -> np.ndarray:
    """q = v / m of stored group levels v [R, K] (docs/quantization.md); ValueError unless exact."""
    v = np.asarray(v_rows, np.int64)
    m = expand_groups(np.asarray(mult, np.int64), int(group_size), v.shape[1])
    if m.shape != v.shape or np.any(m < 1) or np.any(v % m != 0):
        raise ValueError("group levels are not multiples of their group multipliers")
    return v // m


def quantize_weight(w: np.ndarray, row_axis: int = 0, per_channel: bool = True, bits: int = 8,
                    scheme: str = "uniform", scale_mode: str = "max", rounding: str = "nearest", seed: int = 0,
                    hessian: np.ndarray | None = None, damp: float = 0.01, group_size: int = 0,
                    keep_zeros: bool = False, rows_of=None) -> QuantizedWeight:
    """Quantize a weight tensor whose output channels lie along row_axis (one scale per channel when
    per_channel, else one for the tensor). With `hessian` — H = 2 XᵀX of the rows' inputs, [K, K]
    shared by all rows (K the row length in to_rows order) or [R, K, K] one per row (depthwise) — the
    rows are quantized by GPTQ instead of independently. group_size > 0 adds integer per-group
    multipliers (choose_groups); keep_zeros keeps exact zeros at zero (pruned weights; GPTQ then
    moves their error onto the kept weights, as SparseGPT does). `rows_of` = (to_rows, from_rows)
    overrides the row layout (GATHER tables, BATCH_MATMUL operands)."""
    bits = scheme_bits(bits, scheme)
    to, back = rows_of or ((lambda a: to_rows(a, row_axis)), (lambda r: from_rows(r, w.shape, row_axis)))
    rows = to(w).astype(np.float64)
    mult = None
    if group_size:
        scale, mult = choose_groups(rows, bits, scheme, group_size, scale_mode, per_row=per_channel)
        g = Grid(scale, levels(bits, scheme), expand_groups(mult, group_size, rows.shape[1]))
    else:
        g = choose_grid(rows, bits, scheme, scale_mode, per_row=per_channel)
    zeros = (rows == 0) if keep_zeros and 0.0 in (g.grid if g.grid.ndim == 1 else g.grid[0]) else None
    rng = np.random.default_rng(seed)
    if hessian is not None and hessian.ndim == 3:
        q = np.stack([gptq(rows[r:r + 1], g.sub(r), hessian[r], rounding, rng, damp,
                           zeros=None if zeros is None else zeros[r:r + 1])[0] for r in range(rows.shape[0])])
    elif hessian is not None:
        q = gptq(rows, g, hessian, rounding, rng, damp, zeros=zeros)
    else:
        q = g.quantize(rows, rounding, rng)
    if zeros is not None:
        q = np.where(zeros, 0.0, q)
    levels_ = back(q)
    codebook = None
    if scheme == "kmeans":
        codebook = g.grid.astype(np.int8) if per_channel else np.unique(g.grid[0]).astype(np.int8)
    scale = g.scale if per_channel else g.scale[:1]
    return QuantizedWeight(np.clip(np.round(levels_), -127, 127).astype(np.int8), scale.astype(np.float32),
                           codebook, bits, scheme, int(group_size),
                           None if mult is None else mult.astype(np.uint8))


def gptq(rows: np.ndarray, grid: Grid, H: np.ndarray, rounding: str = "nearest", rng=None,
         damp: float = 0.01, block: int = 128, zeros: np.ndarray | None = None) -> np.ndarray:
    """GPTQ: stored levels of W [R, K] minimising ||(W - Q) X||² approximately, quantizing column j
    then spreading its error over the columns not yet quantized through the Cholesky factor of H⁻¹.
    `zeros` [R, K]: weights forced to level 0 (their error is spread like any other)."""
    W = rows.astype(np.float64).copy()
    R, K = W.shape
    H = np.asarray(H, np.float64).copy()
    dead = np.diag(H) == 0
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    H += damp * np.mean(np.diag(H)) * np.eye(K)
    try:
        L = np.linalg.cholesky(np.linalg.inv(H))
        Hinv = L.T   # upper Cholesky factor of H^-1
    except np.linalg.LinAlgError:
        q = grid.quantize(rows, rounding, rng)
        return q if zeros is None else np.where(zeros, 0.0, q)
    Q = np.zeros_like(W)
    for b0 in range(0, K, block):
        b1 = min(b0 + block, K)
        W1 = W[:, b0:b1].copy()
        Err = np.zeros_like(W1)
        Hb = Hinv[b0:b1, b0:b1]
        for j in range(b1 - b0):
            col = W1[:, j]
            s, m = grid.col(b0 + j)
            if grid.grid.ndim == 1:
                qj = _round_row(col / s, grid.grid, rounding, rng)
            else:
                qj = np.array([_round_row(col[r:r + 1] / s[r], grid.grid[r], rounding, rng)[0] for r in range(R)])
            if zeros is not None:
                qj = np.where(zeros[:, b0 + j], 0.0, qj)
            Q[:, b0 + j] = qj * m
            e = (col - qj * s) / Hb[j, j]
            W1[:, j:] -= np.outer(e, Hb[j, j:])
            Err[:, j] = e
        W[:, b1:] -= Err @ Hinv[b0:b1, b1:]
    return Q
