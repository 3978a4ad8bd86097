"""cluster_weights: k-means weight sharing (Han et al. 2016) on the weights of FULLY_CONNECTED, CONV_2D and
DEPTHWISE_CONV_2D, with the centroids fine-tuned through the IR trainer.

Each weight gets `clusters` = k centroids (2..256) per output channel (`granularity` "channel": CONV_2D and
FULLY_CONNECTED rows, DEPTHWISE_CONV_2D's last axis, the quantize pass's per-channel axes) or one set for the
tensor ("tensor"). Centroids start from `init` -- linear (evenly spaced over [min, max]), density (evenly
spaced on the CDF) or kmeans++ (D^2 sampling, seeded) -- refined by `iters` Lloyd rounds; every weight is
then assigned to its nearest centroid (train.constraints.Cluster). Sparsity is preserved: a weight pruned
before (meta["prune_mask"], else an exact zero) stays exactly 0 through a centroid fixed at 0, and the kept
weights share the other k - 1.

Fine-tuning (`epochs` > 0, with train data, or calibration data with labels; without labels the original
model's outputs are distilled): the assignments stay fixed (`reassign` = false, Han's scheme) and each
centroid is trained with the summed gradients of its members; reassign = true lets the latent weights move
between clusters every step (tfmot's scheme). Every tenth sample is held out and the best held-out epoch is
kept, the unfine-tuned clustering counting as epoch 0.

What the deployed model stores. The centroids train as int8 levels: in every forward pass each centroid is
rounded (straight-through) to s * q, q an integer in [-127, 127], with s = max|w| / 127 of its channel (or
tensor) fixed from the weights before clustering. So the clustered weight is exactly s * level, and the
pass writes the meta a trained quantizer writes (qat_scale, qat_levels, qat_codebook, qat_bits =
ceil(log2 n), qat_scheme "kmeans", qat_axis; edgec.train.export). The quantize pass stores exactly those
levels with scheme "kmeans" and meta["codebook"] (its `_store_trained` path, whatever its own weight
options), and the C backend packs ceil(log2 n)-bit codebook indices plus the int8 table (n <= k: the
distinct levels of a channel's centroids). Why this and not a quantize-time mapping: the rounding of
centroids to int8 is then seen by fine-tuning, and the codebook the device uses is the one that was
trained, bit for bit -- the same contract QAT already has with the quantize pass. (Without a quantize
step the graph stays float, its weights taking at most k values per channel.)

A layer is clustered only where its packed form (indices + table) is smaller than int8; per-layer overrides
(regex on op names) may set clusters, granularity, init or skip = true. Report: per layer the codebook size,
bits per index and the estimated stored bytes (indices + table, before any sparse format or entropy coding)
against int8, and the held-out accuracy before and after fine-tuning.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import EdgecError
from ..ir import Graph
from ..train.constraints import CLUSTER_INITS, kmeans_bits
from .manager import PassContext, register_pass

CLUSTER_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")
GRANULARITIES = ("channel", "tensor")
PER_LAYER = ("clusters", "granularity", "init", "skip")


def check_clusters(k, where: str = "cluster_weights") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= int(k) <= 256:
        raise EdgecError(f"{where}: clusters must be a whole number from 2 to 256, not {k!r}")
    return int(k)


def _check(o: dict, where: str) -> None:
    check_clusters(o["clusters"], where)
    if o["granularity"] not in GRANULARITIES:
        raise EdgecError(f"{where}: granularity must be channel or tensor, not {o['granularity']!r}")
    if o["init"] not in CLUSTER_INITS:
        raise EdgecError(f"{where}: init must be one of {', '.join(CLUSTER_INITS)}, not {o['init']!r}")
    for key, lo in (("iters", 0), ("epochs", 0), ("batch_size", 1), ("seed", 0)):
        if isinstance(o[key], bool) or not isinstance(o[key], int) or o[key] < lo:
            raise EdgecError(f"{where}: {key} must be a whole number >= {lo}, not {o[key]!r}")
    if isinstance(o["lr"], bool) or not isinstance(o["lr"], (int, float)) or not o["lr"] > 0:
        raise EdgecError(f"{where}: lr must be a positive number, not {o['lr']!r}")
    for key in ("reassign", "skip"):
        if not isinstance(o[key], bool):
            raise EdgecError(f"{where}: {key} must be true or false, not {o[key]!r}")


def weight_axis(op_type: str, granularity: str) -> int | None:
    """The codebook axis of op_type's weight: the quantize pass's per-channel axis (None per tensor)."""
    if granularity == "tensor":
        return None
    return 3 if op_type == "DEPTHWISE_CONV_2D" else 0


def stored_bytes(op_type: str, shape, per_channel: bool, k: int) -> int:
    """Bytes of a k-entry codebook weight as the C backend packs it (backends/c/pack_weights.py): one row
    of ceil(log2 k)-bit indices per output channel, padded to whole bytes, plus the int8 table(s)."""
    rows = shape[3] if op_type == "DEPTHWISE_CONV_2D" else shape[0]
    per = int(np.prod(shape)) // max(rows, 1)
    return rows * math.ceil(per * kmeans_bits(k) / 8) + k * (rows if per_channel else 1)


@register_pass("cluster_weights", clusters=16, granularity="channel", init="linear", iters=20, reassign=False,
               epochs=5, lr=1e-4, batch_size=32, seed=0, skip=False)
def cluster_weights(g: Graph, ctx: PassContext) -> Graph:
    from ..train import Cluster, build_model, export

    _check(ctx.options, "cluster_weights")
    constraints, rows, seen = {}, [], set()
    for op in g.ops:
        if op.type not in CLUSTER_OPS or len(op.inputs) < 2 or op.inputs[1] is None:
            continue
        name = op.inputs[1]
        t = g.tensors[name]
        if not t.is_const or t.dtype != "float32" or name in seen:
            continue
        seen.add(name)
        o = ctx.op_options(op)
        if o != ctx.options:
            _check(o, f"cluster_weights (override for {op.name})")
            bad = {k for p, extra in ctx.overrides if p.search(op.name) for k in extra} - set(PER_LAYER)
            if bad:
                raise EdgecError(f"cluster_weights: {', '.join(sorted(bad))} cannot differ per layer "
                                 f"(overrides may set {', '.join(PER_LAYER)})")
        row = {"layer": op.name, "op": op.type, "tensor": name, "params": t.size}
        if o["skip"]:
            rows.append({**row, "status": "skipped"})
            continue
        if "hash" in t.meta or "qat_scale" in t.meta:
            rows.append({**row, "status": "kept: already hashed or quantized"})
            continue
        k, axis = int(o["clusters"]), weight_axis(op.type, o["granularity"])
        after = stored_bytes(op.type, t.shape, axis is not None, k)
        if after >= t.size:
            rows.append({**row, "status": "kept: a codebook would not be smaller than int8", "int8_bytes": t.size,
                         "clustered_bytes_est": after})
            continue
        mask = t.meta.get("prune_mask")
        constraints[name] = Cluster(k, axis, o["init"], int(o["iters"]), bool(o["reassign"]), True,
                                    None if mask is None else np.asarray(mask, bool), int8=True, seed=int(o["seed"]))
        rows.append({**row, "status": "clustered", "clusters": k, "granularity": o["granularity"],
                     "init": o["init"], "int8_bytes": t.size})
    ctx.report["cluster_layers"] = rows
    if not constraints:
        return g
    model = build_model(g, constraints)
    fine_tune(model, g, ctx, "cluster")
    out = export(model, snap=True)
    for r in rows:
        if r["status"] != "clustered":
            continue
        t = out.tensors[r["tensor"]]
        book = np.asarray(t.meta["qat_codebook"])
        n = book.shape[-1]
        r.update(codebook_entries=int(n), index_bits=kmeans_bits(n),
                 clustered_bytes_est=stored_bytes(r["op"], t.shape, t.meta["qat_axis"] is not None, n),
                 sparsity=round(float(np.mean(t.data == 0)), 4))
    done = [r for r in rows if r["status"] == "clustered"]
    ctx.report.update(clustered_layers=len(done), clustered_params=sum(r["params"] for r in done),
                      int8_bytes=sum(r["int8_bytes"] for r in done),
                      clustered_bytes_est=sum(r["clustered_bytes_est"] for r in done))
    return out


def fine_tune(model, reference: Graph, ctx: PassContext, label: str) -> None:
    """Train `model` (a TrainableGraph) with the pass's epochs / lr / batch_size / seed on ctx.train_data,
    else calibration data with labels, else distilling `reference`'s outputs; keep the best held-out
    epoch (every tenth sample held out; the start is epoch 0). Reports under `label`_* keys."""
    from ..data import Dataset
    from ..train import accuracy, build_model, fit

    o = ctx.options
    data = ctx.train_data if ctx.train_data is not None else ctx.calibration
    if int(o["epochs"]) == 0 or data is None:
        ctx.report[f"{label}_fine_tuned"] = False
        if int(o["epochs"]) and data is None:
            ctx.report[f"{label}_note"] = "no training data: not fine-tuned"
        return
    xs = [np.asarray(x, np.float32) for x in data.xs]
    from .distill_step import teacher_signal
    sig = teacher_signal(ctx, reference, xs, getattr(data, "y", None))
    if sig is not None:                             # a distill step ran before: learn from its teacher
        loss, targets, kind = sig.loss, sig.targets, "teacher"
    elif getattr(data, "y", None) is not None:
        loss, targets, kind = "crossentropy", np.asarray(data.y), "labels"
    else:                                           # distill the reference model's outputs
        targets = build_model(reference).predict(xs)[0]
        soft = any(op.type == "SOFTMAX" and reference.outputs[0] in op.outputs for op in reference.ops)
        loss, kind = ("crossentropy" if soft else "mse"), "distill"
    n = len(targets)
    held = np.arange(n) % 10 == 9 if n >= 50 else np.zeros(n, bool)
    train = Dataset([x[~held] for x in xs], targets[~held], f"{label} train data")
    val = Dataset([x[held] for x in xs], targets[held], f"{label} held-out data") if held.any() else None
    classify = loss == "crossentropy" and val is not None
    before = accuracy(model, val) if classify else None
    hist = fit(model, train, loss=loss, epochs=int(o["epochs"]), batch_size=int(o["batch_size"]), lr=float(o["lr"]),
               schedule="cosine", seed=int(o["seed"]), val=val, restore_best=val is not None,
               progress=False if ctx.progress is None else None)
    ctx.report.update({f"{label}_fine_tuned": True, f"{label}_target": kind, f"{label}_epochs": hist["epochs"],
                       f"{label}_best_epoch": hist["best_epoch"],
                       f"{label}_loss": [round(v, 5) for v in hist["loss"]]})
    if classify:
        best = hist["best_epoch"] or 0
        after = hist["val_accuracy"][best - 1] if best else before
        ctx.report.update({f"{label}_heldout_accuracy_before": round(before, 4),
                           f"{label}_heldout_accuracy_after": round(after, 4)})
