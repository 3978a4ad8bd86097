"""qat: quantization-aware training, run before `quantize`.

Fine-tunes the float weights with the weights fake-quantized exactly as the quantize pass will store
them (same grid, per-channel layout, per-group multipliers and rounding; scales chosen like the quantize
pass, then fixed or learned; kmeans codebooks trained) and, for int8, the activations fake-quantized to
int8. The output graph holds each weight's *snapped* value (scale * level: what the trained forward pass
used) and, in tensor.meta (edgec.train.export):

  qat_scale       float32 [C] (per channel along qat_axis) or [1]   the scale the quantize pass must use
  qat_levels      int8, the weight's shape                           the stored levels (qat_scale x levels
                                                                     = the snapped weight)
  qat_bits, qat_scheme, qat_axis                                     how it was quantized
  qat_codebook    int8 [n] or [C, n], sorted (kmeans)                the trained codebook
  qat_group_size, qat_group_mult uint8 [R, G] (group_size > 0)       levels = q x mult on the weight's rows
  qat_range       (lo, hi) on activations (int8 only)                the range training used

Activation ranges: with the driver's calibration (ctx.observe), every activation's range is the one the
quantize pass will calibrate for the current weights (same samples, same method), recomputed after each
epoch, so training and the held-out scores see the deployed quantization grid; otherwise an EMA of
batch min/max. The untrained start is then exactly what post-training quantization deploys (same weight
levels and activation ranges; low-bit PTQ adds GPTQ and bias correction, which QAT does not start from),
and it competes as epoch 0: the weights kept are those of the epoch with the best held-out accuracy
(held-out error for regression targets), ties going to the earlier one, and only if that epoch beats the
start significantly on the held-out samples (SIGNIFICANCE_Z) -- so QAT keeps the PTQ model unless
training beats it on data it did not train on.

Data: ctx.train_data (a Dataset with labels), else the calibration data: with labels, cross-entropy
on them; without, distillation from the float model's own outputs (soft targets). Every tenth sample
(from 50 samples on) is held out.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import EdgecError
from ..ir import Graph
from ..ir import ops as opreg
from .manager import PassContext, register_pass


# lr "auto", measured on the digits CNN and DS-CNN (benchmarks/quantization.py): 1e-3 over 10 epochs
# takes ternary weights to within 1 point and binary weights to within 3.2 points of float (1e-4 left
# binary 5 points short), while 8-bit weights, already close to float, only need fine-tuning at 1e-4.
AUTO_LR = {"8bit": 1e-4, "low": 1e-3}


def _lr(o: dict) -> float:
    if o["lr"] != "auto":
        return float(o["lr"])
    eight_bit = int(o["weight_bits"]) >= 8 and o["weight_scheme"] in ("uniform", "kmeans")
    return AUTO_LR["8bit" if eight_bit else "low"]


def _group_size(opts: dict) -> int:
    n = opts["group_size"]
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise EdgecError(f"qat: group_size must be a whole number >= 0, not {n!r}")
    return n


@register_pass("qat", dtype="int8", weight_bits=8, weight_scheme="uniform", per_channel=True, group_size=0,
               epochs=10, batch_size=32, lr="auto", lsq=False, seed=0, activations=True,
               calibration="minmax", percentile=99.99)
def qat(g: Graph, ctx: PassContext) -> Graph:
    from .. import quant_weights as qw
    from ..data import Dataset
    from ..train import ActQuant, Prune, WeightQuant, build_model, export, fit
    from ..train.model import GROUP_OPS, weight_layout, weight_rows_view

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
        group = _group_size(opts) if op.type in GROUP_OPS else 0
        # the quantize pass keeps int16x8 FULLY_CONNECTED weights per tensor (TFLM refuses per channel)
        per_channel = bool(opts["per_channel"]) and not (act == "int16" and op.type == "FULLY_CONNECTED")
        for k, name in enumerate(op.inputs):
            if name is None or k not in d.weights or name in constraints:
                continue
            t = g.tensors[name]
            if not t.is_const or t.dtype != "float32":
                continue
            axis = weight_layout(op.type, k, bits, opts["weight_scheme"], per_channel)
            mode = "lsq" if opts["lsq"] else ("ttq" if opts["weight_scheme"] in ("ternary", "binary") else "fixed")
            try:
                wq = WeightQuant(bits, opts["weight_scheme"], axis, mode, group_size=group,
                                 rows=weight_rows_view(op, len(t.shape)) if group else None)
            except EdgecError as e:
                raise EdgecError(f"qat: {op.type} {op.name}: {e}") from None
            # a pruned weight keeps its zeros: the mask applies before the quantizer (grids hold 0)
            mask = t.meta.get("prune_mask")
            constraints[name] = wq if mask is None else [Prune(mask), wq]
        if act == "int8" and o["activations"] and isinstance(d.out_quant, str) and d.out_quant == "calibrate":
            for out in op.outputs:
                if g.tensors[out].dtype == "float32":
                    constraints.setdefault(out, ActQuant())
    if not constraints:
        ctx.report["qat"] = "no quantizable weights"
        return g

    model = build_model(g, constraints)
    acts = {n: c for n, cs in model.constraints.items() for c in cs if hasattr(c, "set_range")}
    calibrate = _calibrator(model, acts, ctx, export) if acts and ctx.observe is not None else (lambda: None)
    from .distill_step import teacher_signal
    sig = teacher_signal(ctx, g, xs, y)
    if sig is not None:                               # a distill step ran before: learn from its teacher
        loss, targets = sig.loss, sig.targets
    elif y is not None:
        loss, targets = "crossentropy", np.asarray(y)
    else:                                             # distill the float model's outputs
        teacher = build_model(g).predict(xs)[0]
        soft = any(op.type == "SOFTMAX" and g.outputs[0] in op.outputs for op in g.ops)
        loss, targets = ("crossentropy" if soft else "mse"), teacher
    n = len(targets)
    held = np.arange(n) % 10 == 9 if n >= 50 else np.zeros(n, bool)
    train = Dataset([x[~held] for x in xs], targets[~held], "qat data")
    val = Dataset([x[held] for x in xs], targets[held], "qat held-out data") if held.any() else None

    calibrate()
    keeper = _BestEpoch(model, acts, val, loss, None if sig is None or val is None else sig.labels[held])
    steps_per_epoch = max(1, math.ceil(len(train) / int(o["batch_size"])))

    def end_of_step(step: int) -> None:
        if step % steps_per_epoch == 0:               # an epoch ended: recalibrate, then score it
            calibrate()
            keeper.score(step // steps_per_epoch)

    hist = fit(model, train, loss=loss, epochs=int(o["epochs"]), batch_size=int(o["batch_size"]), lr=_lr(o),
               schedule="cosine", seed=int(o["seed"]), on_step=end_of_step,
               progress=False if ctx.progress is None else None)
    keeper.restore()
    out = export(model, snap=True)
    trained = [c[-1] if isinstance(c, list) else c for c in constraints.values()]
    ctx.report.update(qat_weights=sum(1 for c in trained if isinstance(c, WeightQuant)),
                      qat_activations=len(acts),
                      qat_activation_ranges=("calibrated" if ctx.observe is not None else "ema") if acts else None,
                      qat_loss=[round(v, 5) for v in hist["loss"]],
                      qat_target="teacher" if sig is not None else ("labels" if y is not None else "distill"),
                      qat_held_out=keeper.metric, qat_held_out_scores=[round(s, 5) for s in keeper.scores],
                      qat_best_epoch=keeper.best_epoch, qat_kept_epoch=keeper.kept_epoch)
    return out


def _calibrator(model, acts: dict, ctx: PassContext, export):
    """A function setting every fake-quantized activation's range to what the quantize pass will
    calibrate on the model's current (snapped) weights: ctx.observe on the exported graph, read with
    the calibration options of the op producing it (after per-layer overrides)."""
    producer = {out: op for op in model.graph.ops for out in op.outputs}
    opts = {n: ctx.op_options(producer[n]) if n in producer else ctx.options for n in acts}

    def calibrate() -> None:
        stats = ctx.observe(export(model, snap=True))
        for name, c in acts.items():
            if name not in stats:
                raise EdgecError(f"qat: no calibration statistics for activation {name!r}")
            o = opts[name]
            c.set_range(*stats[name].range(o["calibration"], o["percentile"], 8, symmetric=False))
    return calibrate


# One-sided paired test at 95%: a trained epoch replaces the start only if its held-out gain exceeds
# 1.645 standard errors of the per-sample differences (for 0/1 correctness, McNemar's test in normal
# form). The best of ten epochs on a few hundred held-out samples is otherwise mostly noise (winner's
# curse): one sample of 400 is 0.25 points, well under the ~0.6-point standard error of an accuracy
# near 98.5%, yet it would replace the post-training-quantized model.
SIGNIFICANCE_Z = 1.645


class _BestEpoch:
    """Keeps the weights (and activation ranges) of the epoch with the best held-out score (ties: the
    earlier), provided it beats the untrained start (epoch 0, scored on construction) significantly;
    otherwise the start. Scores per sample: correct (0/1) for classification, minus the squared error
    for regression targets. Without held-out data the last epoch is kept."""

    def __init__(self, model, acts: dict, val, loss, labels: np.ndarray | None = None):
        self.model, self.acts, self.val = model, acts, val
        self.labels = labels   # scored against these (a teacher's packed targets are not labels)
        self.metric = "accuracy" if loss == "crossentropy" or labels is not None else "neg_mse"
        self.scores: list[float] = []
        self.best_epoch = self.kept_epoch = None
        self.best = self.start = self.state = self.start_state = None
        if val is not None:
            self.score(0)

    def _per_sample(self) -> np.ndarray:
        out = self.model.predict([np.asarray(x, np.float32) for x in self.val.xs])[0].reshape(len(self.val), -1)
        y = np.asarray(self.val.y if self.labels is None else self.labels)
        if self.metric == "accuracy":
            labels = y.reshape(-1) if y.dtype.kind in "iub" else y.reshape(len(y), -1).argmax(1)
            return (out.argmax(1) == labels).astype(np.float64)
        return -((out.astype(np.float64) - y.reshape(out.shape).astype(np.float64)) ** 2).mean(axis=1)

    def _snapshot(self):
        return ([v.numpy() for v in self.model.trainable_variables],
                {n: (c.lo.numpy(), c.hi.numpy()) for n, c in self.acts.items()})

    def score(self, epoch: int) -> None:
        if self.val is None:
            return
        s = self._per_sample()
        self.scores.append(float(s.mean()))
        if epoch == 0:
            self.start, self.start_state = s, self._snapshot()
        if self.best is None or s.mean() > self.best.mean() + 1e-12:
            self.best, self.best_epoch, self.state = s, epoch, self._snapshot()

    def significant(self) -> bool:
        d = self.best - self.start
        se = d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else 0.0
        return bool(d.mean() > SIGNIFICANCE_Z * se)

    def restore(self) -> None:
        """Put the kept epoch's weights and activation ranges back into the model."""
        if self.val is None:
            return
        self.kept_epoch = self.best_epoch if self.best_epoch == 0 or self.significant() else 0
        values, ranges = self.state if self.kept_epoch == self.best_epoch else self.start_state
        for v, b in zip(self.model.trainable_variables, values):
            v.assign(b)
        for n, c in self.acts.items():
            c.lo.assign(ranges[n][0])
            c.hi.assign(ranges[n][1])
