"""Check one graph's generated C: built for the host, its raw outputs must equal TFLite Micro's (and
the reference interpreter's) bit for bit; float graphs to 1e-5. Used by the per-op C tests."""
from __future__ import annotations

import numpy as np

from edgec.backends.c.emit import emit_c
from edgec.backends.tflite import write_tflite
from edgec.ir import Graph, verify
from edgec.ir.interpret import run_batch
from edgec.run.host import load_host
from edgec.run.tflm import run_tflm
from opcheck import random_inputs


def run_c(g: Graph, xs: list[np.ndarray], variants=("ref",)) -> list[np.ndarray]:
    project = emit_c(g, variants=variants)
    return load_host(project.files, g, project.arena_size).run(xs)


def check_c_exact(g: Graph, n: int = 100, seed: int = 0, tflm: bool = True, inputs=None,
                  variants=("ref",)) -> None:
    verify(g)
    xs = inputs if inputs is not None else random_inputs(g, n, seed)
    got = run_c(g, xs, variants)
    want = run_batch(g, xs)
    refs = [("reference", want)]
    if tflm and all(g.tensors[o].dtype != "float32" for o in g.outputs):
        refs.append(("tflm", run_tflm(write_tflite(g), xs)))
    for label, ref in refs:
        for k, (w, o) in enumerate(zip(ref, got)):
            assert w.shape == o.shape, f"C vs {label} output {k}: shape {o.shape} != {w.shape}"
            if w.dtype.kind == "f":
                np.testing.assert_allclose(o, w, rtol=1e-5, atol=1e-5, err_msg=f"C vs {label} output {k}")
            else:
                diff = np.abs(o.astype(np.int64) - w.astype(np.int64))
                assert diff.max() == 0, (f"C vs {label} output {k}: {int((diff > 0).sum())} of {diff.size} "
                                         f"values differ, max {int(diff.max())} LSB")
