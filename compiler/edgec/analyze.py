"""Pruning sensitivity: how much accuracy each layer loses as it alone is pruned, and per-layer
sparsities chosen from those curves to meet a global target.

For every weight prune_weights would prune (FULLY_CONNECTED, CONV_2D, DEPTHWISE_CONV_2D, BATCH_MATMUL),
on the graph it would see (the recipe's passes before it: the import clean-ups), the weight alone is
pruned one-shot, without fine-tuning, to each sparsity of a sweep, with the pass's own masks
(granularity, criterion), and the model is evaluated on the data: top-1 accuracy against labels y,
or without labels the top-1 agreement with the unpruned model.

Allocation for a global target T (the fraction of all those layers' weights to remove): a layer's
accuracy drop d(s) is made non-decreasing in s and replaced by its lower convex hull; the hull
segments of all layers are taken in order of drop per parameter removed (cheapest first) until T of
the weights are gone, the last one partially (linear interpolation), so the sparsities meet T exactly
(Lagrangian / marginal allocation). With an N:M granularity a layer is either dense or N:M (the
sweep's lower points only show the ramp towards it), so whole layers are taken and T is met or
exceeded. The sum of the per-layer drops is reported as an estimate of the
drop before fine-tuning; fine-tuning (prune_weights' schedules) recovers most of it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

import numpy as np

from .data import Dataset, check_against
from .errors import EdgecError
from .ir import Graph

SWEEP = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)


def _targets(g: Graph, granularity: str, criterion: str):
    from .passes import PASSES, PassContext
    from .passes.prune_weights import find_targets, parse_pattern
    pattern = parse_pattern(granularity)
    opts = {**PASSES["prune_weights"].defaults, "granularity": str(pattern), "criterion": criterion,
            "scope": "layer", "sparsity": "auto" if pattern.kind == "nm" else 0.5}
    return find_targets(g, PassContext(options=opts))


def prune_sensitivity(g: Graph, data: Dataset, sparsities=SWEEP, granularity: str = "weight",
                      criterion: str = "magnitude", progress=None) -> dict:
    """The per-layer curves of `g` (already through the clean-ups) on `data`, as a dict (see module doc)."""
    from .passes.prune_weights import CRITERIA, element_scores, layer_mask, taylor_scores
    from .train import build_model

    if criterion not in CRITERIA:
        raise EdgecError(f"analyze: criterion {criterion!r}: choose one of {', '.join(CRITERIA)}")
    criterion = "l1" if criterion == "magnitude" else criterion
    sweep = sorted({float(s) for s in sparsities} | {0.0})
    if any(not 0.0 <= s < 1.0 for s in sweep):
        raise EdgecError(f"analyze: sparsities must be in [0, 1), got {', '.join(f'{s:g}' for s in sweep)}")
    check_against(data, g)
    targets = _targets(g, granularity, criterion)
    if not targets:
        raise EdgecError("analyze: the model has no prunable weights (FULLY_CONNECTED, CONV_2D, "
                         "DEPTHWISE_CONV_2D or BATCH_MATMUL with a constant weight)")
    fixed = targets[0].pattern.fixed_sparsity
    if fixed is not None:   # N:M: the sweep ramps up to the pattern's own sparsity
        sweep = sorted({s for s in sweep if s < fixed} | {fixed})
    xs = [np.asarray(x, np.float32) for x in data.xs]
    model = build_model(g)
    ref = model.predict(xs)[0].reshape(len(data), -1).argmax(1)
    if data.y is not None:
        y = np.asarray(data.y)
        labels, metric = (y.reshape(-1) if y.dtype.kind in "iub" else y.reshape(len(data), -1).argmax(1)), "accuracy"
    else:
        labels, metric = ref, "top1_agreement"

    def score() -> float:
        return float((model.predict(xs)[0].reshape(len(data), -1).argmax(1) == labels).mean())

    taylor = None
    if criterion == "taylor":
        if data.y is None:
            raise EdgecError("analyze: the taylor criterion needs labels (y) in the data")
        taylor = taylor_scores(model, [t.name for t in targets], data, "crossentropy", 16, 32, 0)
    baseline = score()
    layers = []
    for t in (progress("sensitivity", targets) if progress else targets):
        w0 = g.tensors[t.name].data
        rows = t.view.to_rows(w0)
        e = element_scores(rows, t.criterion, None if taylor is None else t.view.to_rows(taylor[t.name]))
        curve = []
        for s in sweep:
            if s == 0.0:
                curve.append(baseline)
                continue
            keep = t.view.from_rows(layer_mask(e, t.pattern, t.criterion, s), w0.shape)
            model.variables[t.name].assign(np.where(keep, w0, np.float32(0)))
            curve.append(score())
        model.variables[t.name].assign(w0)
        layers.append({"layer": t.op.name, "op": t.op.type, "tensor": t.name, "params": int(w0.size),
                       "curve": curve})
    return {"sensitivity": "prune", "metric": metric, "samples": len(data), "baseline": baseline,
            "granularity": str(targets[0].pattern), "criterion": criterion, "sparsities": sweep, "layers": layers}


# ------------------------------------------------------------------------------------- allocation

@dataclass
class _Segment:
    layer: int
    s0: float
    s1: float
    d0: float
    d1: float
    slope: float       # accuracy drop per parameter removed


def _hull(s: list[float], d: list[float]) -> list[int]:
    """Indices of the lower convex hull of the points (s, d), s increasing (collinear points dropped)."""
    h: list[int] = []
    for k in range(len(s)):
        while len(h) >= 2:
            a, b = h[-2], h[-1]
            if (d[b] - d[a]) * (s[k] - s[a]) >= (d[k] - d[a]) * (s[b] - s[a]):
                h.pop()
            else:
                break
        h.append(k)
    return h


def allocate(result: dict, target: float) -> dict:
    """Per-layer sparsities removing `target` of the swept layers' weights at the least estimated
    accuracy drop (see module doc): {"target", "achieved", "estimated_drop", "layers": {name: s}}."""
    from .passes.prune_weights import parse_pattern
    sweep = result["sparsities"]
    # N:M: a layer has the pattern or is dense (the ramp points are not a sparsity the pass deploys)
    whole = parse_pattern(result["granularity"]).fixed_sparsity is not None
    keep = [0, len(sweep) - 1] if whole else list(range(len(sweep)))
    total = sum(r["params"] for r in result["layers"])
    top = sum(r["params"] * sweep[-1] for r in result["layers"]) / total
    if not 0.0 < target <= top + 1e-12:
        raise EdgecError(f"analyze: target sparsity {target:g} must be in (0, {top:g}] (the sweep goes up to "
                         f"{sweep[-1]:g} per layer)")
    segments = []
    for k, r in enumerate(result["layers"]):
        drop = np.maximum.accumulate(np.maximum(0.0, result["baseline"] - np.asarray(r["curve"])))[keep]
        ss = [sweep[i] for i in keep]
        h = _hull(ss, list(drop))
        for a, b in zip(h, h[1:]):
            n = r["params"] * (ss[b] - ss[a])
            segments.append(_Segment(k, ss[a], ss[b], float(drop[a]), float(drop[b]), (drop[b] - drop[a]) / n))
    segments.sort(key=lambda sg: (sg.slope, -result["layers"][sg.layer]["params"]))
    chosen = [0.0] * len(result["layers"])
    drops = [0.0] * len(result["layers"])
    need = target * total
    for sg in segments:
        if need <= 1e-9:
            break
        n = result["layers"][sg.layer]["params"] * (sg.s1 - sg.s0)
        f = 1.0 if whole else min(1.0, need / n)
        chosen[sg.layer] = sg.s0 + f * (sg.s1 - sg.s0)
        drops[sg.layer] = sg.d0 + f * (sg.d1 - sg.d0)
        need -= f * n
    # rounded up to 4 decimals, so the whole still removes at least the target
    chosen = [min(sweep[-1], float(np.ceil(s * 1e4 - 1e-6) / 1e4)) for s in chosen]
    achieved = sum(r["params"] * s for r, s in zip(result["layers"], chosen)) / total
    return {"target": target, "achieved": round(achieved, 6), "estimated_drop": round(float(sum(drops)), 6),
            "layers": {r["layer"]: s for r, s in zip(result["layers"], chosen)}}


# ------------------------------------------------------------------------------------------ outputs

def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return json.dumps(str(v))   # a JSON string is a valid TOML basic string


def recipe_toml(steps, header: str) -> str:
    """Recipe steps (passes.Step) as the TOML load_recipe reads."""
    lines = [f"# {line}" for line in header.splitlines()]
    for s in steps:
        lines += ["", "[[pass]]", f"name = {_toml_value(s.name)}"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in s.options.items()]
        if s.overrides:
            lines += ["[pass.overrides]"] + [f"{_toml_value(p)} = {_toml_value(o)}" for p, o in s.overrides.items()]
    return "\n".join(lines) + "\n"


def pruning_recipe(base_steps, result: dict, alloc: dict, schedule: str = "gradual"):
    """The base recipe with prune_weights (per-layer sparsities as overrides, anchored on the op names)
    before its quantize step."""
    from .passes import Step
    overrides = {f"^{re.escape(name)}$": {"sparsity": s} for name, s in alloc["layers"].items()}
    prune = Step("prune_weights", {"sparsity": alloc["target"], "scope": "layer", "granularity": result["granularity"],
                                   "criterion": result["criterion"], "schedule": schedule}, overrides)
    at = next((k for k, s in enumerate(base_steps) if s.name in ("qat", "quantize")), len(base_steps))
    return list(base_steps[:at]) + [prune] + list(base_steps[at:])


COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def sensitivity_svg(result: dict, alloc: dict | None = None) -> str:
    """One line per layer: the metric against that layer's sparsity; a dot at the allocated sparsity."""
    from html import escape
    W, H, left, top, pw, ph = 860, 440, 60, 30, 520, 360
    sweep = result["sparsities"]
    lo = min(min(r["curve"]) for r in result["layers"])
    lo = max(0.0, np.floor(lo * 10) / 10)
    hi = 1.0 if result["baseline"] > 0.9 else min(1.0, np.ceil(result["baseline"] * 10 + 0.5) / 10)
    x = lambda s: left + pw * s / max(sweep[-1], 1e-9)  # noqa: E731
    y = lambda v: top + ph * (1 - (v - lo) / max(hi - lo, 1e-9))  # noqa: E731
    p = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H + 40}" font-family="sans-serif" font-size="11">',
         f'<text x="{left}" y="18" font-size="13">pruning sensitivity: {escape(result["metric"])} vs one layer\'s '
         f'sparsity ({escape(result["granularity"])}, {escape(result["criterion"])}, no fine-tuning)</text>',
         f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#444"/>']
    for k in range(11):
        v = lo + (hi - lo) * k / 10
        p.append(f'<line x1="{left}" x2="{left + pw}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                 f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{100 * v:.0f}%</text>')
    for s in sweep:
        p.append(f'<text x="{x(s):.1f}" y="{top + ph + 16}" text-anchor="middle">{s:g}</text>')
    p.append(f'<text x="{left + pw / 2}" y="{top + ph + 34}" text-anchor="middle">sparsity of the layer</text>')
    for k, r in enumerate(result["layers"]):
        c = COLORS[k % len(COLORS)]
        pts = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in zip(sweep, r["curve"]))
        p.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="1.6"/>')
        label = f'{r["layer"]} ({r["params"]:,})'
        if alloc is not None:
            s = alloc["layers"][r["layer"]]
            v = float(np.interp(s, sweep, r["curve"]))
            p.append(f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="4" fill="{c}"/>')
            label += f" -> {s:.3g}"
        ly = top + 14 * k + 8
        p.append(f'<line x1="{left + pw + 14}" x2="{left + pw + 34}" y1="{ly}" y2="{ly}" stroke="{c}" stroke-width="2"/>'
                 f'<text x="{left + pw + 40}" y="{ly + 4}">{escape(label[:48])}</text>')
    if alloc is not None:
        p.append(f'<text x="{left + pw + 14}" y="{top + 14 * len(result["layers"]) + 22}">dots: sparsities for a '
                 f'global {alloc["target"]:g}</text>')
    p.append("</svg>")
    return "\n".join(p) + "\n"
