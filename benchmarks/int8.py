"""Full-int8 post-training quantization, edgec vs TensorFlow's converter, side by side (`make bench`).

For each benchmark model (benchmarks/models.py), in one run:

  TF     TFLiteConverter.from_keras_model, optimizations DEFAULT, representative_dataset = the 100
         calibration samples, supported_ops TFLITE_BUILTINS_INT8, int8 input and output; timed from
         the Keras model to the .tflite bytes.
  edgec  edgec.api.compile(model, out, quantize="int8", calibration={"x": calib_x}); timed the same way
         (without eval data, so that no evaluation is counted); then compiled again, untimed, with
         eval_data={"x": test_x, "y": test_y} for its own report.

Both .tflite files are scored the same way: LiteRT with the reference kernels on the test set, inputs
quantized with each model's own input parameters, argmax against y. The Keras float accuracy is the
baseline. The edgec model is also checked opcheck-style on 5 random int8 inputs: edgec's numpy
interpreter vs LiteRT BUILTIN_REF, TFLite Micro and LiteRT's default (XNNPACK) resolver.

Acceptance, per model: edgec accuracy >= TF accuracy - 0.3 points; edgec .tflite no more than 2%
larger than TF's; edgec compile time <= TF's. Writes benchmarks/results/int8.md and int8.json, prints
PASS/FAIL per check, and exits 1 if any check fails.

    python benchmarks/int8.py [--models NAME,...] [--repeat N] [--retrain] [--tf-only]
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
if (ROOT / "compiler").is_dir():
    sys.path.insert(0, str(ROOT / "compiler"))

import models as bench_models  # noqa: E402

ACC_TOLERANCE_POINTS = 0.3
SIZE_TOLERANCE = 0.02
OPCHECK_SAMPLES = 5
OPCHECK_SEED = 0


# ------------------------------------------------------------------------------------------ helpers

@contextlib.contextmanager
def quiet():
    """Silence TensorFlow's chatter (Python prints and C++ logs on fds 1 and 2) for the duration; on
    an exception, replay what was captured to stderr so that nothing is lost."""
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as cap:
        saved = os.dup(1), os.dup(2)
        os.dup2(cap.fileno(), 1)
        os.dup2(cap.fileno(), 2)
        ok = False
        try:
            with contextlib.redirect_stdout(sys.stderr):
                yield
            ok = True
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            if not ok:
                cap.seek(0)
                tail = cap.read().decode(errors="replace")[-4000:]
                if tail.strip():
                    print(tail, file=sys.stderr)


def tf_int8(model, calib_x: np.ndarray) -> bytes:
    import tensorflow as tf
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]

    def representative():
        for i in range(len(calib_x)):
            yield [calib_x[i:i + 1]]

    conv.representative_dataset = representative
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def edgec_int8(model, out_dir: Path, calib_x: np.ndarray, test=None) -> tuple[bytes, dict]:
    from edgec import api
    kw = {}
    if test is not None:
        kw["eval_data"] = {"x": test[0], "y": test[1]}
    report = api.compile(model, out_dir, quantize="int8", calibration={"x": calib_x}, **kw)
    return (Path(out_dir) / "model.tflite").read_bytes(), report


def timed(fn, repeat: int):
    """(result of the last call, best wall time over `repeat` calls)."""
    best, res = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        with quiet():
            res = fn()
        best = min(best, time.perf_counter() - t0)
    return res, best


def quantize_input(x: np.ndarray, detail: dict) -> np.ndarray:
    dtype = np.dtype(detail["dtype"])
    if dtype.kind == "f":
        return x.astype(dtype)
    scale, zp = detail["quantization"]
    if not scale:
        raise ValueError(f"integer input {detail['name']!r} without quantization parameters")
    # as TFLite's QUANTIZE kernel: float32 division, round half away from zero, saturate
    v = (x.astype(np.float32) / np.float32(scale)).astype(np.float64)
    q = np.sign(v) * np.floor(np.abs(v) + 0.5) + zp
    info = np.iinfo(dtype)
    return np.clip(q, info.min, info.max).astype(dtype)


def tflite_accuracy(model: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy in LiteRT with the reference kernels, inputs quantized by the model's parameters."""
    from edgec.run.litert import make_interpreter, run_litert
    it = make_interpreter(model, reference=True)
    xq = quantize_input(x, it.get_input_details()[0])
    out = run_litert(model, [xq], reference=True)[0]
    # argmax over int8 scores equals argmax over their dequantized values (scale > 0)
    return float((out.reshape(len(out), -1).argmax(1) == y).mean())


def keras_accuracy(model, x, y) -> float:
    p = model.predict(x, batch_size=128, verbose=0)
    return float((p.argmax(-1) == y).mean())


def _random_inputs(details: list[tuple[tuple, str]]) -> list[np.ndarray]:
    """OPCHECK_SAMPLES random inputs for (shape, dtype) pairs: full-range integers, or N(0, 1) floats."""
    rng = np.random.default_rng(OPCHECK_SEED)
    xs = []
    for shape, dtype in details:
        shape = (OPCHECK_SAMPLES,) + tuple(shape[1:])
        if np.dtype(dtype).kind == "f":
            xs.append(rng.standard_normal(shape).astype(np.float32))
        else:
            info = np.iinfo(dtype)
            xs.append(rng.integers(info.min, info.max + 1, shape).astype(dtype))
    return xs


def _diff(want: list[np.ndarray], got: list[np.ndarray]) -> dict:
    """Values of `got` differing from `want` and the largest difference (LSB for integer outputs)."""
    differ, max_lsb = 0, 0
    for w, o in zip(want, got):
        if w.shape != o.shape:
            raise ValueError(f"output shape {o.shape} != {w.shape}")
        if w.dtype.kind == "f":
            d = np.abs(o.astype(np.float64) - w.astype(np.float64))
            differ += int((d > 1e-5 * (1 + np.abs(w))).sum())
            max_lsb = max(max_lsb, float(d.max()))
        else:
            d = np.abs(o.astype(np.int64) - w.astype(np.int64))
            differ += int((d > 0).sum())
            max_lsb = max(max_lsb, int(d.max()))
    return {"differ": differ, "max_lsb": max_lsb}


def opcheck(model_path: Path) -> dict:
    """edgec's numpy interpreter vs LiteRT BUILTIN_REF, TFLite Micro and LiteRT default (XNNPACK) on
    OPCHECK_SAMPLES random inputs: per runner, values differing from the numpy result and max LSB."""
    from edgec.frontend.tflite import load_tflite
    from edgec.ir.interpret import run_batch
    from edgec.run.litert import run_litert
    from edgec.run.tflm import run_tflm

    g = load_tflite(str(model_path))
    data = model_path.read_bytes()
    xs = _random_inputs([(g.tensors[n].shape, g.tensors[n].dtype) for n in g.inputs])
    want = run_batch(g, xs)
    res: dict = {"samples": OPCHECK_SAMPLES, "values": int(sum(w.size for w in want))}
    runners = {
        "litert_ref": lambda: run_litert(data, xs, reference=True),
        "tflm": lambda: _quiet_call(run_tflm, data, xs),  # it prints one line per sample
        "xnnpack": lambda: run_litert(data, xs, reference=False),
    }
    for label, fn in runners.items():
        try:
            res[label] = _diff(want, fn())
        except Exception as e:
            res[label] = {"error": f"{type(e).__name__}: {e}"}
    return res


def ref_vs_xnnpack(model: bytes) -> dict:
    """For a model edgec does not interpret (TF's has SHAPE ops): LiteRT default (XNNPACK) resolver vs
    the reference kernels, on the same kind of random inputs as opcheck()."""
    from edgec.run.litert import make_interpreter, run_litert
    it = make_interpreter(model, reference=True)
    xs = _random_inputs([(tuple(d["shape"]), d["dtype"]) for d in it.get_input_details()])
    want = run_litert(model, xs, reference=True)
    res = _diff(want, run_litert(model, xs, reference=False))
    res["values"] = int(sum(w.size for w in want))
    return res


def _quiet_call(fn, *a):
    with quiet():
        return fn(*a)


def _fmt_diff(r: dict | None, values: int | None = None) -> str:
    if not r:
        return "n/a"
    if "error" in r:
        return "error"
    if r.get("differ", 0) == 0:
        return "="
    return f"{r['differ']}/{values or r.get('values')} ≤{r['max_lsb']} LSB"


def _fmt_opcheck(oc: dict | None) -> str:
    if not oc:
        return "n/a"
    if "error" in oc:
        return "error"
    parts = []
    for label, short in (("litert_ref", "ref"), ("tflm", "tflm"), ("xnnpack", "xnn")):
        parts.append(f"{short} {_fmt_diff(oc.get(label), oc.get('values'))}")
    return ", ".join(parts)


def machine_info() -> dict:
    from importlib import metadata
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def ver(pkg):
        try:
            return metadata.version(pkg)
        except metadata.PackageNotFoundError:
            return None

    commit = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(),
        "tensorflow": ver("tensorflow-cpu") or ver("tensorflow"), "keras": ver("keras"),
        "ai-edge-litert": ver("ai-edge-litert"), "tflite-micro": ver("tflite-micro"),
        "edgec": ver("edgec"), "commit": commit,
    }


# --------------------------------------------------------------------------------------------- main

def bench_model(name: str, work: Path, repeat: int, retrain: bool, tf_only: bool) -> dict:
    row: dict = {"model": name}
    print(f"[{name}] loading / training ...", flush=True)
    with quiet():
        model, calib_x, test_x, test_y, info = bench_models.load(name, retrain)
    trained = bool(info.get("trained", True))
    row.update(params=info.get("params"), trained=trained, dataset=info.get("dataset"),
               train_seconds=info.get("train_seconds"), calib_samples=len(calib_x), test_samples=len(test_y))
    with quiet():
        row["float_acc"] = keras_accuracy(model, test_x, test_y) if trained else None

    # (a) TensorFlow's converter
    try:
        tf_bytes, row["tf_seconds"] = timed(lambda: tf_int8(model, calib_x), repeat)
        (work / f"{name}.tf_int8.tflite").write_bytes(tf_bytes)
        row["tf_bytes"] = len(tf_bytes)
        row["tf_acc"] = tflite_accuracy(tf_bytes, test_x, test_y) if trained else None
        try:
            row["tf_ref_vs_xnnpack"] = ref_vs_xnnpack(tf_bytes)
        except Exception as e:
            row["tf_ref_vs_xnnpack"] = {"error": f"{type(e).__name__}: {e}"}
    except Exception as e:
        row["tf_error"] = f"{type(e).__name__}: {e}"
        traceback.print_exc()
    print(f"[{name}] TF: {row.get('tf_bytes')} bytes in {row.get('tf_seconds', float('nan')):.2f} s, "
          f"acc {row.get('tf_acc')}", flush=True)

    # (b) edgec
    if not tf_only:
        out = work / f"{name}.edgec"
        try:
            (e_bytes, _), row["edgec_seconds"] = timed(lambda: edgec_int8(model, out, calib_x), repeat)
            row["edgec_bytes"] = len(e_bytes)
            # untimed, with eval data: edgec's own report, and the out dir that the checks below read
            with quiet():
                e_bytes2, report = edgec_int8(model, out, calib_x, (test_x, test_y))
            row["edgec_deterministic"] = e_bytes2 == e_bytes
            totals = report.get("totals", {})
            row["edgec_report"] = {k: totals.get(k) for k in ("tflite_bytes", "accuracy", "float_accuracy")}
            row["edgec_report"]["compile_seconds"] = report.get("timings", {}).get("compile_seconds")
            row["edgec_acc"] = tflite_accuracy(e_bytes2, test_x, test_y) if trained else None
            ra = row["edgec_report"]["accuracy"]
            if trained and ra is not None and abs(ra - row["edgec_acc"]) > 1e-6:
                print(f"[{name}] note: edgec's report says accuracy {ra}, measured here {row['edgec_acc']}",
                      flush=True)
        except Exception as e:
            row["edgec_error"] = f"{type(e).__name__}: {e}"
            row["edgec_traceback"] = traceback.format_exc()
            print(row["edgec_traceback"], file=sys.stderr)
        if "edgec_error" not in row:
            try:
                row["opcheck"] = opcheck(out / "model.tflite")
            except Exception as e:
                row["opcheck"] = {"error": f"{type(e).__name__}: {e}"}
                row["opcheck_traceback"] = traceback.format_exc()
                print(row["opcheck_traceback"], file=sys.stderr)
        print(f"[{name}] edgec: {row.get('edgec_bytes')} bytes in {row.get('edgec_seconds', float('nan')):.2f} s, "
              f"acc {row.get('edgec_acc')}; opcheck {_fmt_opcheck(row.get('opcheck'))}"
              + (f"; ERROR {row['edgec_error']}" if "edgec_error" in row else ""), flush=True)

    row["checks"] = checks(row, tf_only)
    return row


def checks(row: dict, tf_only: bool) -> dict:
    c: dict = {}
    if tf_only:
        return c
    if "edgec_error" in row or "tf_error" in row:
        err = row.get("edgec_error") or row.get("tf_error")
        return {"accuracy": f"FAIL ({err[:120]})", "size": "FAIL", "time": "FAIL"}
    if row["trained"]:
        d = 100 * (row["edgec_acc"] - row["tf_acc"])
        c["accuracy"] = ("PASS" if d >= -ACC_TOLERANCE_POINTS else "FAIL") + f" ({d:+.2f} pt)"
    else:
        c["accuracy"] = "n/a (random weights)"
    r = row["edgec_bytes"] / row["tf_bytes"]
    c["size"] = ("PASS" if r <= 1 + SIZE_TOLERANCE else "FAIL") + f" ({r:.3f}x)"
    t = row["edgec_seconds"] / row["tf_seconds"]
    c["time"] = ("PASS" if t <= 1.0 else "FAIL") + f" ({t:.2f}x)"
    return c


def _pct(v):
    return "n/a" if v is None else f"{100 * v:.2f}%"


def write_results(rows: list[dict], machine: dict, out_dir: Path, args) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {"machine": machine, "settings": {"repeat": args.repeat, "calibration_samples": bench_models.N_CALIB,
                                            "opcheck_samples": OPCHECK_SAMPLES,
                                            "accuracy_tolerance_points": ACC_TOLERANCE_POINTS,
                                            "size_tolerance": SIZE_TOLERANCE},
           "models": rows}
    (out_dir / "int8.json").write_text(json.dumps(doc, indent=1, default=str) + "\n")

    L = ["# int8 post-training quantization: edgec vs TensorFlow's converter", "",
         f"{machine['date']} · {machine['cpu']} ({machine['cores']} cores) · {machine['platform']} · "
         f"Python {machine['python']} · TensorFlow {machine['tensorflow']} · Keras {machine['keras']} · "
         f"ai-edge-litert {machine['ai-edge-litert']} · tflite-micro {machine['tflite-micro']} · "
         f"edgec {machine['edgec']} @ {machine['commit']}", "",
         "Accuracy: LiteRT reference kernels on the held-out test set, inputs quantized with each model's "
         "input parameters, top-1 vs labels; float = the Keras model. Compile time: wall seconds from the "
         f"in-memory Keras model to .tflite bytes (best of {args.repeat}), same process, after a warm-up of "
         f"both. Calibration: the same {bench_models.N_CALIB} training samples for both. "
         "delta = edgec − TF in points; ratios are edgec / TF.", "",
         "| model | float acc | TF int8 acc | edgec int8 acc | delta | TF bytes | edgec bytes | size ratio "
         "| TF compile s | edgec compile s | time ratio | edgec numpy vs LiteRT ref / TFLM / XNNPACK "
         "| TF: LiteRT ref vs XNNPACK |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for r in rows:
        tfa, ea = r.get("tf_acc"), r.get("edgec_acc")
        delta = f"{100 * (ea - tfa):+.2f}" if tfa is not None and ea is not None else "n/a"
        tb, eb = r.get("tf_bytes"), r.get("edgec_bytes")
        ts, es = r.get("tf_seconds"), r.get("edgec_seconds")
        L.append("| " + " | ".join([
            r["model"], _pct(r.get("float_acc")), _pct(tfa), _pct(ea) if "edgec_error" not in r else "error", delta,
            f"{tb:,}" if tb else "error", f"{eb:,}" if eb else ("error" if "edgec_error" in r else "—"),
            f"{eb / tb:.3f}" if tb and eb else "n/a",
            f"{ts:.2f}" if ts else "error", f"{es:.2f}" if es else ("error" if "edgec_error" in r else "—"),
            f"{es / ts:.2f}" if ts and es else "n/a",
            _fmt_opcheck(r.get("opcheck")), _fmt_diff(r.get("tf_ref_vs_xnnpack")),
        ]) + " |")
    L += ["", "Opcheck: edgec's numpy interpreter vs each runtime on "
          f"{OPCHECK_SAMPLES} random full-range int8 inputs; `=` is bit-exact, otherwise values differing / "
          "output values and the largest difference in LSB. The last column runs TF's model the same way "
          "(LiteRT reference kernels vs the default XNNPACK resolver) for comparison.", ""]
    L += ["## Acceptance", "",
          f"edgec accuracy ≥ TF − {ACC_TOLERANCE_POINTS} points; edgec .tflite ≤ {1 + SIZE_TOLERANCE:.2f}× TF's; "
          "edgec compile time ≤ TF's.", "",
          "| model | accuracy | size | time |", "|---|---|---|---|"]
    for r in rows:
        c = r.get("checks") or {}
        L.append(f"| {r['model']} | {c.get('accuracy', '—')} | {c.get('size', '—')} | {c.get('time', '—')} |")
    L += ["", "## Models", "",
          "| model | params | data | trained | train s | calib / test samples |", "|---|---:|---|---|---:|---|"]
    for r in rows:
        L.append(f"| {r['model']} | {r.get('params') or 0:,} | {r.get('dataset')} | "
                 f"{'yes' if r.get('trained') else 'no (random weights: accuracy n/a)'} | "
                 f"{r.get('train_seconds') if r.get('train_seconds') is not None else '—'} | "
                 f"{r.get('calib_samples')} / {r.get('test_samples')} |")
    errs = [r for r in rows if "edgec_error" in r or "tf_error" in r]
    if errs:
        L += ["", "## Errors", ""]
        for r in errs:
            for k in ("tf_error", "edgec_error"):
                if k in r:
                    L.append(f"- {r['model']} ({k.split('_')[0]}): `{r[k]}`")
    extra = [r for r in rows if r.get("edgec_report")]
    if extra:
        L += ["", "## edgec's own report (compiled with eval data)", "",
              "| model | report accuracy | report float accuracy | report bytes | compile_seconds (incl. evaluation) "
              "| deterministic |", "|---|---:|---:|---:|---:|---|"]
        for r in extra:
            e = r["edgec_report"]
            L.append(f"| {r['model']} | {_pct(e.get('accuracy'))} | {_pct(e.get('float_accuracy'))} | "
                     f"{e.get('tflite_bytes')} | {e.get('compile_seconds')} | "
                     f"{'yes' if r.get('edgec_deterministic') else 'NO'} |")
    (out_dir / "int8.md").write_text("\n".join(L) + "\n")


def warm_up(work: Path, tf_only: bool) -> None:
    """One untimed conversion by each tool, so that neither pays the one-time import/tracing cost in the
    timed runs."""
    import keras
    inp = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inp)
    x = keras.layers.Flatten()(x)
    m = keras.Model(inp, keras.layers.Dense(10, activation="softmax")(x))
    xc = np.random.default_rng(0).random((8, 8, 8, 1), dtype=np.float32)
    with quiet():
        tf_int8(m, xc)
    if not tf_only:
        try:
            with quiet():
                edgec_int8(m, work / "warmup.edgec", xc)
        except Exception as e:
            print(f"edgec warm-up failed: {type(e).__name__}: {e}", file=sys.stderr)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="int8 PTQ: edgec vs TensorFlow's converter")
    ap.add_argument("--models", default=",".join(bench_models.MODELS),
                    help=f"comma-separated subset of {','.join(bench_models.MODELS)}")
    ap.add_argument("--repeat", type=int, default=3, help="time each compile N times, keep the best (default 3)")
    ap.add_argument("--retrain", action="store_true", help="ignore the cached models in benchmarks/work/")
    ap.add_argument("--tf-only", action="store_true", help="skip edgec (TF converter half only)")
    ap.add_argument("--out", default=str(HERE / "results"), help="results folder (default benchmarks/results)")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    for n in names:
        if n not in bench_models.MODELS:
            ap.error(f"unknown model {n!r}; have {', '.join(bench_models.MODELS)}")

    work = bench_models.WORK / "int8"
    work.mkdir(parents=True, exist_ok=True)
    machine = machine_info()
    print(f"int8 benchmark on {machine['cpu']} ({machine['cores']} cores), {machine['date']}", flush=True)
    warm_up(work, args.tf_only)
    shutil.rmtree(work / "warmup.edgec", ignore_errors=True)

    rows = [bench_model(n, work, args.repeat, args.retrain, args.tf_only) for n in names]
    if not args.tf_only or args.out != str(HERE / "results"):
        write_results(rows, machine, Path(args.out), args)
        print(f"wrote {Path(args.out) / 'int8.md'} and int8.json")
    else:
        write_results(rows, machine, work / "results-tf-only", args)
        print(f"--tf-only: results in {work / 'results-tf-only'} (benchmarks/results/ left as it is)")

    failed = False
    print()
    for r in rows:
        for check, verdict in (r.get("checks") or {}).items():
            print(f"{r['model']:18s} {check:9s} {verdict}")
            failed |= verdict.startswith("FAIL")
    if not args.tf_only:
        print("FAIL" if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
