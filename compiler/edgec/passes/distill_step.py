"""distill: a recipe step after which fine-tuning passes learn from a teacher's soft targets instead of
labels alone (pruning, clustering, factorization and quantization-aware training all fine-tune).

    [[pass]]
    name = "distill"
    teacher = ""          # "": the graph as it enters this step (the uncompressed float model);
                          # or a model path, or a list of paths (an ensemble: soft targets averaged)
    loss = "kd"           # kd (KL at temperature T, scaled by T^2) or mse (centred logits)
    temperature = 4.0
    alpha = 0.9           # weight of the teacher's signal; 1 - alpha weighs the labels' cross-entropy

The step leaves the graph as it is and puts a DistillTeacher in ctx.teacher, which the pipeline hands
to every later pass (PassContext.teacher). A pass that fine-tunes asks for the teacher's signal on its
training inputs:

    sig = teacher_signal(ctx, graph, xs, y)     # None when no distill step ran before this pass
    if sig is not None:
        fit(model, Dataset(xs, sig.targets), loss=sig.loss, val=Dataset(xs_held, sig.targets[held]), ...)
        # held-out accuracy: against sig.labels (the labels, or the teacher's top-1 where there are none)

sig.targets packs, per sample, C teacher logits and the label (-1: none) as float32 [N, C + 1];
sig.loss(y_true, y_pred) reads them against the student's first output (probabilities when it is a
SOFTMAX output: their logarithms are the logits up to a per-sample shift, which neither the softened
KL nor the centred MSE sees). The math is edgec.train.distill's, as `edgec distill` trains with.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import EdgecError
from ..ir import Graph
from .manager import PassContext, register_pass

LOG_FLOOR = 1e-30       # probabilities below this are taken as this before the logarithm


@dataclass
class DistillTeacher:
    graphs: list[Graph]
    names: list[str]
    loss: str
    temperature: float
    alpha: float


@dataclass
class TeacherSignal:
    loss: Callable          # fit's callable loss: (y_true [B, C + 1], y_pred) -> scalar
    targets: np.ndarray     # float32 [N, C + 1]: teacher logits, label (-1: none)
    labels: np.ndarray      # int64 [N]: the labels, or the teacher's top-1 where there are none
    kind: str


def _check(o: dict) -> None:
    if o["loss"] not in ("kd", "mse"):
        raise EdgecError(f"distill: loss {o['loss']!r}: choose kd or mse")
    if not float(o["temperature"]) > 0:
        raise EdgecError(f"distill: temperature {o['temperature']} must be > 0")
    if not 0.0 <= float(o["alpha"]) <= 1.0:
        raise EdgecError(f"distill: alpha {o['alpha']} must be in [0, 1]")


@register_pass("distill", teacher="", loss="kd", temperature=4.0, alpha=0.9)
def distill(g: Graph, ctx: PassContext) -> Graph:
    from ..train.distill import classes_of, params
    o = ctx.options
    _check(o)
    paths = [o["teacher"]] if isinstance(o["teacher"], str) else list(o["teacher"])
    if paths == [""]:
        quantized = next((n for n, t in g.tensors.items() if t.quant is not None), None)
        if quantized is not None:
            raise EdgecError(f"distill: the teacher must be a float model; tensor {quantized!r} is already "
                             f"quantized (put the distill step before quantize)")
        graphs, names = [g.copy()], ["(the model before the passes after this step)"]
    else:
        from ..frontend import load_model
        graphs, names = [load_model(p).graph for p in paths], paths
    for name, t in zip(names, graphs):
        if classes_of(t) != classes_of(g):
            raise EdgecError(f"distill: teacher {name} has {classes_of(t)} classes, the model {classes_of(g)}")
    ctx.teacher = DistillTeacher(graphs, names, o["loss"], float(o["temperature"]), float(o["alpha"]))
    ctx.report.update(distill_teachers=names, distill_teacher_params=[params(t) for t in graphs],
                      distill_loss=o["loss"], distill_temperature=float(o["temperature"]),
                      distill_alpha=float(o["alpha"]))
    return g


def teacher_signal(ctx: PassContext, graph: Graph, xs: list[np.ndarray], y=None) -> TeacherSignal | None:
    """The teacher's targets and loss for fine-tuning `graph` on inputs `xs` (labels `y` or None), or
    None when no distill step ran before (ctx.teacher unset)."""
    teacher = getattr(ctx, "teacher", None)
    if teacher is None:
        return None
    from ..train.distill import Teacher, classes_of, label_ce, logits_of, mimic_loss
    c = classes_of(graph)
    t = Teacher(teacher.graphs)
    if t.classes != c:
        raise EdgecError(f"distill: the teacher has {t.classes} classes, the model being trained {c}")
    z = t.predict_logits([np.asarray(x, np.float32) for x in xs])              # [K, N, C]
    T = teacher.temperature
    if teacher.loss == "kd":
        # one logit row whose softmax at T is the ensemble's mean softened distribution
        p = np.exp(z / T - (z / T).max(-1, keepdims=True))
        p = (p / p.sum(-1, keepdims=True)).mean(axis=0)
        zt = T * np.log(np.maximum(p, LOG_FLOOR))
    else:
        zt = (z - z.mean(-1, keepdims=True)).mean(axis=0)
    if y is None:
        labels = np.full(len(zt), -1, np.int64)
    else:
        y = np.asarray(y)
        one_hot = y.dtype.kind == "f" and y.ndim > 1
        labels = (y.reshape(len(y), -1).argmax(1) if one_hot else y.reshape(-1)).astype(np.int64)
    targets = np.concatenate([zt, labels[:, None]], axis=1).astype(np.float32)
    alpha = teacher.alpha if y is not None else 1.0
    softmax_out = logits_of(graph)[0] != graph.outputs[0]
    kind = teacher.loss

    def loss(y_true, y_pred):
        import tensorflow as tf
        zs = tf.reshape(y_pred, (-1, c))
        if softmax_out:
            zs = tf.math.log(tf.maximum(zs, LOG_FLOOR))
        tz, lab = y_true[None, :, :c], tf.cast(y_true[:, c], tf.int32)
        mask = tf.cast(lab >= 0, tf.float32)
        value = alpha * mimic_loss(kind, zs, tz, T)
        if alpha < 1.0:
            value += (1.0 - alpha) * label_ce(zs, tf.one_hot(tf.maximum(lab, 0), c), mask)
        return value

    return TeacherSignal(loss, targets, np.where(labels >= 0, labels, zt.argmax(1)), kind)
