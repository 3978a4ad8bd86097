"""share_weights: parameter sharing, across layers (tying) or within a layer (the hashing trick).

mode "tie" (ALBERT-style, at the tensor level): weights of the same op type and shape whose relative distance
||A - B||_F / max(||A||_F, ||B||_F) is at most `bound` become one tensor, the mean of the group, that every
op of the group reads. Groups form in op order: a weight joins the first group whose first member (its
original values) is within the bound. Biases stay per layer. Every backend then stores the tensor once:
the TFLite writer writes one buffer per tensor and the C backend one const array per tensor name (for int8
and float weights; see docs/deep_compression.md for low-bit ones). With train data the tied graph is
fine-tuned (the shared tensor gets the summed gradients of its users).

mode "hash" (HashedNets, Chen et al. 2015), FULLY_CONNECTED only: W[o, i] = sign(o, i) * bucket[h(o, i)]
with h and the signs fixed by a seeded hash (edgec.weight_hashing), `ratio` times fewer buckets than
weights, at the `level` tensor, row (each output row its own buckets) or block (`block` consecutive
weights share one hash and sign). The buckets start from the least-squares projection of the trained
weights and are fine-tuned through the IR trainer (train.constraints.Hash). They train as int8 levels of
one scale (straight-through rounding), and the pass writes the trained levels and scale as qat_* meta, so
the quantize pass stores per-tensor int8 weights equal to sign * bucket level exactly. The C backend stores
only the B int8 buckets and computes the hash in the kernel (ec_fully_connected_s8h), for int8 layers;
TFLite and float C store the expanded weights (no saving there). Where it looks for the spec: the
quantize pass replaces weight tensors (and an Op has no metadata of its own), so the spec is kept on the
op's output tensor, meta["weight_hash"]; the C backend checks that the int8 weights really are
sign * bucket[h] before storing them so, else stores them as usual.

Fine-tuning: `epochs` of Adam at `lr` ("auto": 3e-3 for hash buckets, 1e-3 for a tied model; AUTO_LR).
Per-layer overrides (regex on op names): skip = true, or (hash) ratio / level / block. Report: per layer
what was shared, its parameters and the parameters stored, and the held-out accuracy around fine-tuning.
"""
from __future__ import annotations

import math
import re

import numpy as np

from ..errors import EdgecError
from ..ir import Graph
from ..weight_hashing import LEVELS, HashSpec, parse_hash_level
from .manager import PassContext, register_pass

MODES = ("tie", "hash")
TIE_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "BATCH_MATMUL")
PER_LAYER = ("skip", "ratio", "level", "block")


def parse_share(text: str) -> dict:
    """The CLI's --share value as share_weights options: tie:BOUND (relative distance, e.g. tie:0.02) or
    hash:Rx[:LEVEL] (R times fewer buckets than weights; LEVEL tensor, row or blockN), e.g. hash:8x,
    hash:8x:row, hash:4x:block4."""
    t = str(text).strip().lower()
    m = re.fullmatch(r"tie:([0-9.eE+-]+)", t)
    if m:
        try:
            bound = float(m[1])
        except ValueError:
            bound = -1.0
        if not bound > 0 or not math.isfinite(bound):
            raise EdgecError(f"--share {text!r}: the tie bound is a relative distance > 0, e.g. tie:0.02")
        return {"mode": "tie", "bound": bound}
    m = re.fullmatch(r"hash:([0-9.]+)x(?::([a-z0-9]+))?", t)
    if m:
        try:
            ratio = float(m[1])
        except ValueError:
            ratio = 0.0
        if not ratio > 1:
            raise EdgecError(f"--share {text!r}: the hash budget is Rx with R > 1 (R times fewer parameters), "
                             f"e.g. hash:8x")
        opts = {"mode": "hash", "ratio": ratio}
        if m[2]:
            opts["level"], opts["block"] = parse_hash_level(m[2])
        return opts
    raise EdgecError(f"--share {text!r}: choose tie:BOUND (e.g. tie:0.02) or hash:Rx[:tensor|row|blockN] "
                     f"(e.g. hash:8x)")


def _check(o: dict, where: str) -> None:
    if o["mode"] not in MODES:
        raise EdgecError(f"{where}: mode must be tie or hash, not {o['mode']!r}")
    for key, lo in (("epochs", 0), ("batch_size", 1), ("seed", 0), ("block", 1)):
        if isinstance(o[key], bool) or not isinstance(o[key], int) or o[key] < lo:
            raise EdgecError(f"{where}: {key} must be a whole number >= {lo}, not {o[key]!r}")
    for key, lo in (("ratio", 1.0), ("bound", 0.0), ("lr", 0.0)):
        if key == "lr" and o[key] == "auto":
            continue
        if isinstance(o[key], bool) or not isinstance(o[key], (int, float)) or not o[key] > lo:
            raise EdgecError(f"{where}: {key} must be a number > {lo:g}, not {o[key]!r}")
    if o["level"] not in LEVELS:
        raise EdgecError(f"{where}: level must be one of {', '.join(LEVELS)}, not {o['level']!r}")
    if not isinstance(o["skip"], bool):
        raise EdgecError(f"{where}: skip must be true or false, not {o['skip']!r}")


def _layer_options(ctx: PassContext, op) -> dict:
    o = ctx.op_options(op)
    if o != ctx.options:
        bad = {k for p, extra in ctx.overrides if p.search(op.name) for k in extra} - set(PER_LAYER)
        if bad:
            raise EdgecError(f"share_weights: {', '.join(sorted(bad))} cannot differ per layer "
                             f"(overrides may set {', '.join(PER_LAYER)})")
        _check(o, f"share_weights (override for {op.name})")
    return o


def relative_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b||_F / max(||a||_F, ||b||_F) (0 for two zero tensors)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    top = max(np.linalg.norm(a), np.linalg.norm(b))
    return float(np.linalg.norm(a - b) / top) if top > 0 else 0.0


# lr "auto": the buckets of a hashed layer start far from the weights they replace (LeNet-300-100 at 8x: 23%
# held-out accuracy before fine-tuning) and need a larger step than a tied model, which starts near its optimum.
# Measured on LeNet-300-100 / MNIST (benchmarks/deep_compression.py's data), hash 8x, test accuracy (float 94.2%):
# 5 epochs at 1e-3 90.7%, 5 at 3e-3 92.4%, 10 at 3e-3 93.4%.
AUTO_LR = {"hash": 3e-3, "tie": 1e-3}


@register_pass("share_weights", mode="tie", bound=0.02, ratio=8.0, level="tensor", block=4, seed=0, epochs=10,
               lr="auto", batch_size=32, skip=False)
def share_weights(g: Graph, ctx: PassContext) -> Graph:
    _check(ctx.options, "share_weights")
    if ctx.options["lr"] == "auto":
        ctx.options = {**ctx.options, "lr": AUTO_LR[ctx.options["mode"]]}
    if ctx.options["mode"] == "tie":
        return _tie(g, ctx)
    return _hash(g, ctx)


# ------------------------------------------------------------------------------------------------ tie

def _tie(g: Graph, ctx: PassContext) -> Graph:
    original = g.copy()
    groups: list[dict] = []          # {"key", "first", "names", "ops"}
    rows, seen = [], set()
    for op in g.ops:
        if op.type not in TIE_OPS or len(op.inputs) < 2 or op.inputs[1] is None:
            continue
        name = op.inputs[1]
        t = g.tensors[name]
        if not t.is_const or t.dtype != "float32" or name in seen:
            continue
        seen.add(name)
        if _layer_options(ctx, op)["skip"]:
            rows.append({"layer": op.name, "tensor": name, "params": t.size, "status": "skipped"})
            continue
        key = (op.type, t.shape)
        best = None
        for grp in groups:
            if grp["key"] != key:
                continue
            d = relative_distance(g.tensors[grp["first"]].data, t.data)
            if best is None or d < best[0]:
                best = (d, grp)
            if d <= float(ctx.options["bound"]):
                best = (d, grp)
                break
        row = {"layer": op.name, "tensor": name, "params": t.size}
        if best is not None and best[0] <= float(ctx.options["bound"]):
            best[1]["names"].append(name)
            best[1]["ops"].append(op.name)
            rows.append({**row, "status": "tied", "to": best[1]["ops"][0], "distance": round(best[0], 6)})
        else:
            groups.append({"key": key, "first": name, "names": [name], "ops": [op.name]})
            rows.append({**row, "status": "kept" if best is None else "kept: over the bound",
                         **({} if best is None else {"nearest": best[1]["ops"][0], "distance": round(best[0], 6)})})
    tied = [grp for grp in groups if len(grp["names"]) > 1]
    for grp in tied:
        mean = np.mean([g.tensors[n].data.astype(np.float64) for n in grp["names"]], axis=0).astype(np.float32)
        shared = g.const(grp["first"] + "_tied", mean)
        members = set(grp["names"])
        for op in g.ops:
            op.inputs = [shared if i in members else i for i in op.inputs]
    g.prune_unused()
    saved = sum(_shared_away(original, grp) for grp in tied)
    ctx.report.update(share_mode="tie", share_layers=rows, tied_groups=[grp["ops"] for grp in tied],
                      params_shared_away=saved)
    if tied:
        g = _fine_tune(g, original, ctx, {})
    return g


def _shared_away(g: Graph, grp: dict) -> int:
    """Parameters a tie group stops storing: every member but one."""
    return (len(grp["names"]) - 1) * g.tensors[grp["first"]].size


# ----------------------------------------------------------------------------------------------- hash

def _hash(g: Graph, ctx: PassContext) -> Graph:
    from ..train.constraints import Hash
    original = g.copy()
    constraints, specs, rows, seen = {}, {}, [], set()
    for op in g.ops:
        if op.type != "FULLY_CONNECTED" or op.inputs[1] is None:
            continue
        name = op.inputs[1]
        t = g.tensors[name]
        if not t.is_const or t.dtype != "float32" or len(t.shape) != 2 or name in seen:
            continue
        seen.add(name)
        o = _layer_options(ctx, op)
        row = {"layer": op.name, "tensor": name, "params": t.size}
        if o["skip"]:
            rows.append({**row, "status": "skipped"})
            continue
        if t.meta.get("prune_mask") is not None or "qat_scale" in t.meta:
            rows.append({**row, "status": "kept: already pruned or quantized"})
            continue
        spec = HashSpec.for_budget(t.shape, float(o["ratio"]), o["level"], int(o["block"]), int(o["seed"]))
        if spec.buckets >= t.size:
            rows.append({**row, "status": "kept: too small to hash"})
            continue
        users = [u for u in g.ops if name in u.inputs]
        if len(users) > 1:
            rows.append({**row, "status": "kept: read by several ops"})
            continue
        constraints[name], specs[name] = Hash(spec), (spec, op)
        rows.append({**row, "status": "hashed", **spec.as_dict(), "stored_params": spec.buckets})
    ctx.report.update(share_mode="hash", share_layers=rows)
    if not constraints:
        return g
    g = _fine_tune(g, original, ctx, constraints)
    for name, (spec, op) in specs.items():
        g.tensors[name].meta["hash"] = spec.as_dict()
        g.tensors[op.outputs[0]].meta["weight_hash"] = spec.as_dict()
    hashed = [r for r in rows if r["status"] == "hashed"]
    ctx.report.update(hashed_layers=len(hashed), hashed_params=sum(r["params"] for r in hashed),
                      hashed_stored_params=sum(r["stored_params"] for r in hashed))
    return g


# ---------------------------------------------------------------------------------------- fine-tuning

def _fine_tune(g: Graph, original: Graph, ctx: PassContext, constraints: dict) -> Graph:
    """g with `constraints`, fine-tuned (cluster_weights.fine_tune), exported snapped: constrained weights
    hold their constrained values and qat_* meta."""
    from ..train import build_model, export
    from .cluster_weights import fine_tune
    model = build_model(g, constraints)
    fine_tune(model, original, ctx, "share")
    return export(model, snap=True)
