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


CLUSTER_INITS = ("linear", "kmeans++", "density")


def init_centroids(x: np.ndarray, k: int, method: str, rng: np.random.Generator) -> np.ndarray:
    """k initial centroids (float64, ascending) for the values x [n] (n >= 1).

    linear    evenly spaced over [min x, max x]: keeps centroids on the rare large weights, which
              matter most (Han et al. 2016 measured it best for fine-tuned networks);
    density   evenly spaced on the empirical CDF (the (j + 1/2) / k quantiles): centroids crowd where
              the weights do;
    kmeans++  Arthur & Vassilvitskii's D^2 sampling: each next centroid drawn with probability
              proportional to the squared distance to the nearest one chosen (seeded `rng`)."""
    x = np.asarray(x, np.float64).reshape(-1)
    if method == "linear":
        return np.linspace(x.min(), x.max(), k)
    if method == "density":
        return np.quantile(x, (np.arange(k) + 0.5) / k)
    if method != "kmeans++":
        raise EdgecError(f"cluster init {method!r}: choose one of {', '.join(CLUSTER_INITS)}")
    c = [x[rng.integers(x.size)]]
    d2 = (x - c[0]) ** 2
    for _ in range(1, k):
        total = d2.sum()
        nxt = x[rng.choice(x.size, p=d2 / total)] if total > 0 else x[rng.integers(x.size)]
        c.append(nxt)
        d2 = np.minimum(d2, (x - nxt) ** 2)
    return np.sort(np.asarray(c))


def nearest(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Index of the nearest of the ascending centroids c [k] for every value of x (ties: the lower)."""
    if c.size == 1:
        return np.zeros(np.shape(x), np.int64)
    return np.searchsorted((c[:-1] + c[1:]) / 2, x, side="left")


def kmeans_lloyd(x: np.ndarray, c: np.ndarray, iters: int) -> np.ndarray:
    """Lloyd's algorithm in 1-D from the ascending centroids c: each centroid moves to the mean of the
    values nearest to it (one without members stays), until nothing moves or `iters` rounds."""
    x = np.asarray(x, np.float64).reshape(-1)
    c = np.sort(np.asarray(c, np.float64))
    for _ in range(iters):
        idx = nearest(x, c)
        n = np.bincount(idx, minlength=c.size)
        new = np.where(n > 0, np.bincount(idx, weights=x, minlength=c.size) / np.maximum(n, 1), c)
        new = np.sort(new)
        if np.array_equal(new, c):
            break
        c = new
    return c


def cluster_values(x: np.ndarray, k: int, init: str, iters: int, rng: np.random.Generator) -> np.ndarray:
    """k ascending centroids for the values x: `init`, then `iters` Lloyd rounds. With at most k
    distinct values they are the centroids themselves (padded by repeating the largest)."""
    x = np.asarray(x, np.float64).reshape(-1)
    uniq = np.unique(x)
    if uniq.size <= k:
        return np.concatenate([uniq, np.full(k - uniq.size, uniq[-1])]) if uniq.size else np.zeros(k)
    return kmeans_lloyd(x, init_centroids(x, k, init, rng), iters)


@dataclass
class Cluster:
    """Weight clustering (Han et al. 2016's weight sharing): every weight of a channel (or of the tensor)
    is one of that channel's k centroids.

    The centroids start from `init` (CLUSTER_INITS) refined by `iters` Lloyd rounds on the initial weights,
    per channel along `axis` (None: one codebook for the tensor); `centroids` is k, or the initial
    centroids themselves ([k], or [C, k] per channel; with dropped weights these are the free ones and the
    fixed 0 comes on top). Forward pass: w = c[channel, idx]; gather's
    gradient sums the gradients of a centroid's members onto it. With reassign=False (Han) the
    assignments idx are fixed at the start, so a trained weight always equals its centroid; with
    reassign=True (tfmot) each forward pass assigns the latent weights to their nearest centroid and the
    latent weights get the straight-through gradient, so they can change cluster.

    Sparsity (`mask`, 1 = a kept weight; default: the non-zeros of w0 when `preserve_sparsity`): a weight
    the mask drops stays exactly 0, through a centroid fixed at 0 that only they use; the kept weights
    share the other k - 1 (all k when nothing is dropped), so the codebook still has k entries.

    int8=True rounds the centroids to int8 levels in every forward pass (straight-through): c = s * q, q an
    integer in [-127, 127], s = max|w0| / 127 of the channel (or tensor), fixed. The trained weights are
    then exactly s * level, and state() / levels() give what the quantize pass stores as a kmeans codebook
    (`qat_*` meta on export): the deployed weights are the trained ones."""
    centroids: np.ndarray | int = 16
    axis: int | None = None
    init: str = "linear"
    iters: int = 20
    reassign: bool = False
    preserve_sparsity: bool = True
    mask: np.ndarray | None = None
    int8: bool = False
    seed: int = 0

    def __post_init__(self):
        if self.init not in CLUSTER_INITS:
            raise EdgecError(f"cluster init {self.init!r}: choose one of {', '.join(CLUSTER_INITS)}")
        if np.ndim(self.centroids) == 0:
            k = int(self.centroids)
            if not 2 <= k <= 256:
                raise EdgecError(f"clusters: {k} centroids; choose 2..256")

    def build(self, w0: np.ndarray, name: str):
        return _Clusterer(self, np.asarray(w0), name)


def _rows_perm(ndim: int, axis: int | None) -> tuple[int, ...]:
    """The transpose taking `axis` first (qw.to_rows' order)."""
    if axis is None:
        return tuple(range(ndim))
    return (axis,) + tuple(d for d in range(ndim) if d != axis)


class _Clusterer:
    """Cluster's built form. Rows are qw.to_rows(w, axis): [C, K] per channel, [1, size] per tensor;
    c [C, m] are the trainable centroids, plus a constant 0 in front (index 0) when some weights are
    dropped; idx [C, K] the assignments (int64, fixed unless reassigning)."""

    def __init__(self, spec: Cluster, w0: np.ndarray, name: str):
        tf = _tf()
        self.spec, self.name, self.shape = spec, name, tuple(w0.shape)
        self.perm = _rows_perm(w0.ndim, spec.axis)
        rows = qw.to_rows(np.asarray(w0, np.float64), spec.axis)
        keep = None
        if spec.mask is not None:
            if np.shape(spec.mask) != self.shape:
                raise EdgecError(f"{name}: cluster mask {np.shape(spec.mask)} does not match the weight {self.shape}")
            keep = qw.to_rows(np.asarray(spec.mask) != 0, spec.axis)
        elif spec.preserve_sparsity:
            keep = rows != 0
        self.sparse = keep is not None and not keep.all()
        self.keep = np.ones(rows.shape, bool) if keep is None else keep
        R = rows.shape[0]
        if np.ndim(spec.centroids) == 0:
            k = int(spec.centroids)
            m = k - 1 if self.sparse else k
            rng = np.random.default_rng(spec.seed)
            c0 = np.stack([cluster_values(rows[r][self.keep[r]] if self.keep[r].any() else np.zeros(1), m,
                                          spec.init, spec.iters, rng) for r in range(R)])
        else:
            c0 = np.asarray(spec.centroids, np.float64)
            c0 = np.broadcast_to(c0.reshape(-1, c0.shape[-1]), (R, c0.shape[-1])).copy()
            if c0.shape[1] < 1:
                raise EdgecError(f"{name}: no initial centroids")
        self.k = c0.shape[1] + (1 if self.sparse else 0)
        top = np.abs(rows).max(axis=1)
        self.s = np.where(top > 0, top / 127.0, 1.0).astype(np.float32)       # [R], int8 level scale
        self.c = tf.Variable(c0.astype(np.float32), name=name + "_centroids")
        self.variables = [self.c]
        self.idx0 = self._nearest(rows, self._book_np(c0))
        self.idx = tf.Variable(self.idx0, trainable=False, name=name + "_assign")

    # -- the codebook ----------------------------------------------------------------------------
    def _book_np(self, c: np.ndarray) -> np.ndarray:
        """[R, k] centroids as the forward pass uses them (0 in front when sparse; int8-rounded)."""
        c = np.asarray(c, np.float64)
        if self.spec.int8:
            s = self.s.astype(np.float64)[:, None]
            c = np.clip(np.round(c / s), -127, 127) * s
        return np.concatenate([np.zeros((c.shape[0], 1)), c], axis=1) if self.sparse else c

    def book(self):
        """The [R, k] codebook of the forward pass (TF), its STE rounding included."""
        tf = _tf()
        c = self.c
        if self.spec.int8:
            s = self.s[:, None]
            x = tf.clip_by_value(c / s, -127.0, 127.0)
            c = (x + tf.stop_gradient(tf.round(x) - x)) * s
        if self.sparse:
            c = tf.concat([tf.zeros((c.shape[0], 1), tf.float32), c], axis=1)
        return c

    def _nearest(self, rows: np.ndarray, book: np.ndarray) -> np.ndarray:
        """Assignments [R, K]: a kept weight to its nearest free centroid, a dropped one to the 0."""
        lo = 1 if self.sparse else 0
        idx = np.zeros(rows.shape, np.int64)
        for r in range(rows.shape[0]):
            free = book[r, lo:]
            order = np.argsort(free, kind="stable")
            idx[r] = lo + order[nearest(rows[r], free[order])]
        return np.where(self.keep, idx, 0)

    # -- forward ---------------------------------------------------------------------------------
    def _to_rows(self, w):
        tf = _tf()
        return tf.reshape(tf.transpose(w, self.perm), (len(self.s), -1))

    def _from_rows(self, r):
        tf = _tf()
        moved = [self.shape[a] for a in self.perm]
        return tf.transpose(tf.reshape(r, moved), np.argsort(self.perm))

    def __call__(self, w, training):
        tf = _tf()
        book = self.book()
        if not self.spec.reassign:
            return self._from_rows(tf.gather(book, self.idx, batch_dims=1))
        rows = self._to_rows(w)
        lo = 1 if self.sparse else 0
        free = book[:, lo:]
        d = tf.abs(tf.expand_dims(rows, -1) - tf.expand_dims(free, 1))          # [R, K, m]
        idx = tf.argmin(d, axis=-1, output_type=tf.int64) + lo
        idx = tf.where(tf.constant(self.keep), idx, tf.zeros_like(idx))
        if training:
            self.idx.assign(idx)
        q = tf.gather(book, idx, batch_dims=1)
        return self._from_rows(q) + (w - tf.stop_gradient(w))

    # -- export ----------------------------------------------------------------------------------
    def assignments(self) -> np.ndarray:
        """The current assignments [R, K] (int64)."""
        return self.idx.numpy()

    def levels(self, w: np.ndarray) -> np.ndarray:
        """The int8 levels of this constraint's output w (int8=True): w / s, each in its row's codebook."""
        if not self.spec.int8:
            raise EdgecError(f"{self.name}: levels need Cluster(int8=True)")
        rows = qw.to_rows(np.asarray(w, np.float64), self.spec.axis)
        q = np.round(rows / self.s.astype(np.float64)[:, None])
        book = self.codebook()
        book = book if book.ndim == 2 else book[None]
        if not all(np.isin(q[r], book[r if book.shape[0] > 1 else 0]).all() for r in range(q.shape[0])):
            raise EdgecError(f"{self.name}: clustered levels outside the codebook")
        return qw.from_rows(q, self.shape, self.spec.axis).astype(np.int8)

    def codebook(self) -> np.ndarray:
        """int8 codebook of the deployed weights: per channel [C, n] (each row ascending, padded by
        repeating its largest entry) or per tensor [n]: the distinct int8 levels of the centroids."""
        q = np.round(self._book_np(self.c.numpy()) / self.s.astype(np.float64)[:, None]).astype(np.int64)
        books = [np.unique(r) for r in q]
        n = max(b.size for b in books)
        out = np.stack([np.concatenate([b, np.full(n - b.size, b[-1])]) for b in books]).astype(np.int8)
        return out if self.spec.axis is not None else out[0]

    def state(self):
        c = self._book_np(self.c.numpy()).astype(np.float32)
        st = {"centroids": c[0] if self.spec.axis is None else c}
        if self.sparse:
            st["mask"] = qw.from_rows(self.keep, self.shape, self.spec.axis)
        if self.spec.int8:
            book = self.codebook()
            st.update(scale=self.s.copy() if self.spec.axis is not None else self.s[:1].copy(),
                      bits=kmeans_bits(book.shape[-1]), scheme="kmeans", axis=self.spec.axis, codebook=book)
        return st


def kmeans_bits(n: int) -> int:
    """Bits per codebook index: ceil(log2 n), at least 1 (the C backend's packing)."""
    return max(1, int(np.ceil(np.log2(n)))) if n > 1 else 1


@dataclass
class Hash:
    """HashedNets weight sharing within a FULLY_CONNECTED weight [O, I]: W[o, i] = sign(o, i) * b[h(o, i)]
    with the hash, signs and bucket count fixed by `spec` (edgec.weight_hashing.HashSpec, seeded). The
    buckets b are the trained variables (gather's gradient sums each bucket's members, sign included);
    they start from the least-squares projection of the initial weights (each bucket the mean of
    sign * w over its members).

    int8=True rounds the buckets to int8 levels of one scale s = max|w0| / 127 in every forward pass
    (straight-through), so the weight is exactly s * sign * level: per-tensor int8 weights that the C
    backend stores as the B buckets alone (state() gives the quantize pass the levels and scale)."""
    spec: "object"
    int8: bool = True

    def build(self, w0: np.ndarray, name: str):
        return _Hasher(self, np.asarray(w0), name)


class _Hasher:
    def __init__(self, spec: Hash, w0: np.ndarray, name: str):
        tf = _tf()
        if w0.ndim != 2:
            raise EdgecError(f"{name}: hashing needs a 2-D [out, in] weight, not {list(w0.shape)}")
        self.spec, self.name, self.shape = spec, name, tuple(w0.shape)
        idx, sign = spec.spec.index(w0.shape)
        self.idx, self.sign = idx, sign.astype(np.float32)
        top = float(np.abs(w0).max())
        self.s = np.float32(top / 127.0 if top > 0 else 1.0)
        self.b = tf.Variable(spec.spec.project(w0).astype(np.float32), name=name + "_buckets")
        self.variables = [self.b]

    def buckets(self):
        tf = _tf()
        if not self.spec.int8:
            return self.b
        x = tf.clip_by_value(self.b / self.s, -127.0, 127.0)
        return (x + tf.stop_gradient(tf.round(x) - x)) * self.s

    def __call__(self, w, training):
        tf = _tf()
        return tf.gather(self.buckets(), self.idx) * self.sign

    def bucket_levels(self) -> np.ndarray:
        """The int8 bucket levels (int8=True)."""
        return np.clip(np.round(self.b.numpy().astype(np.float64) / float(self.s)), -127, 127).astype(np.int8)

    def levels(self, w: np.ndarray) -> np.ndarray:
        """The int8 levels of this constraint's output w: sign * bucket level."""
        q = np.round(np.asarray(w, np.float64) / float(self.s)).astype(np.int64)
        if not np.array_equal(q, self.spec.spec.expand(self.bucket_levels().astype(np.int64), self.shape)):
            raise EdgecError(f"{self.name}: hashed levels are not sign * bucket")
        return q.astype(np.int8)

    def state(self):
        st = {"hash": self.spec.spec.as_dict()}
        if self.spec.int8:
            st.update(scale=np.array([self.s], np.float32), bits=8, scheme="uniform", axis=None)
        return st


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
