"""Run a .tflite in TensorFlow Lite Micro's interpreter (the tflite-micro package)."""
from __future__ import annotations

import re

import numpy as np

from ..native_output import captured_native_output

DEFAULT_ARENA = 16 * 1024 * 1024


def run_tflm(model: bytes, inputs: list[np.ndarray], arena_size: int = DEFAULT_ARENA) -> list[np.ndarray]:
    """One batch-1 inference per sample: inputs[i] has shape [N, *input_i_shape[1:]]."""
    from tflite_micro.python.tflite_micro import runtime

    from ..tflite_schema import schema
    m = schema.Model.GetRootAsModel(model, 0)
    _refuse_sparse(m)
    n_outputs = m.Subgraphs(0).OutputsLength()
    it = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
    results: list[list[np.ndarray]] = [[] for _ in range(n_outputs)]
    for s in range(len(inputs[0])):
        for i, x in enumerate(inputs):
            d = it.get_input_details(i)
            it.set_input(np.asarray(x[s:s + 1], d["dtype"]).reshape(d["shape"]), i)
        it.invoke()
        for k, r in enumerate(results):
            r.append(it.get_output(k).copy())
    return [np.concatenate(r) for r in results]


def _refuse_sparse(m) -> None:
    """TFLite Micro has no sparse-tensor support and does not check: it would read the compressed
    buffer as dense weights and return garbage (measured; see backends/tflite/writer.py)."""
    from ..errors import EdgecError
    sg = m.Subgraphs(0)
    for k in range(sg.TensorsLength()):
        t = sg.Tensors(k)
        if t.Sparsity() is not None:
            raise EdgecError(f"tensor {t.Name().decode(errors='replace')} is stored sparse, which TFLite Micro "
                             f"cannot run; compile without --tflite-sparse for TFLite Micro")


def tflm_arena(model: bytes, arena_size: int = DEFAULT_ARENA) -> dict[str, int]:
    """TFLM's arena use for `model`: total, head (activation tensors, planned) and tail (persistent
    allocations), read from print_allocations() on the C-level stdout/stderr."""
    from tflite_micro.python.tflite_micro import runtime
    it = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
    with captured_native_output() as output:
        it.print_allocations()
        text = output()
    found = dict(re.findall(r"Arena allocation (total|head|tail) (\d+) bytes", text))
    if set(found) != {"total", "head", "tail"}:
        raise RuntimeError(f"TFLM did not report its arena: {text[:200]!r}")
    return {k: int(v) for k, v in found.items()}
