"""Activation statistics for calibration: run the float graph over the calibration samples in LiteRT
with every intermediate tensor kept, and summarise each float tensor's values.

This is the driver's job, not a pass's (passes never import backends): the compile driver hands
`observe` to the quantize pass through its PassContext.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .backends.tflite import write_tflite
from .ir import Graph

SAMPLE_CAP = 1 << 18   # values kept per tensor for percentile / MSE ranges


@dataclass
class TensorStats:
    lo: float
    hi: float
    sample: np.ndarray   # a seeded random subsample of the values seen

    def range(self, method: str, percentile: float = 99.99, bits: int = 8, symmetric: bool = False):
        if method == "minmax":
            return self.lo, self.hi
        if method == "percentile":
            lo, hi = np.percentile(self.sample, [100 - percentile, percentile])
            return float(lo), float(hi)
        if method == "mse":
            return _mse_range(self.sample, self.lo, self.hi, bits, symmetric)
        raise ValueError(f"unknown calibration method {method!r}")


def _mse_range(x: np.ndarray, lo: float, hi: float, bits: int, symmetric: bool):
    """The clipping range, among shrunk copies of [lo, hi], whose quantization error is least."""
    best, best_err = (lo, hi), np.inf
    levels = 2 ** bits - 1
    for frac in np.linspace(0.3, 1.0, 36):
        a, b = lo * frac, hi * frac
        if symmetric:
            m = max(abs(a), abs(b))
            a, b = -m, m
        scale = max(b - a, 1e-12) / levels
        q = np.clip(np.round((x - a) / scale), 0, levels) * scale + a
        err = float(np.mean((q - x) ** 2))
        if err < best_err:
            best, best_err = (a, b), err
    return best


def observe(g: Graph, samples: list[np.ndarray], progress=None, seed: int = 0) -> dict[str, TensorStats]:
    """Statistics of every float non-constant tensor of `g` over the samples (inputs [N, ...])."""
    from .run.litert import make_interpreter
    with warnings.catch_warnings():  # keeping intermediates is the point here, not a debug leftover
        warnings.simplefilter("ignore")
        it = make_interpreter(write_tflite(g), reference=False, keep_all=True)
    details = {d["name"]: d["index"] for d in it.get_tensor_details()}
    wanted = [n for n, t in g.tensors.items() if not t.is_const and t.dtype == "float32" and n in details]
    in_idx = [d["index"] for d in it.get_input_details()]
    n = len(samples[0])
    lo = {k: np.inf for k in wanted}
    hi = {k: -np.inf for k in wanted}
    chunks: dict[str, list[np.ndarray]] = {k: [] for k in wanted}
    rng = np.random.default_rng(seed)
    steps = range(n)
    for s in (progress("calibrating", steps) if progress else steps):
        for idx, x, name in zip(in_idx, samples, g.inputs):
            it.set_tensor(idx, np.asarray(x[s:s + 1], g.tensors[name].dtype).reshape(g.tensors[name].shape))
        it.invoke()
        for k in wanted:
            v = it.get_tensor(details[k]).reshape(-1)
            lo[k] = min(lo[k], float(v.min()))
            hi[k] = max(hi[k], float(v.max()))
            take = max(1, SAMPLE_CAP // n)
            chunks[k].append(v if v.size <= take else rng.choice(v, take, replace=False))
    return {k: TensorStats(lo[k], hi[k], np.concatenate(chunks[k])) for k in wanted}
