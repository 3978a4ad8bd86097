"""prune_weights: zero single weights, blocks or N:M groups of the weights of FULLY_CONNECTED, CONV_2D,
DEPTHWISE_CONV_2D and BATCH_MATMUL (constant rhs), and fine-tune the rest through the IR trainer.

Patterns (`granularity`) are defined on the weight viewed as [out][K] rows (train.constraints.RowView):
  weight      any single weight
  block:RxC   R rows x C consecutive K entries, e.g. block:1x4, block:4x4, block:16x1 (edge blocks of
              a K or row count that R, C do not divide are smaller and scored by their mean)
  nm:N:M      at most N non-zeros in every group of M consecutive K entries (a last, shorter group of
              a K that M does not divide counts as padded with zeros); the sparsity is 1 - N/M
Scores (`criterion`): magnitude / l1 = mean |w| of a unit, l2 = its RMS, taylor = mean |w * dL/dw|
summed over `taylor_batches` training batches (the first-order loss change of zeroing it; Molchanov
et al. 2017). `scope`: "layer" gives each weight its sparsity; "global" ranks the units of all weights
together against one threshold, after dividing each weight's scores by a per-layer norm
(`global_norm`: l2 = the weight's score vector norm, which prunes large layers harder; rms; none).
Per-layer overrides (recipe `[pass.overrides]`, regex on op names) may set sparsity (0 keeps the op
dense; an overridden sparsity takes the op out of the global pool), granularity, criterion and scope.

Schedules, over `epochs` of fine-tuning (Adam at `lr`; L1 / group-lasso regularizers optional):
  oneshot    prune to the target, then fine-tune (epochs = 0: prune only, no data needed)
  iterative  `rounds` rounds of prune-then-fine-tune, the kept fraction shrinking geometrically:
             s_k = 1 - (1 - s_f)^(k / rounds)
  gradual    Zhu & Gupta (2017): masks recomputed every dt steps between steps t0 and t0 + n dt with
             s_t = s_f + (s_i - s_f) (1 - (t - t0) / (n dt))^3, then fine-tuning at s_f; t0 and
             t0 + n dt are the `begin` and `end` fractions of the training steps, dt = `frequency` steps
             (0: n = 16 updates)
  dsd        Han et al. (2017) dense-sparse-dense, from the trained dense model: sparse fine-tune,
             re-densify (the pruned weights restart from 0, lr / 10), sparse again; a third of the
             epochs each
When the mask changes, the pruned weights are set to 0 (as tfmot does), so a weight that was pruned
ranks last at the next update and the masks only grow. With `holdout` f > 0 every (1/f)-th training
sample is held out: the final phase keeps the epoch best on it (the start of the phase included), and
the accuracy before and after pruning is measured on it (else on the training data).

The output graph holds exact zeros where the mask is 0; each pruned weight carries
meta["sparsity"] = the pattern string ("weight", "block:1x4", "nm:2:4") and meta["prune_mask"] (bool).
Data: ctx.train_data, else calibration data with labels; without labels the float model's outputs are
distilled (as the qat pass does).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from ..errors import EdgecError
from ..ir import Graph, Op
from ..train.constraints import ROW_OPS, RowView
from .manager import PassContext, register_pass

SCHEDULES = ("oneshot", "iterative", "gradual", "dsd")
CRITERIA = ("magnitude", "l1", "l2", "taylor")
SCOPES = ("global", "layer")
NORMS = ("l2", "rms", "none")
PER_LAYER = ("sparsity", "granularity", "criterion", "scope")
GRADUAL_UPDATES = 16


# ----------------------------------------------------------------------------------------- patterns

@dataclass(frozen=True)
class Pattern:
    """What one pruning decision removes: kind "weight", "block" (a x b) or "nm" (a of every b kept)."""
    kind: str
    a: int = 1
    b: int = 1

    def __str__(self) -> str:
        return {"weight": "weight", "block": f"block:{self.a}x{self.b}", "nm": f"nm:{self.a}:{self.b}"}[self.kind]

    @property
    def fixed_sparsity(self) -> float | None:
        return 1.0 - self.a / self.b if self.kind == "nm" else None


def parse_pattern(text) -> Pattern:
    """"weight", "block:RxC" or "nm:N:M" (N < M) as a Pattern; anything else is a user error."""
    t = str(text).strip().lower()
    if t in ("weight", "unstructured"):
        return Pattern("weight")
    m = re.fullmatch(r"block:(\d+)x(\d+)", t)
    if m and int(m[1]) >= 1 and int(m[2]) >= 1:
        return Pattern("weight") if (int(m[1]), int(m[2])) == (1, 1) else Pattern("block", int(m[1]), int(m[2]))
    m = re.fullmatch(r"nm:(\d+):(\d+)", t)
    if m and 1 <= int(m[1]) < int(m[2]):
        return Pattern("nm", int(m[1]), int(m[2]))
    raise EdgecError(f"prune granularity {text!r}: choose weight, block:RxC (e.g. block:1x4) or nm:N:M "
                     f"(e.g. nm:2:4, 1 <= N < M)")


def polynomial_sparsity(s_i: float, s_f: float, progress: float) -> float:
    """Zhu & Gupta's cubic ramp: s_f + (s_i - s_f) (1 - progress)^3, progress in [0, 1]."""
    p = min(max(progress, 0.0), 1.0)
    return s_f + (s_i - s_f) * (1.0 - p) ** 3


def gradual_progress(step: int, t0: int, dt: int, n: int) -> float | None:
    """The ramp's progress at training step `step` when the masks update there (t0, t0 + dt, ...,
    t0 + n dt), else None."""
    if step < t0 or (step - t0) % dt or (step - t0) // dt > n:
        return None
    return (step - t0) / (n * dt)


# --------------------------------------------------------------------------------------- the masks

@dataclass
class Target:
    """One weight to prune: where it is, its pattern, criterion and final sparsity, and whether it
    shares the global threshold."""
    op: Op
    name: str
    view: RowView
    pattern: Pattern
    criterion: str
    sparsity: float
    pooled: bool


def element_scores(w_rows: np.ndarray, criterion: str, taylor: np.ndarray | None = None) -> np.ndarray:
    """Per-weight scores on the rows view, summed within a unit (l2: squares, rooted per unit)."""
    if criterion == "taylor":
        if taylor is None:
            raise EdgecError("prune_weights: the taylor criterion needs gradients, so training data")
        return np.asarray(taylor, np.float64)
    w = np.asarray(w_rows, np.float64)
    return w * w if criterion == "l2" else np.abs(w)


def _blocks(e: np.ndarray, r: int, c: int) -> tuple[np.ndarray, np.ndarray]:
    """(sum of e, element count) per r x c block of the [R, K] array e, edge blocks clipped."""
    R, K = e.shape
    pr, pc = -R % r, -K % c
    e = np.pad(e, ((0, pr), (0, pc)))
    ones = np.pad(np.ones((R, K)), ((0, pr), (0, pc)))
    shape = ((R + pr) // r, r, (K + pc) // c, c)
    return e.reshape(shape).sum((1, 3)), ones.reshape(shape).sum((1, 3))


def unit_scores(e: np.ndarray, pattern: Pattern, criterion: str) -> tuple[np.ndarray, np.ndarray]:
    """(score, element count) of every unit of a weight, flattened; units are weights or blocks."""
    if pattern.kind == "block":
        s, n = _blocks(e, pattern.a, pattern.b)
    else:
        s, n = e, np.ones_like(e)
    s = s / n
    if criterion == "l2":
        s = np.sqrt(s)
    return s.reshape(-1), n.reshape(-1)


def _expand(keep_units: np.ndarray, pattern: Pattern, shape: tuple[int, int]) -> np.ndarray:
    """A unit-level keep flag as an element-level [R, K] mask."""
    R, K = shape
    if pattern.kind != "block":
        return keep_units.reshape(shape)
    r, c = pattern.a, pattern.b
    grid = keep_units.reshape(-(-R // r), -(-K // c))
    return np.repeat(np.repeat(grid, r, 0), c, 1)[:R, :K]


def _lowest(scores: np.ndarray, sizes: np.ndarray, count: float) -> np.ndarray:
    """Indices of the lowest-scoring units whose sizes add up closest to `count` elements (ties: the
    earlier unit goes first, so masks are deterministic)."""
    order = np.argsort(scores, kind="stable")
    cum = np.concatenate([[0.0], np.cumsum(sizes[order])])
    k = int(np.argmin(np.abs(cum - count)))
    return order[:k]


def nm_mask(e: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep the n highest-scoring entries of every group of m consecutive K entries."""
    R, K = e.shape
    pad = -K % m
    g = np.pad(e, ((0, 0), (0, pad)), constant_values=-np.inf).reshape(R, -1, m)
    rank = np.argsort(np.argsort(-g, axis=-1, kind="stable"), axis=-1, kind="stable")
    return (rank < n).reshape(R, K + pad)[:, :K]


def layer_mask(e: np.ndarray, pattern: Pattern, criterion: str, sparsity: float) -> np.ndarray:
    """The [R, K] keep-mask of one weight at `sparsity` (rounded to whole units). N:M below its own
    sparsity (a ramp towards it) prunes the lowest-scoring of the weights the full N:M mask removes."""
    if sparsity <= 0:
        return np.ones(e.shape, bool)
    if pattern.kind == "nm":
        keep = nm_mask(e, pattern.a, pattern.b)
        want = round(sparsity * e.size)
        if want >= np.count_nonzero(~keep):
            return keep
        cand = np.flatnonzero(~keep)
        drop = cand[np.argsort(e.reshape(-1)[cand], kind="stable")[:want]]
        mask = np.ones(e.size, bool)
        mask[drop] = False
        return mask.reshape(e.shape)
    s, n = unit_scores(e, pattern, criterion)
    keep = np.ones(s.size, bool)
    keep[_lowest(s, n, sparsity * e.size)] = False
    return _expand(keep, pattern, e.shape)


def compute_masks(targets: list[Target], weights: dict[str, np.ndarray], level=lambda s: s,
                  taylor: dict | None = None, global_norm: str = "l2") -> dict[str, np.ndarray]:
    """Keep-masks (bool, each weight's own shape) for every target. `level(s_final)` is the sparsity
    to prune to now (a schedule's step towards s_final); weights in the global pool share one
    threshold on their normalized unit scores."""
    masks, rows, pool = {}, {}, []
    for t in targets:
        w = t.view.to_rows(np.asarray(weights[t.name]))
        tay = t.view.to_rows(taylor[t.name]) if taylor is not None and t.criterion == "taylor" else None
        rows[t.name] = (w.shape, element_scores(w, t.criterion, tay))
        if t.pooled:
            pool.append(t)
        else:
            masks[t.name] = layer_mask(rows[t.name][1], t.pattern, t.criterion, level(t.sparsity))
    if pool:
        scores, sizes, owner = [], [], []
        for k, t in enumerate(pool):
            s, n = unit_scores(rows[t.name][1], t.pattern, t.criterion)
            if global_norm != "none":
                norm = math.sqrt(float(np.sum(s * s * n)))
                if global_norm == "rms":
                    norm /= math.sqrt(float(n.sum()))
                s = s / norm if norm > 0 else s
            scores.append(s)
            sizes.append(n)
            owner.append(np.full(s.size, k))
        all_s, all_n, all_o = np.concatenate(scores), np.concatenate(sizes), np.concatenate(owner)
        drop = _lowest(all_s, all_n, level(pool[0].sparsity) * all_n.sum())
        starts = np.cumsum([0] + [s.size for s in scores])
        for k, t in enumerate(pool):
            keep = np.ones(scores[k].size, bool)
            keep[drop[all_o[drop] == k] - starts[k]] = False
            masks[t.name] = _expand(keep, t.pattern, rows[t.name][0])
    return {t.name: t.view.from_rows(masks[t.name], weights[t.name].shape) for t in targets}


def find_targets(g: Graph, ctx: PassContext) -> list[Target]:
    """The prunable weights of g with their per-layer options (after overrides); sparsity 0 skips."""
    base = ctx.options
    out, seen = [], set()
    for op in g.ops:
        if op.type not in ROW_OPS or len(op.inputs) < 2 or op.inputs[1] is None:
            continue
        name = op.inputs[1]
        t = g.tensors[name]
        if not t.is_const or t.dtype != "float32" or name in seen or t.size < 2:
            continue
        seen.add(name)
        opts = ctx.op_options(op)
        overridden = {k for p, extra in ctx.overrides if p.search(op.name) for k in extra}
        bad = overridden - set(PER_LAYER)
        if bad:
            raise EdgecError(f"prune_weights: {', '.join(sorted(bad))} cannot differ per layer "
                             f"(overrides may set {', '.join(PER_LAYER)})")
        pattern = parse_pattern(opts["granularity"])
        criterion = check_choice("criterion", opts["criterion"], CRITERIA)
        criterion = "l1" if criterion == "magnitude" else criterion
        scope = check_choice("scope", opts["scope"], SCOPES)
        s = layer_sparsity(opts["sparsity"], pattern, op.name)
        if s == 0:
            continue
        pooled = scope == "global" and pattern.kind != "nm" and "sparsity" not in overridden
        if pooled:   # the pool's target is the pass's own sparsity
            s = layer_sparsity(base["sparsity"], pattern, op.name)
        out.append(Target(op, name, RowView.of(op.type, op.attrs, len(t.shape)), pattern, criterion, s, pooled))
    return out


def layer_sparsity(value, pattern: Pattern, where: str) -> float:
    if value == "auto":
        if pattern.fixed_sparsity is None:
            raise EdgecError(f"prune_weights ({where}): give a sparsity (0 <= s < 1, e.g. --prune 0.9) "
                             f"or an N:M granularity")
        return pattern.fixed_sparsity
    try:
        s = float(value)
    except (TypeError, ValueError):
        raise EdgecError(f"prune_weights ({where}): sparsity {value!r} is not a number") from None
    if not 0.0 <= s < 1.0:
        raise EdgecError(f"prune_weights ({where}): sparsity {s:g} must be in [0, 1)")
    fixed = pattern.fixed_sparsity
    if fixed is not None and s and abs(s - fixed) > 1e-6:
        raise EdgecError(f"prune_weights ({where}): {pattern} has sparsity {fixed:g}, not {s:g}; "
                         f"drop the sparsity or pick another N:M")
    return s


def check_choice(key: str, value, choices) -> str:
    if value not in choices:
        raise EdgecError(f"prune_weights: {key} {value!r}: choose one of {', '.join(choices)}")
    return value


# ------------------------------------------------------------------------------------------ the pass

# scope "global" and training on all the data are the defaults measured best on LeNet-300-100 / MNIST at
# 90% sparsity (benchmarks/pruning.py data, 3 seeds, float test accuracy): per layer with a tenth held
# out for picking the best epoch 93.7%, per layer on all the data 94.2%, global on all the data 94.4%
# (the unpruned model: 94.2%).
@register_pass("prune_weights", sparsity="auto", granularity="weight", criterion="magnitude", scope="global",
               global_norm="l2", schedule="gradual", epochs=10, batch_size=32, lr=1e-3, rounds=3,
               initial_sparsity=0.0, begin=0.0, end=0.7, frequency=0, taylor_batches=16, l1=0.0,
               group_lasso=0.0, holdout=0.0, seed=0)
def prune_weights(g: Graph, ctx: PassContext) -> Graph:
    o = ctx.options
    schedule = check_choice("schedule", o["schedule"], SCHEDULES)
    check_choice("global_norm", o["global_norm"], NORMS)
    epochs = int(o["epochs"])
    if epochs < 0 or (schedule in ("iterative", "dsd", "gradual") and epochs < 1):
        raise EdgecError(f"prune_weights: the {schedule} schedule needs epochs >= 1 (oneshot takes 0: no fine-tuning)")
    if not 0.0 <= float(o["begin"]) < float(o["end"]) <= 1.0:
        raise EdgecError(f"prune_weights: need 0 <= begin < end <= 1 (fractions of the training steps), "
                         f"got begin {o['begin']}, end {o['end']}")
    if not 0.0 <= float(o["initial_sparsity"]) < 1.0:
        raise EdgecError(f"prune_weights: initial_sparsity {o['initial_sparsity']} must be in [0, 1)")
    targets = find_targets(g, ctx)
    ctx.report.update(prune_schedule=schedule, prune_epochs=epochs)
    if not targets:
        ctx.report["prune_layers"] = []
        return g
    needs_data = epochs > 0 or any(t.criterion == "taylor" for t in targets)
    if not needs_data:
        masks = compute_masks(targets, {t.name: g.tensors[t.name].data for t in targets},
                              global_norm=o["global_norm"])
        out = g.copy()
        for t in targets:
            out.tensors[t.name].data = np.where(masks[t.name], out.tensors[t.name].data, np.float32(0))
        return _finish(out, targets, masks, ctx)
    return _prune_and_train(g, targets, ctx)


def _data(g: Graph, ctx: PassContext):
    """(train, held-out or None, loss, labelled): labels if given, else distillation of the float model's
    outputs (as qat); with holdout f > 0, every (1/f)-th sample is held out."""
    from ..data import Dataset
    from ..train import build_model
    data = ctx.train_data if ctx.train_data is not None else ctx.calibration
    if data is None:
        raise EdgecError("prune_weights: fine-tuning and the taylor criterion need training data "
                         "(--train-data D.npz); to prune without data: --prune-schedule oneshot --epochs 0")
    xs = [np.asarray(x, np.float32) for x in data.xs]
    y = getattr(data, "y", None)
    from .distill_step import teacher_signal
    sig = teacher_signal(ctx, g, xs, y)
    if sig is not None:   # a distill step ran before: fine-tune on the teacher's signal
        loss, targets, y = sig.loss, sig.targets, None
        ctx.report["prune_target"] = "teacher"
    elif y is not None:
        loss, targets = "crossentropy", np.asarray(y)
    else:
        teacher = build_model(g).predict(xs)[0]
        soft = any(op.type == "SOFTMAX" and g.outputs[0] in op.outputs for op in g.ops)
        loss, targets = ("crossentropy" if soft else "mse"), teacher
    n, f = len(targets), float(ctx.options["holdout"])
    if not 0.0 <= f < 1.0:
        raise EdgecError(f"prune_weights: holdout {f:g} must be in [0, 1) (the fraction of samples held out)")
    every = max(2, round(1 / f)) if f else 0
    held = np.arange(n) % every == every - 1 if every and n >= 2 * every else np.zeros(n, bool)
    train = Dataset([x[~held] for x in xs], targets[~held], "prune train data")
    val = Dataset([x[held] for x in xs], targets[held], "prune held-out data") if held.any() else None
    return train, val, loss, y is not None


def taylor_scores(model, names: list[str], data, loss: str, batches: int, batch_size: int, seed: int) -> dict:
    """sum over `batches` training batches of |w * dL/dw| per weight (the effective, masked w: a pruned
    weight scores 0)."""
    import tensorflow as tf

    from ..train import make_loss
    loss_fn = make_loss(model, loss)
    vs = [model.variables[n] for n in names]

    @tf.function(reduce_retracing=True)
    def grads(bx, by):
        with tf.GradientTape() as tape:
            value = loss_fn(list(bx), by, False)
        return tape.gradient(value, vs)

    xs = [np.asarray(x, np.float32) for x in data.xs]
    y = np.asarray(data.y)
    y = y.astype(np.int32) if y.dtype.kind in "iub" else y.astype(np.float32)
    order = np.random.default_rng(seed).permutation(len(y))
    acc = {n: np.zeros(model.variables[n].shape, np.float64) for n in names}
    for b in range(min(batches, max(1, math.ceil(len(y) / batch_size)))):
        idx = order[b * batch_size:(b + 1) * batch_size]
        for n, gr in zip(names, grads(tuple(x[idx] for x in xs), y[idx])):
            w = model.weight(n).numpy()
            acc[n] += np.abs(w.astype(np.float64) * np.asarray(gr, np.float64))
    return acc


def _prune_and_train(g: Graph, targets: list[Target], ctx: PassContext) -> Graph:
    from ..train import Prune, accuracy, build_model, export, fit
    from ..train.fit import L1, GroupLasso

    o = ctx.options
    train, val, loss, labelled = _data(g, ctx)
    names = [t.name for t in targets]
    model = build_model(g, {n: Prune(np.ones(g.tensors[n].shape, np.float32)) for n in names})
    maskers = {n: model.constraints[n][0] for n in names}
    epochs, bs, lr, seed = int(o["epochs"]), int(o["batch_size"]), float(o["lr"]), int(o["seed"])
    regs = ([L1(float(o["l1"]), tuple(names))] if float(o["l1"]) else []) + \
           ([GroupLasso(float(o["group_lasso"]), tuple(names))] if float(o["group_lasso"]) else [])
    quiet = False if ctx.progress is None else None
    log: list[dict] = []

    def set_masks(level, phase: str, step: int | None = None):
        taylor = None
        if any(t.criterion == "taylor" for t in targets):
            taylor = taylor_scores(model, [t.name for t in targets if t.criterion == "taylor"], train, loss,
                                   int(o["taylor_batches"]), bs, seed)
        weights = {n: model.weight(n).numpy() for n in names}
        masks = compute_masks(targets, weights, level, taylor, o["global_norm"])
        for n in names:
            maskers[n].assign(masks[n])
            v = model.variables[n]   # a pruned weight restarts from 0 (and ranks last next time)
            v.assign(v.numpy() * masks[n])
        kept = sum(int(m.sum()) for m in masks.values())
        total = sum(m.size for m in masks.values())
        log.append({"phase": phase, "step": step, "sparsity": round(1 - kept / total, 4)})
        return masks

    def dense():
        for n in names:
            maskers[n].assign(np.ones(g.tensors[n].shape, np.float32))
        log.append({"phase": "re-dense", "step": None, "sparsity": 0.0})

    def train_phase(ep, rate, final, on_step=None, schedule="constant"):
        if ep < 1:
            return {"loss": []}
        return fit(model, train, loss=loss, epochs=ep, batch_size=bs, lr=rate, schedule=schedule, seed=seed,
                   val=val if final else None, restore_best=final and val is not None, progress=quiet,
                   regularizers=regs, on_step=on_step)

    scored = val if val is not None else train   # the before / after accuracy is on held-out data if any
    acc_before = accuracy(model, scored) if labelled else None
    schedule = o["schedule"]
    hist = []
    if schedule == "oneshot":
        set_masks(lambda s: s, "oneshot")
        hist.append(train_phase(epochs, lr, True, schedule="cosine"))
    elif schedule == "iterative":
        k_rounds = max(1, int(o["rounds"]))
        per = [epochs // k_rounds + (1 if r < epochs % k_rounds else 0) for r in range(k_rounds)]
        for r in range(1, k_rounds + 1):
            set_masks(lambda s, r=r: 1 - (1 - s) ** (r / k_rounds), f"round {r}")
            hist.append(train_phase(per[r - 1], lr, r == k_rounds, schedule="cosine"))
    elif schedule == "dsd":
        thirds = [epochs // 3 + (1 if k < epochs % 3 else 0) for k in range(3)]
        set_masks(lambda s: s, "sparse")
        hist.append(train_phase(thirds[0], lr, False))
        dense()
        hist.append(train_phase(thirds[1], lr / 10, False))
        set_masks(lambda s: s, "re-sparse")
        hist.append(train_phase(thirds[2], lr / 10, True, schedule="cosine"))
    else:   # gradual: the ramp runs inside the first ceil(end * epochs) epochs, then fine-tuning
        steps_per_epoch = max(1, math.ceil(len(train) / bs))
        ramp_epochs = max(1, math.ceil(float(o["end"]) * epochs))
        t0 = min(int(round(float(o["begin"]) * epochs * steps_per_epoch)), ramp_epochs * steps_per_epoch - 1)
        t_end = int(round(float(o["end"]) * epochs * steps_per_epoch))
        t_end = min(max(t_end, t0 + 1), ramp_epochs * steps_per_epoch)
        dt = min(int(o["frequency"]) or max(1, (t_end - t0) // GRADUAL_UPDATES), t_end - t0)
        n = (t_end - t0) // dt          # the last update, t0 + n dt, falls inside the ramp epochs
        s_i = float(o["initial_sparsity"])

        def level_at(p):
            return lambda s: min(s, polynomial_sparsity(s_i, s, p))

        def on_step(step):
            p = gradual_progress(step, t0, dt, n)
            if p is not None:
                set_masks(level_at(p), "gradual", step)

        if t0 == 0:
            set_masks(level_at(0.0), "gradual", 0)
        hist.append(train_phase(ramp_epochs, lr, False, on_step=on_step))
        hist.append(train_phase(epochs - ramp_epochs, lr, True, schedule="cosine"))
    out = export(model, snap=True)
    masks = {n: maskers[n].mask.numpy() > 0 for n in names}
    for n in names:
        out.tensors[n].data = np.where(masks[n], out.tensors[n].data, np.float32(0))
    ctx.report.update(prune_loss=[round(v, 5) for h in hist for v in h["loss"]], prune_masks=log,
                      prune_accuracy_before=acc_before,
                      prune_accuracy_after=accuracy(model, scored) if labelled else None,
                      prune_accuracy_on="held-out" if val is not None else "train")
    return _finish(out, targets, masks, ctx)


def _finish(g: Graph, targets: list[Target], masks: dict, ctx: PassContext) -> Graph:
    """Mark the pruned weights and report sparsity per layer."""
    rows, kept, total = [], 0, 0
    for t in targets:
        tensor = g.tensors[t.name]
        tensor.meta["sparsity"] = str(t.pattern)
        tensor.meta["prune_mask"] = np.asarray(masks[t.name], bool)
        nz = int(np.count_nonzero(tensor.data))
        kept, total = kept + nz, total + tensor.size
        rows.append({"layer": t.op.name, "op": t.op.type, "tensor": t.name, "pattern": str(t.pattern),
                     "criterion": t.criterion, "params": tensor.size, "nonzero": nz,
                     "sparsity": round(1 - nz / tensor.size, 4), "scope": "global" if t.pooled else "layer"})
    ctx.report.update(prune_layers=rows, prune_sparsity=round(1 - kept / total, 4), prune_params=total,
                      prune_nonzero=kept)
    return g
