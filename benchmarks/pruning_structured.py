"""Structured (channel) pruning: MACs, accuracy and artifact bytes before and after.

Two MLPerf-Tiny-shaped CNNs of benchmarks/models.py, trained on packaged MNIST and cached in
benchmarks/work/ -- DS-CNN (49x10x1, depthwise-separable chains) and ResNet-8 (32x32x3, residual joins)
-- are imported into the IR, cleaned with the float recipe's passes, and pruned:

    Pipeline(load_recipe("float") + [Step("prune_channels", CONFIG)]).run(graph, train_data=train split)

CONFIG removes channels until MACS_TARGET of the MACs are gone (measure="macs"; every channel group
pruned by the same fraction, filters ranked by L1 norm) with the gradual schedule: the chosen channels
fade to zero over `epochs` epochs of training through the IR trainer, are cut, and the network is
fine-tuned for `epochs` more (labels of the 4000-image training split; every tenth image held out to
keep the best epoch). The pruned float graph is written as a .tflite and compiled, like the unpruned
Keras model, with

    edgec.api.compile(model, out, recipe=R, calibration={"x": calib_x}, eval_data={"x": test_x, "y": test_y})
    edgec.api.compile(model, out_c, recipe=R, calibration={"x": calib_x}, emit=("c",))

for R = float and int8 (100 calibration images). Accuracy is top-1 on the 1000-image test split
(report totals.accuracy: LiteRT running the .tflite); bytes are the .tflite file (totals.tflite_bytes,
no zip) and the C artifact's weights (totals.weight_bytes of the C compile).

Targets (issue 6: "a small CNN (ResNet-8 or DS-CNN shape)"), checked on ResNet-8 and reported for
DS-CNN: >= 40% of the MACs removed, < 1.5 points accuracy lost after fine-tuning (float vs float, int8
vs int8), the .tflite >= 35% smaller (float and int8). DS-CNN's int8 .tflite is half fixed cost --
6.9 KB of the TF converter's tensor names and the per-channel quantization parameters of a 25k-param
model -- so it shrinks less than its weights do. Prints PASS/FAIL, writes
benchmarks/results/pruning_structured.{md,json}, exits 1 if a checked target is missed. Pruned graphs are
cached in benchmarks/work/pruning_structured/ keyed by a hash of the compiler sources, models.py, this
file and the options; --fresh prunes again.

    python benchmarks/pruning_structured.py [--models ds_cnn,resnet8] [--fresh]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
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
CACHE = bench_models.WORK / "pruning_structured"
MACS_TARGET = 0.42            # the pass's goal, a little over the 40% the acceptance asks for
CONFIG = dict(what="channels", measure="macs", amount=MACS_TARGET, importance="l1", scope="layer",
              schedule="gradual", lr=3e-3, batch_size=64, seed=0)
# decay and fine-tuning epochs (each): ResNet-8's 16-channel first stage is far more sensitive than
# DS-CNN's 64-channel layers (measured: 4 + 4 epochs leave it 2.6 points short, 8 + 8 do not)
EPOCHS = {"ds_cnn": 4, "resnet8": 8}
CHECKED = ("resnet8",)        # the model the targets are enforced on; the others are reported

MIN_MACS_REMOVED = 0.40
MAX_POINTS_LOST = 1.5
MIN_TFLITE_SHRINK = 0.35


def source_hash(config: dict) -> str:
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    files = sorted(p for p in (ROOT / "compiler" / "edgec").rglob("*.py") if "__pycache__" not in p.parts)
    for p in files + [Path(__file__).resolve(), HERE / "models.py"]:
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    h.update(str(bench_models.VERSION).encode())
    return h.hexdigest()[:16]


def load_data(name: str):
    """(keras model, calib x, test x, test y, train x, train y, info)."""
    model, xc, xt, yt, info = bench_models.load(name)
    m_tr, y_tr, _, _ = bench_models.mnist_split()
    x_tr = np.ascontiguousarray(bench_models.SPECS[name][0](m_tr), np.float32)
    return model, xc, xt, yt, x_tr, np.asarray(y_tr, np.int64), info


def prune(name: str, model, x_tr, y_tr, config: dict, fresh: bool) -> tuple[Path, dict, bool]:
    """The pruned float graph as a .tflite (cached) and the prune_channels report."""
    from edgec import api
    from edgec.backends.tflite import write_tflite
    from edgec.data import Dataset
    from edgec.passes import Pipeline, Step, load_recipe
    key = source_hash(config)
    path, rep_path = CACHE / f"{name}-pruned-{key}.tflite", CACHE / f"{name}-pruned-{key}.json"
    if path.exists() and rep_path.exists() and not fresh:
        return path, json.loads(rep_path.read_text()), True
    t0 = time.perf_counter()
    with quiet():
        g = api.load(model).graph
        steps = load_recipe("float") + [Step("prune_channels", dict(config))]
        g, reports = Pipeline(steps).run(g, train_data=Dataset([x_tr], y_tr, "train split"), debug=True)
    rep = dict(reports[-1], prune_seconds=round(time.perf_counter() - t0, 1))
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_bytes(write_tflite(g, "edgec prune_channels"))
    rep_path.write_text(json.dumps(rep, indent=1))
    return path, rep, False


def tflite_fixed_bytes(data: bytes) -> dict:
    """Bytes of a .tflite that are not weights: tensor names, and quantization scales / zero points."""
    from edgec.tflite_schema import schema
    sg = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(data, 0)).subgraphs[0]
    quant = 0
    for t in sg.tensors:
        q = t.quantization
        if q is not None:
            quant += sum(len(v) * (8 if f == "zeroPoint" else 4) for f in ("scale", "zeroPoint", "min", "max")
                         if (v := getattr(q, f)) is not None)
    return {"names": sum(len(t.name or b"") for t in sg.tensors), "quant": quant}


def compile_row(src, name: str, variant: str, recipe: str, xc, xt, yt, out: Path) -> dict:
    """Compile `src` with `recipe`: .tflite evaluated in LiteRT, then the C project (for its bytes)."""
    from edgec import api
    t0 = time.perf_counter()
    calib = {"calibration": {"x": xc}} if recipe != "float" else {}
    with quiet():
        rep = api.compile(src, out, recipe=recipe, eval_data={"x": xt, "y": yt}, **calib)
        rep_c = api.compile(src, out.with_name(out.name + "-c"), recipe=recipe, emit=("c",), **calib)
    t = rep["totals"]
    fixed = tflite_fixed_bytes((out / "model.tflite").read_bytes())
    return {"model": name, "variant": variant, "recipe": recipe, "accuracy": t["accuracy"], "macs": t["macs"],
            "params": t["params"], "tflite_bytes": t["tflite_bytes"], "c_weight_bytes": rep_c["totals"]["weight_bytes"],
            "tflite_name_bytes": fixed["names"], "tflite_quant_bytes": fixed["quant"],
            "compile_seconds": round(time.perf_counter() - t0, 1)}


def checks(name: str, rows: list[dict]) -> list[dict]:
    """The targets for model `name`; "enforced" only for the CHECKED model."""
    by = {(r["variant"], r["recipe"]): r for r in rows if r["model"] == name}
    out = []
    removed = 1 - by[("pruned", "float")]["macs"] / by[("unpruned", "float")]["macs"]
    out.append({"model": name, "check": "MACs removed", "target": f">= {MIN_MACS_REMOVED:.0%}",
                "value": f"{removed:.1%}", "ok": removed >= MIN_MACS_REMOVED})
    for recipe in ("float", "int8"):
        a, p = by[("unpruned", recipe)], by[("pruned", recipe)]
        lost = 100 * (a["accuracy"] - p["accuracy"])
        out.append({"model": name, "check": f"{recipe} accuracy lost after fine-tuning",
                    "target": f"< {MAX_POINTS_LOST} points",
                    "value": f"{lost:+.1f} points ({a['accuracy']:.1%} -> {p['accuracy']:.1%})",
                    "ok": lost < MAX_POINTS_LOST})
    for recipe in ("float", "int8"):
        a, p = by[("unpruned", recipe)], by[("pruned", recipe)]
        shrink = 1 - p["tflite_bytes"] / a["tflite_bytes"]
        out.append({"model": name, "check": f"{recipe} .tflite smaller (no zip)", "target": f">= {MIN_TFLITE_SHRINK:.0%}",
                    "value": f"{shrink:.1%} ({a['tflite_bytes']:,} -> {p['tflite_bytes']:,} B)",
                    "ok": shrink >= MIN_TFLITE_SHRINK})
    for c in out:
        c["enforced"] = name in CHECKED
    return out


def verdict(c: dict) -> str:
    if c["enforced"]:
        return "PASS" if c["ok"] else "FAIL"
    return ("met" if c["ok"] else "missed") + " (reported)"


def write_md(doc: dict, path: Path) -> None:
    mi = doc["machine"]
    L = ["# Structured pruning: channels removed from DS-CNN and ResNet-8", "",
         f"Machine: {mi['cpu']} ({mi['cores']} cores, shared), {mi['platform']}, Python {mi['python']}, "
         f"TensorFlow {mi['tensorflow']}, commit {mi['commit']}, {mi['date']}. Run time {doc['seconds']:.0f} s.", "",
         "Generated by `python benchmarks/pruning_structured.py`. Pass options: `" + json.dumps(doc["config"])
         + "`, `epochs` per model below (decay, then as many of fine-tuning); training data: the 4000-image "
         "MNIST training split with labels (benchmarks/models.py). Accuracy: top-1 on the 1000-image test split, "
         "`totals.accuracy` of `edgec.api.compile` (LiteRT running the .tflite). Bytes: the .tflite file as "
         "written (no zip) and the C project's weights (`totals.weight_bytes` of an `emit=(\"c\",)` compile).", "",
         "## Targets", "", "| model | check | target | measured | result |", "|---|---|---|---|---|"]
    for c in doc["checks"]:
        L.append(f"| {c['model']} | {c['check']} | {c['target']} | {c['value']} | {verdict(c)} |")
    fails = sum(c["enforced"] and not c["ok"] for c in doc["checks"])
    missed = [c for c in doc["checks"] if not c["enforced"] and not c["ok"]]
    L += ["", f"**{'All checked targets met' if not fails else f'{fails} checked target(s) missed'}** (checked on "
          f"{', '.join(CHECKED)}: the issue asks for one small CNN of ResNet-8 or DS-CNN shape"
          + (f"; reported and missed: {'; '.join(c['model'] + ' ' + c['check'] for c in missed)}" if missed else "")
          + ").", ""]
    for c in doc["checks"]:
        if "int8 .tflite" in c["check"] and not c["ok"]:
            u, p = (next(r for r in doc["rows"] if r["model"] == c["model"] and r["variant"] == v and
                         r["recipe"] == "int8") for v in ("unpruned", "pruned"))
            L += [f"{c['model']}'s int8 .tflite shrinks less than its weights do (C weight bytes "
                  f"{u['c_weight_bytes']:,} -> {p['c_weight_bytes']:,}, {1 - p['c_weight_bytes'] / u['c_weight_bytes']:.0%}"
                  f" smaller): of its {u['tflite_bytes']:,} bytes, {u['tflite_name_bytes']:,} are tensor names from "
                  f"TensorFlow's converter, which pruning leaves as they are ({p['tflite_name_bytes']:,} after), and "
                  f"{u['tflite_quant_bytes']:,} per-channel scales and zero points (int64 in the TFLite schema; "
                  f"{p['tflite_quant_bytes']:,} after).", ""]
    for name in doc["models"]:
        rep, info = doc["prune_reports"][name], doc["model_info"][name]
        L += [f"## {name}", "", f"{info.get('dataset', '')}; {info['params']} params; `epochs` {doc['epochs'][name]}; "
              f"pruning {rep.get('prune_seconds', '?')} s{' (cached)' if doc['cached'][name] else ''}.", "",
              "| model | recipe | accuracy | MACs | params | .tflite bytes | of which names | of which quant params "
              "| C weight bytes | compile s |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in (r for r in doc["rows"] if r["model"] == name):
            L.append(f"| {r['variant']} | {r['recipe']} | {r['accuracy']:.2%} | {r['macs']:,} | {r['params']:,} | "
                     f"{r['tflite_bytes']:,} | {r['tflite_name_bytes']:,} | {r['tflite_quant_bytes']:,} | "
                     f"{r['c_weight_bytes']:,} | {r['compile_seconds']} |")
        L += ["", f"prune_channels report: MACs {rep['macs_before']:,} -> {rep['macs_after']:,}, float32 weight "
              f"params {rep['params_before']:,} -> {rep['params_after']:,}; {rep['removed']} channels removed. "
              f"Held-out top-1 (every tenth training image, which the unpruned model was trained on): "
              f"{rep.get('quality_before')} before, {rep.get('quality_pruned')} right after the cut (the removed "
              f"channels had faded to zero), {rep.get('quality_after')} after fine-tuning (best epoch "
              f"{rep.get('finetune_best_epoch')}).", "",
              "| channel group (first producer) | producers | channels before | after |", "|---|---|---:|---:|"]
        for gr in rep["groups"]:
            L.append(f"| {gr['name']} | {', '.join(gr['producers'])} | {gr['channels_before']} | "
                     f"{gr['channels_after']} |")
        for r in rep.get("refused", []):
            L.append(f"| {r['group']} (not pruned: {r['reason']}) | | {r['channels']} | {r['channels']} |")
        L.append("")
    path.write_text("\n".join(L))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(EPOCHS))
    ap.add_argument("--fresh", action="store_true", help="prune again even when a cached result exists")
    args = ap.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    unknown = set(names) - set(EPOCHS)
    if unknown:
        ap.error(f"unknown model(s) {', '.join(sorted(unknown))}; choose from {', '.join(EPOCHS)}")
    t_start = time.perf_counter()
    rows, reports, infos, cached, cks = [], {}, {}, {}, []
    tmp = Path(tempfile.mkdtemp(prefix="pruning-", dir=bench_models.WORK))
    try:
        for name in names:
            with quiet():
                model, xc, xt, yt, x_tr, y_tr, infos[name] = load_data(name)
            config = dict(CONFIG, epochs=EPOCHS[name])
            path, reports[name], cached[name] = prune(name, model, x_tr, y_tr, config, args.fresh)
            rep = reports[name]
            print(f"{name}: pruned MACs {rep['macs_before']:,} -> {rep['macs_after']:,}, held-out top-1 "
                  f"{rep.get('quality_before')} -> {rep.get('quality_after')} "
                  f"({'cached' if cached[name] else str(rep['prune_seconds']) + ' s'})", flush=True)
            for variant, src in (("unpruned", model), ("pruned", os.fspath(path))):
                for recipe in ("float", "int8"):
                    row = compile_row(src, name, variant, recipe, xc, xt, yt, tmp / f"{name}-{variant}-{recipe}")
                    rows.append(row)
                    print(f"  {variant:9s} {recipe:6s} acc {row['accuracy']:.2%}  MACs {row['macs']:>10,}  "
                          f".tflite {row['tflite_bytes']:>7,} B  C weights {row['c_weight_bytes']:>7,} B  "
                          f"({row['compile_seconds']} s)", flush=True)
            cks += checks(name, rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    doc = {"machine": machine_info(), "models": names, "model_info": infos, "config": CONFIG,
           "epochs": {n: EPOCHS[n] for n in names}, "cached": cached, "rows": rows, "checks": cks,
           "prune_reports": reports, "seconds": round(time.perf_counter() - t_start, 1)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pruning_structured.json").write_text(json.dumps(doc, indent=1) + "\n")
    write_md(doc, RESULTS / "pruning_structured.md")
    print()
    for c in cks:
        print(f"{verdict(c):16s} {c['model']}: {c['check']}: {c['value']} (target {c['target']})")
    fails = [c for c in cks if c["enforced"] and not c["ok"]]
    checked = [c for c in cks if c["enforced"]]
    print(f"\n{len(checked) - len(fails)}/{len(checked)} checked targets met; {doc['seconds']:.0f} s; "
          f"wrote {RESULTS / 'pruning_structured.md'}, .json")
    return 1 if fails else 0


if __name__ == "__main__":
    raise SystemExit(main())
