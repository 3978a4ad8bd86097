"""fit: minibatch training of a TrainableGraph (Adam, constant or cosine schedule, early stopping,
L1 / group-lasso regularizers, a per-step hook for pruning schedules)."""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..data import Dataset, dataset_from
from ..errors import EdgecError
from ..ir import ops as opreg


def _tf():
    import tensorflow as tf
    return tf


def _logits_of_output(model, name: str):
    """(softmax input name, beta) when graph output `name` is a SOFTMAX's output, else None: the
    cross-entropy is then computed from the logits, which is stable."""
    for op in model.graph.ops:
        if name in op.outputs and op.type == "SOFTMAX" and not model.constraints.get(name):
            return op.inputs[0], float(np.float32(op.attrs.get("beta", 1.0)))
    return None


@dataclass(frozen=True)
class L1:
    """strength * sum |w| over the named trainable constants (None: every weight of a FULLY_CONNECTED,
    CONV_2D, DEPTHWISE_CONV_2D or BATCH_MATMUL), as Keras' l1 regularizer: drives single weights to 0."""
    strength: float
    tensors: tuple[str, ...] | None = None


@dataclass(frozen=True)
class GroupLasso:
    """strength * sum_g sqrt(|g|) * ||w_g||_2 (Yuan & Lin), one group per output channel: a row of the
    weight's [out][K] view (constraints.RowView), i.e. a filter of a conv, a unit of a dense layer.
    The L2 norm of a group is not differentiable at 0 and its gradient pulls every weight of the group
    towards 0 together, so whole channels go to zero before they are cut. tensors: names of trainable
    constants (None: every weight of a FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D or BATCH_MATMUL)."""
    strength: float
    tensors: tuple[str, ...] | None = None


def _regularized(model, regularizers) -> list[tuple[object, object, float, str]]:
    """(regularizer, variable, strength, RowView or None) per regularized weight; the view gives a group
    lasso its groups (the weight's output channels)."""
    from .constraints import ROW_OPS, RowView
    weights = {}
    for op in model.graph.ops:
        if op.type in ROW_OPS and len(op.inputs) > 1 and op.inputs[1] in model.variables:
            weights.setdefault(op.inputs[1], op)
    out = []
    for r in regularizers:
        if not isinstance(r, (L1, GroupLasso)):
            raise EdgecError(f"unknown regularizer {r!r}: use edgec.train.fit.L1 or GroupLasso")
        names = r.tensors if r.tensors is not None else tuple(weights)
        for n in names:
            if n not in model.variables:
                raise EdgecError(f"regularizer on {n!r}, which is not a trainable float constant")
            view = None
            if isinstance(r, GroupLasso):
                if n not in weights:
                    raise EdgecError(f"group lasso on {n!r}: not the weight of a {', '.join(ROW_OPS)} op, "
                                     f"so it has no output channels")
                op = weights[n]
                view = RowView.of(op.type, op.attrs, len(model.graph.tensors[n].shape))
            out.append((r, model.variables[n], float(r.strength), view))
    return out


def _penalty(terms):
    tf = _tf()
    total = tf.constant(0.0)
    for r, v, strength, view in terms:
        if isinstance(r, L1):
            total += strength * tf.reduce_sum(tf.abs(v))
        else:
            rows = view.to_rows(v)
            k = float(rows.shape[1])
            # + tiny: a finite gradient at an all-zero group
            total += strength * math.sqrt(k) * tf.reduce_sum(tf.sqrt(tf.reduce_sum(tf.square(rows), 1) + 1e-12))
    return total


def make_loss(model, loss):
    """loss(xs, y, training) -> scalar for the model's first output."""
    tf = _tf()
    out = model.graph.outputs[0]
    if callable(loss):
        def fn(xs, y, training):
            return loss(y, model.forward(xs, training)[0])
        return fn
    if loss == "mse":
        def fn(xs, y, training):
            return tf.reduce_mean(tf.square(model.forward(xs, training)[0] - y))
        return fn
    if loss != "crossentropy":
        raise EdgecError(f"unknown loss {loss!r}: crossentropy, mse or a callable(y_true, y_pred)")
    soft = _logits_of_output(model, out)

    def fn(xs, y, training):
        if soft is not None:
            logits = model.forward(xs, training, keep=True)[soft[0]] * soft[1]
        else:
            logits = model.forward(xs, training)[0]
        logits = tf.reshape(logits, (tf.shape(y)[0], -1))
        if y.dtype.is_integer:
            return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.reshape(y, [-1]), logits))
        return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(tf.reshape(y, tf.shape(logits)), logits))
    return fn


def _progress(total: int, enabled: bool):
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    p = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                 TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=Console(stderr=True),
                 transient=True)
    p.start()
    p.add_task("train", total=total, info="")
    return p


def fit(model, data, loss="crossentropy", epochs: int = 10, batch_size: int = 32, lr: float = 1e-3,
        schedule: str = "constant", val=None, early_stopping: int | None = None, seed: int = 0,
        restore_best: bool = False, weight_decay: float = 0.0, progress: bool | None = None,
        regularizers: tuple | list = (), on_step: Callable[[int], None] | None = None) -> dict:
    """Train `model` (a TrainableGraph) on `data` (a Dataset, or dict with x/x0.. and y) with Adam.

    schedule: "constant" or "cosine" (lr decays to 0 over all steps). val: held-out data for
    val_loss / val_accuracy each epoch; with early_stopping=patience, training stops after `patience`
    epochs without a val_loss improvement and the best weights are restored; restore_best restores them
    without stopping early. The starting weights count as epoch 0, so training with val never ends
    worse on it than it began. regularizers: L1 / GroupLasso terms added to the training loss (not to
    val_loss). on_step(step): called after every training step (1, 2, ... over all epochs), e.g. to
    update pruning masks. Deterministic for a fixed
    seed (tf.random.set_seed, numpy shuffling, TF op determinism). Returns the history:
    {"loss": [...], "val_loss": [...], "val_accuracy": [...], "epochs": n, "stopped_early": bool,
    "best_epoch": k}."""
    tf = _tf()
    tf.random.set_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # pragma: no cover - older TF
        pass
    if schedule not in ("constant", "cosine"):
        raise EdgecError(f"unknown schedule {schedule!r}: constant or cosine")
    ds = dataset_from(data, "train data")
    if ds.y is None:
        raise EdgecError("fit needs targets (y) in the training data")
    vds = dataset_from(val, "validation data") if val is not None else None
    if early_stopping and vds is None:
        raise EdgecError("early_stopping needs held-out data (val=...)")
    xs = [np.asarray(x, np.float32) for x in ds.xs]
    y = _targets(ds.y)
    n = len(ds)
    steps_per_epoch = max(1, math.ceil(n / batch_size))
    total = steps_per_epoch * epochs
    loss_fn = make_loss(model, loss)
    reg_terms = _regularized(model, regularizers)
    variables = model.trainable_variables
    m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
    s = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    b1, b2, eps = 0.9, 0.999, 1e-7

    @tf.function(reduce_retracing=True)
    def train_step(batch_xs, batch_y):
        with tf.GradientTape() as tape:
            value = loss_fn(list(batch_xs), batch_y, True)
            objective = value + _penalty(reg_terms) if reg_terms else value
        grads = tape.gradient(objective, variables)
        step.assign_add(1)
        t = tf.cast(step, tf.float32)
        rate = tf.constant(lr, tf.float32)
        if schedule == "cosine":
            rate = rate * 0.5 * (1.0 + tf.cos(math.pi * tf.minimum(t - 1.0, total) / total))
        corr = tf.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
        for v, g, mv, sv in zip(variables, grads, m, s):
            if g is None:
                continue
            g = tf.convert_to_tensor(g)          # IndexedSlices (gather) -> dense
            mv.assign(b1 * mv + (1 - b1) * g)
            sv.assign(b2 * sv + (1 - b2) * g * g)
            upd = rate * corr * mv / (tf.sqrt(sv) + eps)
            if weight_decay:
                upd += rate * weight_decay * v
            v.assign_sub(upd)
        return value

    @tf.function(reduce_retracing=True)
    def eval_step(batch_xs, batch_y):
        return loss_fn(list(batch_xs), batch_y, False)

    rng = np.random.default_rng(seed)
    hist = {"loss": [], "val_loss": [], "val_accuracy": [], "epochs": 0, "stopped_early": False, "best_epoch": None}
    best, best_state, bad = math.inf, None, 0

    def val_loss() -> float:
        vx = [np.asarray(x, np.float32) for x in vds.xs]
        vy = _targets(vds.y)
        return sum(float(eval_step(tuple(x[i:i + 512] for x in vx), vy[i:i + 512])) * len(vy[i:i + 512])
                   for i in range(0, len(vy), 512)) / len(vy)

    if vds is not None:   # the starting point is epoch 0
        best, best_state, hist["best_epoch"] = val_loss(), [v.numpy() for v in variables], 0
        hist["val_loss_initial"] = best
    show = sys.stderr.isatty() if progress is None else progress
    bar = _progress(total, show)
    try:
        for epoch in range(epochs):
            order = rng.permutation(n)
            total_loss = 0.0
            for i in range(0, n, batch_size):
                idx = order[i:i + batch_size]
                value = float(train_step(tuple(x[idx] for x in xs), y[idx]))
                total_loss += value * len(idx)
                if on_step is not None:
                    on_step(int(step.numpy()))
                if bar is not None:
                    bar.update(bar.task_ids[0], advance=1, info=f"epoch {epoch + 1}/{epochs} loss {value:.4f}")
            hist["loss"].append(total_loss / n)
            hist["epochs"] = epoch + 1
            if vds is not None:
                vl = val_loss()
                hist["val_loss"].append(vl)
                hist["val_accuracy"].append(accuracy(model, vds))
                if vl < best - 1e-6:
                    best, bad, hist["best_epoch"] = vl, 0, epoch + 1
                    best_state = [v.numpy() for v in variables]
                else:
                    bad += 1
                    if early_stopping and bad >= early_stopping:
                        hist["stopped_early"] = True
                        break
    finally:
        if bar is not None:
            bar.stop()
    if (early_stopping or restore_best) and best_state is not None:
        for v, b in zip(variables, best_state):
            v.assign(b)
    return hist


def _targets(y):
    y = np.asarray(y)
    return y.astype(np.int32) if y.dtype.kind in "iub" else y.astype(np.float32)


def accuracy(model, data) -> float:
    """Top-1 accuracy of the first output against integer labels (or argmax of soft targets)."""
    ds = dataset_from(data, "data")
    out = model.predict([np.asarray(x, np.float32) for x in ds.xs])[0].reshape(len(ds), -1)
    y = np.asarray(ds.y)
    labels = y.reshape(-1) if y.dtype.kind in "iub" else y.reshape(len(ds), -1).argmax(1)
    return float((out.argmax(1) == labels).mean())


__all__ = ["fit", "accuracy", "make_loss", "L1", "GroupLasso", "Dataset", "opreg"]
