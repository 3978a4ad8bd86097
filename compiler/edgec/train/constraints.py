"""Per-tensor constraints applied in the forward pass of a TrainableGraph, as straight-through ops.

A constraint is a small dataclass (the user-facing spec). `build()` turns it into a callable that maps
the tensor's value to its constrained value and owns whatever TF state it needs (learned scales, EMA
ranges, centroids). Weight constraints chain in list order (e.g. Prune then WeightQuant).

The weight grids are those of the quantize pass (edgec.quant_weights.levels) and rounding is the same
as its `round_to_grid` ("nearest": ties go up), so levels = round(w / scale) clipped to the grid are
exactly what the deployed model stores.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import quant_weights as qw
from ..errors import EdgecError

WEIGHT_SCHEMES = ("uniform", "ternary", "binary", "pow2", "kmeans")
SCALE_MODES = ("fixed", "lsq", "ttq")


def _tf():
    import tensorflow as tf
    return tf


@dataclass
class WeightQuant:
    """Fake-quantize a weight: scale * grid_round(w / scale) with an STE (gradient 1 inside the grid's
    range). `axis` is the per-channel axis (None: per tensor). `scale`: "fixed" (chosen once from the
    initial weights like the quantize pass would: max for 8-bit uniform, MSE search otherwise),
    "lsq" (learned step size, LSQ gradient scaling 1/sqrt(numel * qmax)) or "ttq" (learned scale with
    the plain gradient, trained ternary/binary scales).

    scheme "kmeans": a codebook of <= 2^bits integer levels per channel (or tensor) times a fixed scale
    s = max|w| / 127, initialised as qw.choose_grid does; the centroids are trained (each with the summed
    gradient of its members, as Cluster's) and rounded to integers in every forward pass, so the
    codebook training sees is the int8 codebook stored.

    group_size N > 0: per-group scales (docs/quantization.md) on the weight's [out][K] rows (`rows`, a RowView
    in pack_weights.weight_rows order): group g of row r has the scale scale[r] * m[r, g] with integer
    multipliers m chosen once from the initial weights (qw.choose_groups); the stored level is q * m."""
    bits: int = 8
    scheme: str = "uniform"
    axis: int | None = None
    scale: str = "fixed"
    init: str | None = None          # "max" or "mse"; default: max for 8-bit uniform, else mse
    group_size: int = 0
    rows: "RowView | None" = None

    def __post_init__(self):
        if self.scheme not in WEIGHT_SCHEMES:
            raise EdgecError(f"weight scheme {self.scheme!r}: choose one of {', '.join(WEIGHT_SCHEMES)}")
        if self.scale not in SCALE_MODES:
            raise EdgecError(f"weight scale mode {self.scale!r}: choose one of {', '.join(SCALE_MODES)}")
        self.bits = qw.scheme_bits(self.bits, self.scheme)
        if self.scheme == "kmeans" and self.scale != "fixed":
            raise EdgecError(f"weight scale mode {self.scale!r} does not apply to kmeans weights: their "
                             f"codebook is trained, their scale (max|w| / 127) stays fixed")
        if self.group_size:
            if self.scheme not in qw.GROUP_SCHEMES or qw.group_mult_max(self.bits, self.scheme) < 2:
                raise EdgecError(f"per-group scales need uniform weights below 8 bits, ternary or binary, "
                                 f"not {self.bits}-bit {self.scheme}")
            if self.rows is None:
                raise EdgecError("per-group scales need the weight's row layout (WeightQuant.rows)")

    @property
    def grid(self) -> np.ndarray:
        return qw.levels(self.bits, self.scheme)

    def build(self, w0: np.ndarray, name: str):
        if self.scheme == "kmeans":
            return _CodebookQuantizer(self, w0, name)
        return _WeightQuantizer(self, w0, name)


@dataclass
class ActQuant:
    """Fake-quantize an activation to int8 (asymmetric, as the quantize pass does): the range is an
    EMA of batch min/max while training (`momentum`), or fixed when `range` = (lo, hi) is given."""
    momentum: float = 0.9
    range: tuple[float, float] | None = None

    def build(self, shape, name: str):
        return _ActQuantizer(self, name)


@dataclass
class Prune:
    """Multiply a weight by a 0/1 mask (same shape). The mask lives in a non-trainable tf.Variable, so a
    schedule can change it between training steps (`built.assign(mask)`) without retracing."""
    mask: np.ndarray

    def build(self, w0: np.ndarray, name: str):
        return _Masker(np.asarray(self.mask, np.float32), w0.shape, name)


class _Masker:
    def __init__(self, mask: np.ndarray, shape, name: str):
        if mask.shape != tuple(shape):
            raise EdgecError(f"{name}: prune mask {mask.shape} does not match the weight {tuple(shape)}")
        self.mask = _tf().Variable(mask, trainable=False, name=name + "_mask")
        self.variables = []

    def assign(self, mask: np.ndarray) -> None:
        mask = np.asarray(mask, np.float32)
        if mask.shape != tuple(self.mask.shape):
            raise EdgecError(f"prune mask {mask.shape} does not match the weight {tuple(self.mask.shape)}")
        self.mask.assign(mask)

    def __call__(self, w, training):
        return w * self.mask

    def state(self):
        return {"mask": self.mask.numpy()}


# Sparsity patterns (blocks, N:M) and channel groups are defined on a weight viewed as [out][K] rows: one
# row per output channel, K = everything that channel's dot product reads, in the order the kernels read
# it. FULLY_CONNECTED [out, in] and CONV_2D [out, kh, kw, in] are rows already; DEPTHWISE_CONV_2D
# [1, kh, kw, C] has its channels last; BATCH_MATMUL's constant rhs is [..., K, N] ([..., N, K] with adj_y),
# one row per (batch, n).
ROW_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "BATCH_MATMUL")


@dataclass(frozen=True)
class RowView:
    """How weight input 1 of an op is seen as [out][K] rows: transpose by `perm`, then the last
    `k_dims` dims of the result form K and the others the rows."""
    perm: tuple[int, ...]
    k_dims: int

    @staticmethod
    def of(op_type: str, attrs: dict, ndim: int) -> "RowView":
        if op_type in ("FULLY_CONNECTED", "CONV_2D"):
            return RowView(tuple(range(ndim)), ndim - 1)
        if op_type == "DEPTHWISE_CONV_2D":
            return RowView((ndim - 1,) + tuple(range(ndim - 1)), ndim - 1)
        if op_type == "BATCH_MATMUL" and ndim >= 2:
            lead = tuple(range(ndim - 2))
            return RowView(lead + ((ndim - 2, ndim - 1) if attrs.get("adj_y") else (ndim - 1, ndim - 2)), 1)
        raise EdgecError(f"{op_type}: its weight has no [out][K] row layout (ops with one: {', '.join(ROW_OPS)})")

    def rows_shape(self, shape) -> tuple[int, int]:
        p = [int(shape[a]) for a in self.perm]
        k = int(np.prod(p[len(p) - self.k_dims:]))
        return int(np.prod(p)) // max(k, 1), k

    def to_rows(self, w):
        """[out][K] rows of w (numpy or TF)."""
        if isinstance(w, np.ndarray):
            return np.transpose(w, self.perm).reshape(self.rows_shape(w.shape))
        tf = _tf()
        return tf.reshape(tf.transpose(w, self.perm), self.rows_shape(w.shape))

    def from_rows(self, rows: np.ndarray, shape) -> np.ndarray:
        """Inverse of to_rows: rows back to the weight's own shape (numpy)."""
        return np.transpose(rows.reshape([shape[a] for a in self.perm]), np.argsort(self.perm))


@dataclass
class Cluster:
    """Weight clustering: every weight snaps to its nearest centroid; centroids are trained with the
    gradients of their members summed (gather's gradient), the latent weights get the straight-through
    gradient so they can change cluster. `centroids`: initial values, or an int k (k-means init)."""
    centroids: np.ndarray | int = 16

    def build(self, w0: np.ndarray, name: str):
        tf = _tf()
        if np.ndim(self.centroids) == 0:
            c0 = qw.kmeans_1d(w0.reshape(-1).astype(np.float64), int(self.centroids))
        else:
            c0 = np.asarray(self.centroids, np.float64)
        c = tf.Variable(np.sort(c0).astype(np.float32), name=name + "_centroids")

        def f(w, training):
            idx = tf.argmin(tf.abs(tf.expand_dims(w, -1) - c), axis=-1)
            return tf.gather(c, idx) + (w - tf.stop_gradient(w))
        f.state = lambda: {"centroids": c.numpy()}
        f.variables = [c]
        return f


def grid_round(tf, x, grid: np.ndarray):
    """x onto the (sorted, integer) grid, clamped to its ends; ties go up as qw.round_to_grid does."""
    lo, hi = float(grid[0]), float(grid[-1])
    x = tf.clip_by_value(x, lo, hi)
    steps = np.diff(grid)
    if np.all(steps == 1):
        return tf.minimum(tf.floor(x + 0.5), hi)
    mids = ((grid[:-1] + grid[1:]) / 2).astype(np.float32)
    up = tf.cast(tf.expand_dims(x, -1) >= mids, tf.float32) * steps.astype(np.float32)
    return lo + tf.reduce_sum(up, axis=-1)


def _channel_shape(ndim: int, axis: int | None) -> list[int]:
    """Broadcast shape of a per-channel vector along axis (all ones per tensor)."""
    shape = [1] * ndim
    if axis is not None:
        shape[axis] = -1
    return shape


class _WeightQuantizer:
    def __init__(self, spec: WeightQuant, w0: np.ndarray, name: str):
        tf = _tf()
        self.spec, self.name, self.shape = spec, name, w0.shape
        self.grid = spec.grid
        init = spec.init or ("max" if spec.bits == 8 and spec.scheme == "uniform" else "mse")
        w64 = np.asarray(w0, np.float64)
        self.mult = None          # [R, G] group multipliers, and [w's shape] per element (self.m)
        if spec.group_size:
            rows = spec.rows.to_rows(w64)
            if spec.axis is not None and rows.shape[0] != w0.shape[spec.axis]:
                raise EdgecError(f"{name}: {rows.shape[0]} weight rows but {w0.shape[spec.axis]} channels")
            s0, self.mult = qw.choose_groups(rows, spec.bits, spec.scheme, spec.group_size, init,
                                             per_row=spec.axis is not None)
            self.m = spec.rows.from_rows(qw.expand_groups(self.mult, spec.group_size, rows.shape[1]),
                                         w0.shape).astype(np.float32)
            s0 = s0 if spec.axis is not None else s0[:1]
        else:
            rows = qw.to_rows(w64, spec.axis)
            s0 = qw.choose_grid(rows, spec.bits, spec.scheme, init, spec.axis is not None).scale
            s0 = np.broadcast_to(np.asarray(s0, np.float64).reshape(-1),
                                 (rows.shape[0] if spec.axis is not None else 1,))
        s0 = np.where(s0 > 0, s0, 1.0).astype(np.float32)
        self.bshape = _channel_shape(len(w0.shape), spec.axis)
        self.s = tf.Variable(s0, name=name + "_scale", trainable=spec.scale != "fixed")
        self.variables = [self.s] if spec.scale != "fixed" else []
        qmax = float(max(abs(self.grid[0]), abs(self.grid[-1])))
        per = w0.size / s0.size
        self.g = 1.0 / np.sqrt(per * qmax) if spec.scale == "lsq" else 1.0

    def scale(self):
        tf = _tf()
        s = tf.abs(self.s) + 1e-12
        if self.g != 1.0:
            s = s * self.g + tf.stop_gradient(s - s * self.g)     # LSQ gradient scaling
        return tf.reshape(s, self.bshape)

    def __call__(self, w, training):
        tf = _tf()
        s = self.scale()
        if self.mult is not None:     # group scale = row scale x m; the stored level is q * m
            x = tf.clip_by_value(w / (s * self.m), float(self.grid[0]), float(self.grid[-1]))
            q = x + tf.stop_gradient(grid_round(tf, x, self.grid) - x)
            return q * self.m * s
        x = tf.clip_by_value(w / s, float(self.grid[0]), float(self.grid[-1]))
        q = x + tf.stop_gradient(grid_round(tf, x, self.grid) - x)
        return q * s

    def levels(self, w: np.ndarray) -> np.ndarray:
        """The integer levels the deployed model stores: qw's rounding of w / scale (float64); with
        groups, v = q * m (w being this constraint's output, v is then w / scale to within rounding)."""
        s = np.abs(self.s.numpy()).astype(np.float64) + 1e-12
        w = np.asarray(w, np.float64)
        if self.mult is not None:
            rows = self.spec.rows.to_rows(w)
            v = np.round(rows / s.reshape(-1, 1))
            q = qw.group_levels(v, self.mult, self.spec.group_size)   # raises unless v is q * m
            if not set(np.unique(q).tolist()) <= set(self.grid.tolist()):
                raise EdgecError(f"{self.name}: group levels off the {self.spec.scheme} grid")
            return self.spec.rows.from_rows(v, self.shape).astype(np.int8)
        rows = qw.to_rows(w, self.spec.axis)
        q = qw.round_to_grid(rows / s.reshape(-1, 1), self.grid)
        return qw.from_rows(q, self.shape, self.spec.axis).astype(np.int8)

    def state(self):
        st = {"scale": (np.abs(self.s.numpy()) + np.float32(1e-12)).astype(np.float32),
              "bits": self.spec.bits, "scheme": self.spec.scheme, "axis": self.spec.axis}
        if self.mult is not None:
            st.update(group_size=int(self.spec.group_size), group_mult=self.mult.astype(np.uint8))
        return st


class _CodebookQuantizer:
    """kmeans weights: x = w / s onto the nearest entry of its channel's integer codebook (ties up, as
    qw.round_to_grid), times s. The centroids are variables in weight units (so Adam moves them at the
    pace of the weights), rounded to integers in [-127, 127] with an STE and sorted in every forward
    pass; the one-hot selection sums the members' gradients onto their centroid."""

    def __init__(self, spec: WeightQuant, w0: np.ndarray, name: str):
        tf = _tf()
        self.spec, self.name, self.shape = spec, name, w0.shape
        rows = qw.to_rows(np.asarray(w0, np.float64), spec.axis)
        g = qw.choose_grid(rows, spec.bits, "kmeans", "max", spec.axis is not None)
        s0 = g.scale if spec.axis is not None else g.scale[:1]
        book = g.grid if spec.axis is not None else g.grid[:1]          # [C or 1, n] integers
        self.s0 = s0.astype(np.float32)
        self.bshape = _channel_shape(len(w0.shape), spec.axis)
        self.c = tf.Variable((book * s0[:, None]).astype(np.float32), name=name + "_centroids")
        self.variables = [self.c]

    def codebook(self):
        """The integer codebook [C or 1, n] the forward pass uses (sorted)."""
        tf = _tf()
        x = tf.clip_by_value(self.c / self.s0[:, None], -127.0, 127.0)
        return tf.sort(x + tf.stop_gradient(tf.round(x) - x), axis=-1)

    def __call__(self, w, training):
        tf = _tf()
        book = self.codebook()
        n = int(book.shape[-1])
        cb = tf.reshape(book, self.bshape + [n])                        # channel along axis, entries last
        s = tf.reshape(self.s0, self.bshape)
        mids = (cb[..., :-1] + cb[..., 1:]) / 2.0
        k = tf.reduce_sum(tf.cast(tf.expand_dims(w / s, -1) >= mids, tf.int32), axis=-1)
        q = tf.reduce_sum(tf.one_hot(k, n, dtype=tf.float32) * cb, axis=-1)
        return q * s + (w - tf.stop_gradient(w))

    def levels(self, w: np.ndarray) -> np.ndarray:
        """The int8 levels of this constraint's output w: w / s, each an entry of its codebook."""
        rows = qw.to_rows(np.asarray(w, np.float64), self.spec.axis)
        q = np.round(rows / self.s0.astype(np.float64).reshape(-1, 1))
        book = self.codebook().numpy()
        if not all(np.isin(q[r], book[r if book.shape[0] > 1 else 0]).all() for r in range(q.shape[0])):
            raise EdgecError(f"{self.name}: kmeans levels outside the trained codebook")
        return qw.from_rows(q, self.shape, self.spec.axis).astype(np.int8)

    def state(self):
        book = self.codebook().numpy().astype(np.int8)
        return {"scale": self.s0.copy(), "bits": self.spec.bits, "scheme": "kmeans", "axis": self.spec.axis,
                "codebook": book if self.spec.axis is not None else book[0]}


class _ActQuantizer:
    def __init__(self, spec: ActQuant, name: str):
        tf = _tf()
        self.spec, self.name = spec, name
        lo, hi = spec.range if spec.range is not None else (0.0, 0.0)
        self.lo = tf.Variable(float(lo), trainable=False, name=name + "_lo")
        self.hi = tf.Variable(float(hi), trainable=False, name=name + "_hi")
        self.seen = tf.Variable(spec.range is not None, trainable=False, name=name + "_seen")
        self.fixed = tf.Variable(spec.range is not None, trainable=False, name=name + "_fixed")
        self.variables = []

    def set_range(self, lo: float, hi: float) -> None:
        """Fix the range from now on (e.g. to the calibration range the quantize pass will compute)."""
        self.lo.assign(float(lo))
        self.hi.assign(float(hi))
        self.seen.assign(True)
        self.fixed.assign(True)

    def __call__(self, x, training):
        tf = _tf()
        if training:     # EMA of batch min/max unless the range is fixed
            bl, bh = tf.reduce_min(x), tf.reduce_max(x)
            m = self.spec.momentum
            track = tf.logical_not(self.fixed)
            self.lo.assign(tf.where(track, tf.where(self.seen, m * self.lo + (1 - m) * bl, bl), self.lo))
            self.hi.assign(tf.where(track, tf.where(self.seen, m * self.hi + (1 - m) * bh, bh), self.hi))
            self.seen.assign(True)
        lo = tf.minimum(self.lo, 0.0)
        hi = tf.maximum(self.hi, lo + 255e-8)
        s = (hi - lo) / 255.0
        zp = tf.clip_by_value(tf.round(-128.0 - lo / s), -128.0, 127.0)
        v = tf.clip_by_value(x / s + zp, -128.0, 127.0)
        q = v + tf.stop_gradient(tf.floor(v + 0.5) - v)
        y = (q - zp) * s
        return tf.cond(self.seen, lambda: y, lambda: x)

    def state(self):
        return {"range": (float(self.lo.numpy()), float(self.hi.numpy()))}
