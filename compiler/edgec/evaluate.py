"""Accuracy and output error of a deployed model against its float original, run in LiteRT with
the reference kernels (whose int8 results equal TFLite Micro's)."""
from __future__ import annotations

import numpy as np

from .data import Dataset, model_inputs
from .ir import Graph
from .run.litert import run_litert


def float_outputs(g: Graph, outs: list[np.ndarray]) -> list[np.ndarray]:
    return [g.tensors[n].quant.dequantize(o) if g.tensors[n].quant is not None else o.astype(np.float32)
            for n, o in zip(g.outputs, outs)]


def accuracy(pred: np.ndarray, y: np.ndarray) -> float | None:
    """Top-1 accuracy for class-score outputs and integer (or one-hot) labels; None otherwise."""
    if pred.ndim < 2 or pred.shape[-1] < 2:
        return None
    p = pred.reshape(len(pred), -1).argmax(axis=1)
    y = y.reshape(len(y), -1).argmax(axis=1) if y.ndim > 1 and y.shape[-1] == pred.shape[-1] else y.reshape(-1)
    return round(float(np.mean(p == y)), 6)


def evaluate(model: bytes, g: Graph, ds: Dataset, float_model: bytes | None = None,
             float_graph: Graph | None = None, runner=None) -> dict:
    """`runner(inputs) -> raw outputs` runs the deployed artifact; LiteRT on `model` by default."""
    xs = model_inputs(ds, g)
    out = float_outputs(g, runner(xs) if runner else run_litert(model, xs))[0]
    res = {"samples": len(ds), "accuracy": None, "float_accuracy": None}
    if ds.y is not None:
        res["accuracy"] = accuracy(out, ds.y)
    if float_model is not None and float_graph is not None:
        ref = float_outputs(float_graph, run_litert(float_model, model_inputs(ds, float_graph), reference=False))[0]
        if ds.y is not None:
            res["float_accuracy"] = accuracy(ref, ds.y)
        err = out.astype(np.float64) - ref.astype(np.float64)
        res["output_rmse"] = round(float(np.sqrt(np.mean(err ** 2))), 6)
        res["output_max_abs_error"] = round(float(np.abs(err).max()), 6)
        if ref.ndim >= 2 and ref.shape[-1] > 1:
            res["top1_agreement"] = round(float(np.mean(ref.reshape(len(ref), -1).argmax(1)
                                                         == out.reshape(len(out), -1).argmax(1))), 6)
    return res
