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

WEIGHT_SCHEMES = ("uniform", "ternary", "binary", "pow2")
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
    the plain gradient, trained ternary/binary scales)."""
    bits: int = 8
    scheme: str = "uniform"
    axis: int | None = None
    scale: str = "fixed"
    init: str | None = None          # "max" or "mse"; default: max for 8-bit uniform, else mse

    def __post_init__(self):
        if self.scheme not in WEIGHT_SCHEMES:
            raise EdgecError(f"weight scheme {self.scheme!r}: choose one of {', '.join(WEIGHT_SCHEMES)}")
        if self.scale not in SCALE_MODES:
            raise EdgecError(f"weight scale mode {self.scale!r}: choose one of {', '.join(SCALE_MODES)}")
        self.bits = qw.scheme_bits(self.bits, self.scheme)

    @property
    def grid(self) -> np.ndarray:
        return qw.levels(self.bits, self.scheme)

    def build(self, w0: np.ndarray, name: str):
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
    """Multiply a weight by a fixed 0/1 mask (same shape)."""
    mask: np.ndarray

    def build(self, w0: np.ndarray, name: str):
        mask = np.asarray(self.mask, np.float32)
        if mask.shape != w0.shape:
            raise EdgecError(f"{name}: prune mask {mask.shape} does not match the weight {w0.shape}")
        tf = _tf()
        m = tf.constant(mask)
        f = lambda w, training: w * m  # noqa: E731
        f.state = lambda: {"mask": mask}
        f.variables = []
        return f


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


class _WeightQuantizer:
    def __init__(self, spec: WeightQuant, w0: np.ndarray, name: str):
        tf = _tf()
        self.spec, self.name, self.shape = spec, name, w0.shape
        self.grid = spec.grid
        init = spec.init or ("max" if spec.bits == 8 and spec.scheme == "uniform" else "mse")
        rows = qw.to_rows(np.asarray(w0, np.float64), spec.axis)
        s0 = qw.choose_grid(rows, spec.bits, spec.scheme, init, spec.axis is not None).scale
        s0 = np.broadcast_to(np.asarray(s0, np.float64).reshape(-1), (rows.shape[0] if spec.axis is not None else 1,))
        s0 = np.where(s0 > 0, s0, 1.0).astype(np.float32)
        self.bshape = [1] * len(w0.shape)
        if spec.axis is not None:
            self.bshape[spec.axis] = -1
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
        x = tf.clip_by_value(w / s, float(self.grid[0]), float(self.grid[-1]))
        q = x + tf.stop_gradient(grid_round(tf, x, self.grid) - x)
        return q * s

    def levels(self, w: np.ndarray) -> np.ndarray:
        """The integer levels the deployed model stores: qw's rounding of w / scale (float64)."""
        s = np.abs(self.s.numpy()).astype(np.float64) + 1e-12
        rows = qw.to_rows(np.asarray(w, np.float64), self.spec.axis)
        q = qw.round_to_grid(rows / s.reshape(-1, 1), self.grid)
        return qw.from_rows(q, self.shape, self.spec.axis).astype(np.int8)

    def state(self):
        return {"scale": (np.abs(self.s.numpy()) + np.float32(1e-12)).astype(np.float32),
                "bits": self.spec.bits, "scheme": self.spec.scheme, "axis": self.spec.axis}


class _ActQuantizer:
    def __init__(self, spec: ActQuant, name: str):
        tf = _tf()
        self.spec, self.name = spec, name
        lo, hi = spec.range if spec.range is not None else (0.0, 0.0)
        self.lo = tf.Variable(float(lo), trainable=False, name=name + "_lo")
        self.hi = tf.Variable(float(hi), trainable=False, name=name + "_hi")
        self.seen = tf.Variable(spec.range is not None, trainable=False, name=name + "_seen")
        self.variables = []

    def __call__(self, x, training):
        tf = _tf()
        if training and self.spec.range is None:
            bl, bh = tf.reduce_min(x), tf.reduce_max(x)
            m = self.spec.momentum
            self.lo.assign(tf.where(self.seen, m * self.lo + (1 - m) * bl, bl))
            self.hi.assign(tf.where(self.seen, m * self.hi + (1 - m) * bh, bh))
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
