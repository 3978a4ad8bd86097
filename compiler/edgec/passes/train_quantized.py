"""qat: quantization-aware training, run before `quantize`.

Fine-tunes the float weights with the weights fake-quantized exactly as the quantize pass will store
them (same grid, per-channel layout and rounding; scales chosen like the quantize pass, then fixed or
learned) and, for int8, the activations fake-quantized to int8. The output graph holds each weight's
*snapped* value (scale * level: what the trained forward pass used) and, in tensor.meta:

  qat_scale  float32 [C] (per channel along qat_axis) or [1]   the scale the quantize pass must use
  qat_levels int8, the weight's shape                           round(w / qat_scale) on the grid
  qat_bits, qat_scheme, qat_axis                                how it was quantized
  qat_range  (lo, hi) on activations (int8 only)                the EMA range seen in training

Data: ctx.train_data (a Dataset with labels), else the calibration data: with labels, cross-entropy
on them; without, distillation from the float model's own outputs (soft targets).
"""
from __future__ import annotations

import numpy as np

from ..errors import EdgecError
from ..ir import Graph
from ..ir import ops as opreg
from .manager import PassContext, register_pass


# lr "auto", measured on the digits CNN and DS-CNN (benchmarks/quantization.py): 1e-3 over 10 epochs
# takes ternary and binary weights to within 1-2.5 points of float (1e-4 left binary 5 points short),
# while 8-bit weights, already close to float, only need fine-tuning at 1e-4.
AUTO_LR = {"8bit": 1e-4, "low": 1e-3}


def _lr(o: dict) -> float:
    if o["lr"] != "auto":
        return float(o["lr"])
    eight_bit = int(o["weight_bits"]) >= 8 and o["weight_scheme"] in ("uniform", "kmeans")
    return AUTO_LR["8bit" if eight_bit else "low"]


@register_pass("qat", dtype="int8", weight_bits=8, weight_scheme="uniform", per_channel=True, epochs=10,
               batch_size=32, lr="auto", lsq=False, seed=0, activations=True)
def qat(g: Graph, ctx: PassContext) -> Graph:
    from .. import quant_weights as qw
    from ..data import Dataset
    from ..train import ActQuant, WeightQuant, build_model, export, fit
    from ..train.model import weight_layout

    o = ctx.options
    if o["dtype"] not in ("int8", "int16x8"):
        raise EdgecError(f"qat: dtype must be int8 or int16x8 (as the quantize pass that follows), not {o['dtype']!r}")
    act = "int16" if o["dtype"] == "int16x8" else "int8"
    data = ctx.train_data if ctx.train_data is not None else ctx.calibration
    if data is None:
        raise EdgecError("qat needs training data (train data with labels, or calibration data)")
    xs = [np.asarray(x, np.float32) for x in (data.xs if hasattr(data, "xs") else data)]
    y = getattr(data, "y", None)

    constraints: dict = {}
    if act == "int8" and o["activations"]:
        for name in g.inputs:
            if g.tensors[name].dtype == "float32":
                constraints[name] = ActQuant()
    for op in g.ops:
        d = opreg.get(op.type)
        if act not in d.quant_dtypes:
            continue                                   # the quantize pass leaves it in float
        opts = ctx.op_options(op)
        try:
            bits = qw.scheme_bits(int(opts["weight_bits"]), opts["weight_scheme"])
        except ValueError as e:
            raise EdgecError(f"qat: {e}") from None
        if opts["weight_scheme"] not in ("uniform", "ternary", "binary", "pow2"):
            raise EdgecError(f"qat: weight_scheme {opts['weight_scheme']!r} is not trainable here")
        for k, name in enumerate(op.inputs):
            if name is None or k not in d.weights or name in constraints:
                continue
            t = g.tensors[name]
            if not t.is_const or t.dtype != "float32":
                continue
            axis = weight_layout(op.type, k, bits, opts["weight_scheme"], bool(opts["per_channel"]))
            mode = "lsq" if opts["lsq"] else ("ttq" if opts["weight_scheme"] in ("ternary", "binary") else "fixed")
            constraints[name] = WeightQuant(bits, opts["weight_scheme"], axis, mode)
        if act == "int8" and o["activations"] and isinstance(d.out_quant, str) and d.out_quant == "calibrate":
            for out in op.outputs:
                if g.tensors[out].dtype == "float32":
                    constraints.setdefault(out, ActQuant())
    if not constraints:
        ctx.report["qat"] = "no quantizable weights"
        return g

    model = build_model(g, constraints)
    if y is not None:
        loss, targets = "crossentropy", np.asarray(y)
    else:                                             # distill the float model's outputs
        teacher = build_model(g).predict(xs)[0]
        soft = any(op.type == "SOFTMAX" and g.outputs[0] in op.outputs for op in g.ops)
        loss, targets = ("crossentropy" if soft else "mse"), teacher
    # every tenth sample is held out: the weights kept are the best on it, the untrained
    # (post-training-quantization-like) start included, so QAT does not end worse than it began
    n = len(targets)
    held = np.arange(n) % 10 == 9 if n >= 50 else np.zeros(n, bool)
    train = Dataset([x[~held] for x in xs], targets[~held], "qat data")
    val = Dataset([x[held] for x in xs], targets[held], "qat held-out data") if held.any() else None
    hist = fit(model, train, loss=loss, epochs=int(o["epochs"]), batch_size=int(o["batch_size"]), lr=_lr(o),
               schedule="cosine", seed=int(o["seed"]), val=val, restore_best=val is not None,
               progress=False if ctx.progress is None else None)
    out = export(model, snap=True)
    ctx.report.update(qat_weights=sum(1 for c in constraints.values() if isinstance(c, WeightQuant)),
                      qat_activations=sum(1 for c in constraints.values() if isinstance(c, ActQuant)),
                      qat_loss=[round(v, 5) for v in hist["loss"]], qat_target="labels" if y is not None else "distill",
                      qat_best_epoch=hist["best_epoch"])
    return out
