"""Check one graph's integer outputs: the numpy reference against LiteRT (reference kernels) and
TFLite Micro, bit for bit, on random inputs. Used by the per-op tests and the model tests."""
from __future__ import annotations

import numpy as np

from edgec.backends.tflite import write_tflite
from edgec.ir import Graph, verify
from edgec.ir.interpret import run_batch
from edgec.run.litert import run_litert
from edgec.run.tflm import run_tflm


def random_inputs(g: Graph, n: int = 3, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    xs = []
    for name in g.inputs:
        t = g.tensors[name]
        shape = (n,) + t.shape[1:]
        if t.dtype == "float32":
            xs.append(rng.standard_normal(shape).astype(np.float32))
        else:
            info = np.iinfo(t.dtype)
            xs.append(rng.integers(info.min, info.max + 1, shape).astype(t.dtype))
    return xs


def check_bit_exact(g: Graph, n: int = 3, seed: int = 0, tflm: bool = True, inputs=None) -> None:
    """Assert reference == LiteRT BUILTIN_REF (== TFLM) exactly; float graphs to 1e-5 relative."""
    verify(g)
    model = write_tflite(g)
    xs = inputs if inputs is not None else random_inputs(g, n, seed)
    want = run_batch(g, xs)
    runners = [("litert", lambda: run_litert(model, xs))]
    if tflm:
        runners.append(("tflm", lambda: run_tflm(model, xs)))
    for label, fn in runners:
        got = fn()
        for k, (w, o) in enumerate(zip(want, got)):
            assert w.shape == o.shape, f"{label} output {k}: shape {o.shape} != {w.shape}"
            if w.dtype.kind == "f":
                np.testing.assert_allclose(o, w, rtol=1e-5, atol=1e-5, err_msg=f"{label} output {k}")
            else:
                diff = np.abs(o.astype(np.int64) - w.astype(np.int64))
                assert diff.max() == 0, (f"{label} output {k}: {int((diff > 0).sum())} of {diff.size} "
                                         f"values differ, max {int(diff.max())} LSB")
