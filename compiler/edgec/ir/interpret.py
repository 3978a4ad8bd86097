"""The numpy reference interpreter: runs a Graph op by op with the registry's reference semantics.

It is the oracle for every backend: float32 graphs compute in float32, quantized graphs compute on
raw integers with TFLite's rounding, so its int8 outputs equal TFLite Micro's bit for bit.
"""
from __future__ import annotations

import numpy as np

from ..errors import EdgecError
from . import ops as opreg
from .graph import Graph


def run(g: Graph, inputs: list[np.ndarray], keep: bool = False) -> list[np.ndarray] | dict[str, np.ndarray]:
    """Run one sample (inputs carry a batch dim of 1, as the graph's input shapes do).

    With keep=True returns every tensor's value by name (used for calibration and per-layer error).
    """
    if len(inputs) != len(g.inputs):
        raise EdgecError(f"the model takes {len(g.inputs)} inputs, got {len(inputs)}")
    env: dict[str, np.ndarray] = {}
    for name, x in zip(g.inputs, inputs):
        t = g.tensors[name]
        x = np.asarray(x)
        if x.shape != t.shape:
            raise EdgecError(f"input {name!r} needs shape {list(t.shape)}, got {list(x.shape)}")
        env[name] = x.astype(t.dtype, copy=False)
    for op in g.ops:
        xs = [None if i is None else (env[i] if i in env else g.tensors[i].data) for i in op.inputs]
        ins = [g.t(i) for i in op.inputs]
        outs = [g.tensors[o] for o in op.outputs]
        try:
            ys = opreg.get(op.type).ref(op, xs, ins, outs)
        except NotImplementedError as e:   # a dtype combination the reference (and TFLM) lacks
            raise EdgecError(f"op {op.name} ({op.type}): {e}") from None
        for t, y in zip(outs, ys):
            env[t.name] = np.asarray(y).astype(t.dtype, copy=False).reshape(t.shape)
    if keep:
        return env
    return [env[o] if o in env else g.tensors[o].data for o in g.outputs]


def run_batch(g: Graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Run N samples (inputs[i] has shape [N, ...]) and stack the outputs."""
    n = len(inputs[0])
    per = [run(g, [x[s:s + 1] for x in inputs]) for s in range(n)]
    return [np.concatenate([p[k] for p in per]) for k in range(len(g.outputs))]
