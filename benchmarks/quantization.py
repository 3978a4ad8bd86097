"""Low-bit quantization: accuracy vs weight bytes, post-training (PTQ) and quantization-aware (QAT).

For the digits CNN (the shipped example: examples/digits_cnn.keras; training split from
examples/train_digits.load_data()) and the MLPerf-Tiny-shaped DS-CNN (benchmarks/models.py; MNIST
resized to 49x10, training split models.mnist_split() through the model's input transform), in one run,
every configuration below is compiled with

    edgec.api.compile(model, out, recipe=R, calibration={"x": calib_x}, eval_data={"x": test_x, "y": test_y},
                      emit=("tflite", "c"), quantize_opts=..., qat=..., train_data=..., epochs=...)

  float           recipe float (no quantization)
  int8 PTQ / QAT  recipe int8; QAT = qat=True on the training split
  int4|int3|int2  RTN = quantize_options(loss_aware=False) (round to nearest, no bias correction);
                  loss-aware = the recipe's default (GPTQ + bias correction)
  pow2            4-bit power-of-two weights
  kmeans4         4-bit k-means codebook weights (16 int8 values per channel)
  group:N         per-group scales (granularity group:N: an integer multiplier per N weights of a row)
  ternary, binary PTQ (the recipe: GPTQ + bias correction) and QAT (qat=True, train_data=train split)

Measured: top-1 accuracy on the held-out test split (report totals.accuracy: LiteRT running the
compiled .tflite), the C artifact's weight bytes (totals.weight_bytes: what model.c stores for the weights — packed
codes, decode tables, group multipliers — and int32 biases; per-channel scales and requantization
multipliers are not in it), and, beside them, the accuracy of the C
artifact itself built for this machine (api.eval, artifact c) and every `static const` byte of its model.c
(weights, biases, requantization multipliers/shifts, lookup tables). The size bound for b-bit weights is

    b/8 * params * 1.05 + 4 bytes per output channel of each quantized weight tensor + tables

(params from totals.params; b the stored width: ternary 2, binary 1; tables = the decode tables and
group multipliers: kmeans4's 16 int8 codebook per channel, the 2^b-entry decode table model.c stores
per packed conv, one uint8 per group for group:N).

Acceptance: int4 loss-aware within 1.0 point of float on each model; ternary QAT within 2 points and
binary QAT within 5 points of float on digits_cnn (ds_cnn reported, not checked); int8 QAT >= int8 PTQ
on each model; weight_bytes <= bound for every configuration below 8 bits. Prints PASS/FAIL, writes
benchmarks/results/quantization.{md,json,png}, exits 1 if any check fails.

Compiled results are cached in benchmarks/work/quantization/ keyed by the model, the configuration and a
hash of the compiler sources, kernels and this file; --fresh ignores the cache. `--only` re-runs a subset
(items [MODEL:]PATTERN, PATTERN a config key, a glob over keys, or a key's first part: "int8" = int8_ptq and
int8_qat) and merges those rows into the existing results/quantization.json, rewriting the .md and .png
from the merged rows; the .md says which rows came from which run.

    python benchmarks/quantization.py [--models digits_cnn,ds_cnn] [--fresh] [--ds-cnn-epochs N] [--no-c-eval]
                                      [--only ds_cnn:int8,*_qat]
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
if (ROOT / "compiler").is_dir():
    sys.path.insert(0, str(ROOT / "compiler"))

import models as bench_models  # noqa: E402
from int8 import machine_info, quiet  # noqa: E402

RESULTS = HERE / "results"
CACHE = bench_models.WORK / "quantization"
MODELS = ("digits_cnn", "ds_cnn")
QAT_DEFAULT_EPOCHS = 10
SLACK = 1.05
SCALE_BYTES = 4

INT4_LA_POINTS = 1.0
TERNARY_QAT_POINTS = 2.0
BINARY_QAT_POINTS = 5.0


# key, label, method, recipe, loss_aware (None: recipe default), qat, stored bits, group size (0: per channel)
CONFIGS = [
    ("float", "float", "-", "float", None, False, 32, 0),
    ("int8_ptq", "int8", "PTQ", "int8", None, False, 8, 0),
    ("int8_qat", "int8", "QAT", "int8", None, True, 8, 0),
    ("int4_rtn", "int4", "PTQ RTN", "int4", False, False, 4, 0),
    ("int4_la", "int4", "PTQ loss-aware", "int4", None, False, 4, 0),
    ("int3_rtn", "int3", "PTQ RTN", "int3", False, False, 3, 0),
    ("int3_la", "int3", "PTQ loss-aware", "int3", None, False, 3, 0),
    ("int2_rtn", "int2", "PTQ RTN", "int2", False, False, 2, 0),
    ("int2_la", "int2", "PTQ loss-aware", "int2", None, False, 2, 0),
    ("pow2", "pow2 (4-bit)", "PTQ loss-aware", "pow2", None, False, 4, 0),
    ("kmeans4", "kmeans4", "PTQ loss-aware", "kmeans4", None, False, 4, 0),
    ("int4_g32", "int4 group:32", "PTQ loss-aware", "int4", None, False, 4, 32),
    ("int3_g16", "int3 group:16", "PTQ loss-aware", "int3", None, False, 3, 16),
    ("int2_g16", "int2 group:16", "PTQ loss-aware", "int2", None, False, 2, 16),
    ("ternary_g16", "ternary group:16", "PTQ loss-aware", "ternary", None, False, 2, 16),
    ("ternary_ptq", "ternary", "PTQ loss-aware", "ternary", None, False, 2, 0),
    ("ternary_qat", "ternary", "QAT", "ternary", None, True, 2, 0),
    ("binary_ptq", "binary", "PTQ loss-aware", "binary", None, False, 1, 0),
    ("binary_qat", "binary", "QAT", "binary", None, True, 1, 0),
]


# ------------------------------------------------------------------------------------------- data

def load_model_data(name: str):
    """(model, calib_x, test_x, test_y, train_x, train_y, info)."""
    model, xc, xt, yt, info = bench_models.load(name)
    if name == "digits_cnn":
        td = bench_models._digits_data()
        x_tr, y_tr, _, _ = td.load_data(td.SEED)
    else:
        transform = bench_models.SPECS[name][0]
        m_tr, y_tr, _, _ = bench_models.mnist_split()
        x_tr = transform(m_tr)
    return model, xc, xt, yt, np.ascontiguousarray(x_tr, np.float32), np.asarray(y_tr, np.int64), info


# ---------------------------------------------------------------------------------------- helpers

def source_hash() -> str:
    """Hash of what the results depend on: compiler sources, recipes, kernels, this file, the models' version."""
    h = hashlib.sha256()
    roots = [ROOT / "compiler" / "edgec", ROOT / "kernels"]
    files = sorted(p for r in roots if r.is_dir() for p in r.rglob("*")
                   if p.is_file() and p.suffix in (".py", ".toml", ".c", ".h") and "__pycache__" not in p.parts)
    for p in files + [Path(__file__).resolve(), HERE / "models.py"]:
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    h.update(str(bench_models.VERSION).encode())
    return h.hexdigest()[:16]


def channel_counts(out: Path) -> list[int]:
    """Output channels of each quantized (int8-container) weight tensor of a compiled OUT."""
    from edgec import api
    from edgec.ir import ops as opreg
    _, g, _ = api.resolve_artifact(os.fspath(out))
    counts = []
    for op in g.ops:
        d = opreg.get(op.type)
        for k, name in enumerate(op.inputs):
            t = g.t(name) if name is not None else None
            if t is None or not t.is_const or k not in d.weights or t.quant is None or t.dtype != "int8":
                continue
            if t.quant.per_channel:
                counts.append(int(t.quant.scale.size))
            else:
                counts.append(int(t.shape[-1] if op.type == "DEPTHWISE_CONV_2D" else t.shape[0]))
    return counts


_CONST = re.compile(r"static const (u?int(?:8|16|32)_t|float) (\w+)\[(\d+)\]")
_SIZES = {"int8_t": 1, "uint8_t": 1, "int16_t": 2, "uint16_t": 2, "int32_t": 4, "uint32_t": 4, "float": 4}


def c_const_bytes(out: Path) -> dict:
    """Bytes of every `static const` array in OUT/c/model.c, in total and by kind."""
    text = (out / "c" / "model.c").read_text()
    kinds: dict[str, int] = {}
    total = 0
    for typ, name, n in _CONST.findall(text):
        b = _SIZES[typ] * int(n)
        total += b
        suffix = name.rsplit("_", 1)[-1]
        kind = {"wpacked": "packed weights", "wlut": "lookup tables", "wgmult": "group multipliers",
                "mult": "requant", "shift": "requant", "q": "biases"}.get(suffix, "weights/biases")
        kinds[kind] = kinds.get(kind, 0) + b
    return {"total": total, **kinds}


def compile_one(model, cfg, data, out: Path, ds_epochs: int | None, model_name: str, c_eval: bool) -> dict:
    from edgec import api
    key, label, method, recipe, loss_aware, qat, bits, group = cfg
    xc, xt, yt, x_tr, y_tr = data
    kw: dict = dict(recipe=recipe, eval_data={"x": xt, "y": yt}, emit=("tflite", "c"))
    if recipe != "float":
        kw["calibration"] = {"x": xc}
    if loss_aware is not None or group:
        kw["quantize_opts"] = api.quantize_options(loss_aware=loss_aware,
                                                   granularity=f"group:{group}" if group else None)
    epochs = None
    if qat:
        epochs = ds_epochs if (model_name != "digits_cnn" and ds_epochs) else QAT_DEFAULT_EPOCHS
        kw.update(qat=True, train_data={"x": x_tr, "y": y_tr},
                  epochs=None if epochs == QAT_DEFAULT_EPOCHS else epochs)
    t0 = time.perf_counter()
    with quiet():
        rep = api.compile(model, out, **kw)
    secs = time.perf_counter() - t0
    t = rep["totals"]
    q = next((p for p in rep["passes"] if p.get("name") == "quantize"), {})
    qp = next((p for p in rep["passes"] if p.get("name") == "qat"), {})
    row = {
        "model": model_name, "key": key, "config": label, "method": method, "recipe": recipe,
        "loss_aware": loss_aware if loss_aware is not None else (recipe not in ("float", "int8")),
        "qat": qat, "qat_epochs": epochs, "bits": bits,
        "accuracy": t["accuracy"], "float_accuracy": t["float_accuracy"],
        "weight_bytes": t["weight_bytes"], "float_bytes": t["float_bytes"], "params": t["params"],
        "tflite_bytes": t["tflite_bytes"], "compile_seconds": round(secs, 2),
        "fallback_ops": q.get("fallback_ops"), "loss_aware_layers": q.get("loss_aware_layers"),
        "qat_loss_last": (qp.get("qat_loss") or [None])[-1],
        "qat_kept_epoch": qp.get("qat_kept_epoch"), "qat_best_epoch": qp.get("qat_best_epoch"),
        "qat_held_out_scores": qp.get("qat_held_out_scores"),
    }
    row["c_const"] = c_const_bytes(out)
    if recipe != "float":
        ch = channel_counts(out)
        row["quantized_weight_tensors"] = len(ch)
        row["output_channels"] = int(sum(ch))
        c = row["c_const"]
        # kmeans4's tables are its codebooks, 16 int8 per channel (a layer whose packed codes + codebook
        # would be larger is stored sparse instead, so model.c may hold fewer table bytes than that)
        tables = 16 * sum(ch) if recipe == "kmeans4" else c.get("lookup tables", 0)
        row["table_bytes"] = int(tables + c.get("group multipliers", 0))
        row["bound"] = int(np.ceil(bits / 8 * t["params"] * SLACK + SCALE_BYTES * sum(ch) + row["table_bytes"]))
        row["within_bound"] = bool(t["weight_bytes"] <= row["bound"])
    if c_eval:
        t0 = time.perf_counter()
        with quiet():
            ev = api.eval(out, {"x": xt, "y": yt}, artifact="c")
        row["c_accuracy"] = ev["accuracy"]
        row["c_eval_seconds"] = round(time.perf_counter() - t0, 2)
    return row


# ------------------------------------------------------------------------------------------- checks

def checks(rows: list[dict], models: list[str]) -> list[dict]:
    out = []
    by = {(r["model"], r["key"]): r for r in rows}

    def pts(m, k):
        return 100 * (by[(m, k)]["accuracy"] - by[(m, "float")]["accuracy"])

    for m in models:
        d = pts(m, "int4_la")
        out.append({"check": f"{m}: int4 loss-aware within {INT4_LA_POINTS} point of float",
                    "value": f"{d:+.1f} pt (RTN {pts(m, 'int4_rtn'):+.1f} pt)", "ok": d >= -INT4_LA_POINTS})
    for m in models:
        for k, lim, enforced in (("ternary_qat", TERNARY_QAT_POINTS, m == "digits_cnn"),
                                 ("binary_qat", BINARY_QAT_POINTS, m == "digits_cnn")):
            d = pts(m, k)
            ptq = pts(m, k.replace("qat", "ptq"))
            name = k.split("_")[0]
            out.append({"check": f"{m}: {name} QAT within {lim:g} points of float"
                                 + ("" if enforced else " (reported, not required)"),
                        "value": f"{d:+.1f} pt (PTQ {ptq:+.1f} pt)", "ok": d >= -lim, "enforced": enforced})
    for m in models:
        a, b = by[(m, "int8_qat")]["accuracy"], by[(m, "int8_ptq")]["accuracy"]
        out.append({"check": f"{m}: int8 QAT >= int8 PTQ", "value": f"{a:.2%} vs {b:.2%}", "ok": a >= b})
    for m in models:
        low = [r for r in rows if r["model"] == m and r["bits"] < 8]
        bad = [r["key"] for r in low if not r["within_bound"]]
        worst = max(low, key=lambda r: r["weight_bytes"] / r["bound"])
        out.append({"check": f"{m}: weight_bytes <= bound for all {len(low)} low-bit configurations",
                    "value": ("over: " + ", ".join(bad)) if bad else
                    f"tightest {worst['key']}: {worst['weight_bytes']} <= {worst['bound']} "
                    f"({worst['weight_bytes'] / worst['bound']:.0%})", "ok": not bad})
    for c in out:
        c.setdefault("enforced", True)
    return out


# --------------------------------------------------------------------------------------------- output

def _label(key: str) -> str:
    return key.replace("_la", " LA").replace("_rtn", " RTN").replace("_ptq", " PTQ").replace("_qat", " QAT")


def plot(rows: list[dict], models: list[str], path: Path) -> None:
    """Top row: every configuration; bottom row: the same, zoomed to within 6 points of float. PTQ circles
    (hollow: round-to-nearest), QAT red triangles, float a star; labels of points that share a weight size
    are stacked beside them; the top row labels only the points outside the zoom."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, len(models), figsize=(7.5 * len(models), 11), squeeze=False)
    for col, m in enumerate(models):
        rs = [r for r in rows if r["model"] == m]
        fl = next(r for r in rs if r["key"] == "float")
        for row, ax in enumerate(axes[:, col]):
            lo = 100 * fl["accuracy"] - 6 if row else None
            shown = [r for r in rs if lo is None or 100 * r["accuracy"] >= lo]
            for r in shown:
                if r["key"] == "float":
                    style = dict(marker="*", s=220, c="black", label="float")
                elif r["qat"]:
                    style = dict(marker="^", s=90, c="tab:red", label="QAT")
                elif "RTN" in r["method"]:
                    style = dict(marker="o", s=60, facecolors="none", edgecolors="tab:blue",
                                 label="PTQ round-to-nearest")
                else:
                    style = dict(marker="o", s=60, c="tab:blue", label="PTQ (loss-aware; int8: plain)")
                ax.scatter(r["weight_bytes"], 100 * r["accuracy"], zorder=3, **style)
            groups: dict[int, list[dict]] = {}
            for r in shown:   # the top row labels only what the zoomed row leaves out
                if row or 100 * r["accuracy"] < 100 * fl["accuracy"] - 6:
                    groups.setdefault(r["weight_bytes"], []).append(r)
            for wb, grp in groups.items():
                grp.sort(key=lambda r: -r["accuracy"])
                for i, r in enumerate(grp):
                    dy = 4 - 11 * i if len(grp) > 1 else 4
                    ax.annotate(_label(r["key"]),
                                (wb, 100 * r["accuracy"]), textcoords="offset points", xytext=(7, dy), fontsize=7,
                                arrowprops=dict(arrowstyle="-", lw=0.4, color="0.5") if len(grp) > 1 else None)
            ax.set_xscale("log")
            ax.set_xlabel("weight bytes (C artifact, totals.weight_bytes; log scale)")
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(f"{m} ({fl['params']} params)" + (" - within 6 points of float" if row else " - all"))
            ax.grid(True, which="both", alpha=0.3)
            h, lab = ax.get_legend_handles_labels()
            uniq = dict(zip(lab, h))
            ax.legend(uniq.values(), uniq.keys(), loc="lower right", fontsize=8)
    fig.suptitle("edgec: test accuracy vs weight bytes per quantization configuration")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_md(doc: dict, path: Path) -> None:
    mi = doc["machine"]
    rows, models = doc["rows"], doc["models"]
    L = ["# Low-bit quantization: accuracy vs weight bytes", "",
         f"Machine: {mi['cpu']} ({mi['cores']} cores), {mi['platform']}, Python {mi['python']}, "
         f"TensorFlow {mi['tensorflow']}, Keras {mi['keras']}, commit {mi['commit']}, {mi['date']}. "
         f"Run time {doc['seconds']:.0f} s ({doc['cached']} of {len(rows)} configurations from the cache"
         + (f", {doc['merged']} kept from the previous results" if doc.get("merged") else "") + ").", "",
         "Generated by `python benchmarks/quantization.py`. Accuracy: top-1 on the held-out test split "
         "(report `totals.accuracy`: LiteRT running the compiled .tflite); **C acc**: the same test split "
         "through the C artifact built for this machine (`api.eval`, artifact c). **Weight bytes**: "
         "`totals.weight_bytes` of the compile with `emit=(\"tflite\", \"c\")` (what model.c stores for the "
         "weights: packed codes, decode tables, group multipliers; and int32 biases). "
         "**C const**: every `static const` array in the generated model.c (also requantization multipliers/shifts "
         "and lookup tables), for reference. **Bound**: bits/8 x params x 1.05 + 4 B per output channel of each "
         "quantized weight tensor + the decode tables and group multipliers model.c stores. Compression is float bytes / "
         "weight bytes. RTN = round to nearest (`quantize_options(loss_aware=False)`); loss-aware = the recipe "
         "default (GPTQ + bias correction). QAT: `qat=True, train_data=` the training split, "
         + ", ".join(f"{m} {doc['qat_epochs'][m]} epochs" for m in models)
         + "; \"kept k\": the epoch whose weights were kept (0 = the untrained start: the weights on the PTQ "
           "grid, activation ranges calibrated as the quantize pass does; a trained epoch is kept only if it "
           "beats the start significantly on the 10% of the training split the qat pass holds out).", ""]
    runs: dict[tuple, list[str]] = {}
    for r in rows:
        runs.setdefault((r.get("commit", mi["commit"]), r.get("date", mi["date"])), []).append(
            f"{r['model']} {r['key']}")
    if len(runs) > 1:
        L += ["Merged results (`--only`): " + "; ".join(
            f"commit {c}, {d}: " + (", ".join(v) if len(v) < len(rows) / 2 else f"{len(v)} configurations")
            for (c, d), v in runs.items()) + ".", ""]
    for m in models:
        rs = [r for r in rows if r["model"] == m]
        fl = next(r for r in rs if r["key"] == "float")
        info = doc["model_info"][m]
        L += [f"## {m}", "", f"{fl['params']} params, {info.get('dataset', '')}; float {fl['accuracy']:.2%}; "
              f"training split {doc['train_sizes'][m]} samples.", "",
              "| config | method | accuracy | Δ vs float | C acc | weight bytes | compression | bound | ≤ bound | C const bytes | compile s |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
        for r in rs:
            d = 100 * (r["accuracy"] - fl["accuracy"])
            ok = "-" if r["key"] == "float" else (("PASS" if r["within_bound"] else "FAIL") if r["bits"] < 8
                                                  else ("yes" if r["within_bound"] else "no") + " (not checked)")
            kept = f", kept {r['qat_kept_epoch']}" if r.get("qat_kept_epoch") is not None else ""
            meth = r["method"] + (f" ({r['qat_epochs']} ep{kept})" if r["qat"] else "")
            L.append(f"| {r['config']} | {meth} | {r['accuracy']:.2%} | {d:+.1f} | "
                     f"{'-' if r.get('c_accuracy') is None else format(r['c_accuracy'], '.2%')} | "
                     f"{r['weight_bytes']:,} | {fl['weight_bytes'] / r['weight_bytes']:.1f}x | "
                     f"{'-' if 'bound' not in r else format(r['bound'], ',')} | {ok} | "
                     f"{r['c_const']['total']:,} | {r['compile_seconds']:.1f} |")
        L.append("")
    L += ["## Acceptance", "", "| check | value | result |", "|---|---|---|"]
    for c in doc["checks"]:
        res = ("PASS" if c["ok"] else "FAIL") if c["enforced"] else ("within" if c["ok"] else "outside") + " (info)"
        L.append(f"| {c['check']} | {c['value']} | {res} |")
    n_fail = sum(1 for c in doc["checks"] if c["enforced"] and not c["ok"])
    L += ["", f"**{'All checks pass' if not n_fail else f'{n_fail} check(s) FAIL'}.**", ""]
    mism = [r for r in rows if r.get("c_accuracy") is not None and abs(r["c_accuracy"] - r["accuracy"]) > 1e-9]
    if mism:
        L += ["C artifact vs report accuracy differ for: " + ", ".join(
            f"{r['model']} {r['key']} ({r['c_accuracy']:.2%} vs {r['accuracy']:.2%})" for r in mism)
            + " — the checks use the report's accuracy.", ""]
    L += ["## Plot", "", "![accuracy vs weight bytes](quantization.png)", ""]
    path.write_text("\n".join(L))


# ----------------------------------------------------------------------------------------------- main

def selected(only: list[str], model: str, key: str) -> bool:
    """Whether --only items ([MODEL:]PATTERN) select configuration `key` of `model`."""
    for item in only:
        m, _, pat = item.rpartition(":")
        if m and m != model:
            continue
        if fnmatch.fnmatchcase(key, pat) or key.split("_")[0] == pat:
            return True
    return False


def merge(previous: dict, rows: list[dict]) -> list[dict]:
    """The previous run's rows with those re-run now replaced, in CONFIGS order per model."""
    run = {(r["model"], r["key"]): r for r in rows}
    old_mi = previous["machine"]
    merged = {(r["model"], r["key"]): {"commit": old_mi["commit"], "date": old_mi["date"], **r}
              for r in previous["rows"]}
    merged.update(run)
    order = {c[0]: k for k, c in enumerate(CONFIGS)}
    models = [m for m in MODELS if any(k[0] == m for k in merged)]
    return sorted(merged.values(), key=lambda r: (models.index(r["model"]), order[r["key"]]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--fresh", action="store_true", help="ignore cached results")
    ap.add_argument("--ds-cnn-epochs", type=int, default=QAT_DEFAULT_EPOCHS,
                    help="QAT epochs for ds_cnn (digits_cnn always uses the default, 10)")
    ap.add_argument("--no-c-eval", action="store_true", help="skip evaluating the C artifacts")
    ap.add_argument("--only", default="", help="re-run only these configurations, [MODEL:]PATTERN,... "
                    "(PATTERN: a config key, a glob, or a key's first part) and merge them into the results")
    args = ap.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    only = [k for k in args.only.split(",") if k]
    previous = None
    if only:
        path = RESULTS / "quantization.json"
        if not path.exists():
            raise SystemExit(f"--only merges into {path}, which does not exist: run without --only first")
        previous = json.loads(path.read_text())
        models = [m for m in models if any(selected(only, m, c[0]) for c in CONFIGS)]
        if not models:
            raise SystemExit(f"--only {args.only}: no configuration of {args.models} matches")
    t_start = time.perf_counter()
    src = source_hash()
    mi = machine_info()
    CACHE.mkdir(parents=True, exist_ok=True)
    rows, cached, merged, model_info, train_sizes, qat_epochs = [], 0, 0, {}, {}, {}
    tmp = Path(tempfile.mkdtemp(prefix="quantization-", dir=bench_models.WORK))
    try:
        for m in models:
            with quiet():
                model, xc, xt, yt, x_tr, y_tr, info = load_model_data(m)
            model_info[m], train_sizes[m] = info, len(y_tr)
            qat_epochs[m] = QAT_DEFAULT_EPOCHS if m == "digits_cnn" else args.ds_cnn_epochs
            for cfg in CONFIGS:
                if only and not selected(only, m, cfg[0]):
                    continue
                ep = qat_epochs[m] if cfg[5] else None
                ckey = f"{m}-{cfg[0]}-e{ep}-c{int(not args.no_c_eval)}-{src}"
                cpath = CACHE / f"{ckey}.json"
                if cpath.exists() and not args.fresh:
                    row = json.loads(cpath.read_text())
                    cached += 1
                    tag = "cached"
                else:
                    row = compile_one(model, cfg, (xc, xt, yt, x_tr, y_tr), tmp / f"{m}-{cfg[0]}",
                                      args.ds_cnn_epochs, m, not args.no_c_eval)
                    row.update(commit=mi["commit"], date=mi["date"])
                    cpath.write_text(json.dumps(row, indent=1))
                    tag = f"{row['compile_seconds']:.1f}+{row.get('c_eval_seconds', 0):.1f} s"
                rows.append(row)
                print(f"{m:10s} {cfg[0]:12s} acc {row['accuracy']:.2%}  C acc "
                      f"{row.get('c_accuracy') or float('nan'):.2%}  weight bytes {row['weight_bytes']:7d}  "
                      f"bound {row.get('bound', '-')!s:>7s}  ({tag})", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if previous is not None:
        rerun = len(rows)
        rows = merge(previous, rows)
        models = [m for m in MODELS if any(r["model"] == m for r in rows)]
        for key, now in (("qat_epochs", qat_epochs), ("train_sizes", train_sizes), ("model_info", model_info)):
            now.update({m: v for m, v in previous[key].items() if m not in now})
        merged = len(rows) - rerun
    cks = checks(rows, models)
    seconds = time.perf_counter() - t_start
    doc = {"machine": mi, "models": models, "seconds": round(seconds, 1), "cached": cached, "merged": merged,
           "source_hash": src, "qat_epochs": qat_epochs, "train_sizes": train_sizes,
           "model_info": model_info, "rows": rows, "checks": cks}
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, models, RESULTS / "quantization.png")
    doc["seconds"] = round(time.perf_counter() - t_start, 1)
    (RESULTS / "quantization.json").write_text(json.dumps(doc, indent=1) + "\n")
    write_md(doc, RESULTS / "quantization.md")
    print()
    for c in cks:
        res = ("PASS" if c["ok"] else "FAIL") if c["enforced"] else "INFO"
        print(f"{res:4s}  {c['check']}: {c['value']}")
    fails = [c for c in cks if c["enforced"] and not c["ok"]]
    print(f"\n{len(cks) - len(fails)}/{len(cks)} checks ok; {doc['seconds']:.0f} s; "
          f"wrote {RESULTS / 'quantization.md'}, .json, .png")
    return 1 if fails else 0


if __name__ == "__main__":
    raise SystemExit(main())
