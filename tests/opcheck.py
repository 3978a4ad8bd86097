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


# Where LiteRT's reference kernels knowingly round differently from TFLite Micro (whose numerics the
# reference interpreter and the C backend follow), as (op, output dtype) -> LSB. Each was measured
# and is pinned exactly in tests/ops/: LiteRT 2.3 computes some multipliers in float or rescales in
# double where TFLM uses double multipliers and the fixed-point path:
# - FULLY_CONNECTED int8/int16: double-precision rescale (~0.1% of int8, 2-20% of int16 values);
# - MUL int8/int16, PRELU int8, RELU int16, LEAKY_RELU int16: float multipliers (~1e-6 to 2e-4);
# - SOFTMAX int16: two entries of the 1/(1+x) table differ (~1e-4 of values).
# A deviation can grow by a LSB through a following nonlinearity, so whole graphs allow the largest
# single deviation plus one.
LITERT_DEVIATIONS_LSB = {("FULLY_CONNECTED", "int8"): 1, ("FULLY_CONNECTED", "int16"): 1,
                         ("MUL", "int8"): 1, ("MUL", "int16"): 1, ("PRELU", "int8"): 1,
                         ("RELU", "int16"): 1, ("LEAKY_RELU", "int16"): 1, ("SOFTMAX", "int16"): 1}


def check_bit_exact(g: Graph, n: int = 3, seed: int = 0, tflm: bool = True, inputs=None) -> dict:
    """Assert reference == TFLM exactly and == LiteRT BUILTIN_REF exactly (within the documented
    deviations above when the graph has those ops); float graphs to 1e-5. Returns, per runtime, how
    many integer output values differed and by how much."""
    verify(g)
    model = write_tflite(g)
    xs = inputs if inputs is not None else random_inputs(g, n, seed)
    want = run_batch(g, xs)
    deviating = [LITERT_DEVIATIONS_LSB.get((op.type, g.tensors[op.outputs[0]].dtype), 0) for op in g.ops]
    litert_lsb = max(deviating + [0]) + (1 if any(deviating) and len(g.ops) > 1 else 0)
    runners = [("litert", lambda: run_litert(model, xs), litert_lsb)]
    if tflm:
        runners.append(("tflm", lambda: run_tflm(model, xs), 0))
    stats = {}
    for label, fn, allowed in runners:
        got = fn()
        differ, worst = 0, 0
        for k, (w, o) in enumerate(zip(want, got)):
            assert w.shape == o.shape, f"{label} output {k}: shape {o.shape} != {w.shape}"
            if w.dtype.kind == "f":
                np.testing.assert_allclose(o, w, rtol=1e-5, atol=1e-5, err_msg=f"{label} output {k}")
            else:
                diff = np.abs(o.astype(np.int64) - w.astype(np.int64))
                differ, worst = differ + int((diff > 0).sum()), max(worst, int(diff.max()))
                assert diff.max() <= allowed, (f"{label} output {k}: {int((diff > 0).sum())} of {diff.size} "
                                               f"values differ, max {int(diff.max())} LSB")
        stats[label] = {"values_differing": differ, "max_lsb": worst}
    return stats
