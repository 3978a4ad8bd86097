"""Per-tensor quantization error: which layer breaks. Runs the float graph (after the same clean-ups
the compile applied, so tensor names line up) and the deployed graph in the reference interpreter on
the same samples and compares each quantized activation and weight with its float counterpart."""
from __future__ import annotations

import numpy as np

from .ir import Graph
from .ir.interpret import run


def _snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    noise = float(np.sum((got - ref) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0:
        return float("inf")
    return 10 * np.log10(max(signal, 1e-30) / noise)


def _row(kind, name, op, ref, got) -> dict:
    err = got.astype(np.float64) - ref.astype(np.float64)
    return {"kind": kind, "tensor": name, "op": op, "snr_db": round(_snr_db(ref.astype(np.float64), got), 2),
            "mse": float(np.mean(err ** 2)), "max_abs_error": float(np.abs(err).max()) if err.size else 0.0}


def layer_errors(float_graph: Graph, q: Graph, float_inputs: list[np.ndarray], q_inputs: list[np.ndarray],
                 samples: int = 16) -> list[dict]:
    """Rows in the deployed graph's op order: each quantized op output, then each quantized weight."""
    n = min(samples, len(float_inputs[0]))
    ref_vals: dict[str, list[np.ndarray]] = {}
    q_vals: dict[str, list[np.ndarray]] = {}
    for s in range(n):
        fe = run(float_graph, [x[s:s + 1] for x in float_inputs], keep=True)
        qe = run(q, [x[s:s + 1] for x in q_inputs], keep=True)
        for op in q.ops:
            for o in op.outputs:
                t = q.tensors[o]
                if t.quant is not None and o in fe and o in float_graph.tensors:
                    ref_vals.setdefault(o, []).append(fe[o])
                    q_vals.setdefault(o, []).append(t.quant.dequantize(qe[o]))
    rows = []
    for op in q.ops:
        for o in op.outputs:
            if o in ref_vals:
                rows.append(_row("activation", o, op.name, np.concatenate(ref_vals[o]), np.concatenate(q_vals[o])))
        for i in op.inputs:
            t = q.tensors.get(i) if i is not None else None
            base = i[:-2] if i is not None and i.endswith("_q") else None
            if t is not None and t.is_const and t.quant is not None and base in float_graph.tensors \
                    and t.dtype in ("int8", "int16"):
                rows.append(_row(f"weight ({t.quant.bits}-bit {t.quant.scheme})", i, op.name,
                                 float_graph.tensors[base].data, t.quant.dequantize(t.data)))
    return rows
