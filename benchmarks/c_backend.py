"""The C backend against TFLite Micro and LiteRT on the benchmark models, in one run.

For each benchmark model (benchmarks/models.py): compile with edgec to int8 with --emit tflite,c, then
  exactness  C raw outputs vs TFLite Micro's on the first 100 test inputs (bit for bit);
  memory     the C plan's arena vs TFLM's "Arena allocation head" (its planned tensors). TFLM plans the
             graph's input and output inside its head, where they share bytes with other tensors once
             dead; ours live in the caller's buffers, outside the arena, so arena + I/O is shown too;
  latency    median microseconds per inference, one thread, same input, measured side by side:
             C built -O3 (and -O2) timed inside C; the TFLM interpreter's invoke() and LiteRT's
             (default XNNPACK delegate, num_threads=1) invoke(), timed from Python around the call.
Writes benchmarks/results/c_backend.md and .json.

    python benchmarks/c_backend.py [--models NAME,...] [--iters N]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if (HERE.parent / "compiler").is_dir():
    sys.path.insert(0, str(HERE.parent / "compiler"))

import models as bench_models  # noqa: E402
from int8 import machine_info, quiet  # noqa: E402

EXACT_SAMPLES = 100


def time_calls(fn, iters: int) -> np.ndarray:
    for _ in range(5):
        fn()
    us = np.empty(iters)
    for k in range(iters):
        t0 = time.perf_counter()
        fn()
        us[k] = (time.perf_counter() - t0) * 1e6
    return us


def bench_model(name: str, work: Path, iters: int, target: str = "host") -> dict:
    from edgec import api
    from edgec.data import model_inputs, dataset_from
    from edgec.frontend.tflite import load_tflite
    from edgec.run.host import load_host, read_project
    from edgec.run.litert import _interpreter_module
    from edgec.run.tflm import run_tflm, tflm_arena
    from edgec.native_output import captured_native_output

    model, calib_x, test_x, test_y, _ = bench_models.load(name)
    out = work / name
    with quiet():
        rep = api.compile(model, out, quantize="int8", calibration={"x": calib_x}, emit=("tflite", "c"),
                          target=target)
    tfl = (out / "model.tflite").read_bytes()
    g = load_tflite(str(out / "model.tflite"))
    xs = model_inputs(dataset_from({"x": test_x[:EXACT_SAMPLES]}), g)
    files = read_project(out / "c")
    arena = rep["totals"]["arena_bytes"]

    c2, c3 = load_host(files, g, arena, opt="-O2"), load_host(files, g, arena, opt="-O3")
    got = c3.run(xs)
    want = run_tflm(tfl, xs)
    differ = int(sum((a != b).sum() for a, b in zip(got, want)))

    io_bytes = sum(g.tensors[n].size * np.dtype(g.tensors[n].dtype).itemsize for n in g.inputs + g.outputs)
    tflm = tflm_arena(tfl)

    from tflite_micro.python.tflite_micro import runtime
    it = runtime.Interpreter.from_bytes(tfl, arena_size=tflm["total"] + 4096)
    it.set_input(xs[0][:1], 0)
    tflm_us = time_calls(it.invoke, iters)
    mod = _interpreter_module()
    with captured_native_output():
        lite = mod.Interpreter(model_content=tfl, num_threads=1)
        lite.allocate_tensors()
    lite.set_tensor(lite.get_input_details()[0]["index"], xs[0][:1])
    lite_us = time_calls(lite.invoke, iters)
    c3_us, c2_us = c3.bench(xs, iters=iters), c2.bench(xs, iters=iters)
    med = lambda a: float(np.median(a))  # noqa: E731
    return {
        "model": name, "target": target, "kernels": sorted(set(rep["c_kernels"].values())),
        "ops": len(g.ops), "macs": rep["totals"]["macs"],
        "exact_samples": len(xs[0]), "values_differing_from_tflm": differ,
        "arena_bytes": arena, "io_bytes": int(io_bytes), "tflm_head_bytes": tflm["head"],
        "tflm_total_bytes": tflm["total"],
        "c_o3_us": med(c3_us), "c_o2_us": med(c2_us), "tflm_us": med(tflm_us), "litert_us": med(lite_us),
        "c_o3_p90_us": float(np.percentile(c3_us, 90)),
    }


def write(rows: list[dict], machine: dict, path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "c_backend.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    lines = [
        "# C backend vs TFLite Micro and LiteRT", "",
        f"{machine['date']} · {machine['cpu']} ({machine['cores']} cores) · {machine['platform']} · "
        f"tflite-micro {machine['tflite-micro']} · ai-edge-litert {machine['ai-edge-litert']} · "
        f"edgec {machine['edgec']} @ {machine['commit']}", "",
        "Produced by `python benchmarks/c_backend.py`. int8 models compiled by edgec (`--emit tflite,c "
        f"--target {rows[0]['target']}`: kernel variants {', '.join(rows[0]['kernels'])}), "
        "C built for this machine with the host compiler. Latency: median µs per inference over the same "
        "input, one thread; C timed inside C, TFLM and LiteRT (XNNPACK, 1 thread) timed around invoke() "
        "from Python (adds ~1 µs of call overhead). Exactness: C raw outputs vs TFLM on "
        f"{EXACT_SAMPLES} test inputs.", "",
        "| model | ops | MACs | C == TFLM | C arena | C arena + I/O | TFLM head | arena / head | "
        "C -O3 µs | C -O2 µs | TFLM µs | LiteRT µs | C/TFLM | C/LiteRT |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['model']} | {r['ops']} | {r['macs']:,} | "
            f"{'yes' if r['values_differing_from_tflm'] == 0 else str(r['values_differing_from_tflm']) + ' differ'}"
            f" ({r['exact_samples']}) | {r['arena_bytes']:,} | {r['arena_bytes'] + r['io_bytes']:,} | "
            f"{r['tflm_head_bytes']:,} | {r['arena_bytes'] / r['tflm_head_bytes']:.2f} | {r['c_o3_us']:.1f} | "
            f"{r['c_o2_us']:.1f} | {r['tflm_us']:.1f} | {r['litert_us']:.1f} | {r['c_o3_us'] / r['tflm_us']:.3f} | "
            f"{r['c_o3_us'] / r['litert_us']:.2f} |")
    lines += ["", "## Acceptance", "",
              "C == TFLM bit for bit; arena ≤ TFLM head; C latency ≤ 0.25× TFLM and ≤ 1.0× LiteRT.", "",
              "| model | exact | arena | vs TFLM | vs LiteRT |", "|---|---|---|---|---|"]
    for r in rows:
        ok = lambda c: "PASS" if c else "FAIL"  # noqa: E731
        lines.append(f"| {r['model']} | {ok(r['values_differing_from_tflm'] == 0)} | "
                     f"{ok(r['arena_bytes'] <= r['tflm_head_bytes'])} | {ok(r['c_o3_us'] <= 0.25 * r['tflm_us'])} "
                     f"({r['c_o3_us'] / r['tflm_us']:.3f}x) | {ok(r['c_o3_us'] <= r['litert_us'])} "
                     f"({r['c_o3_us'] / r['litert_us']:.2f}x) |")
    (path / "c_backend.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default=",".join(bench_models.MODELS))
    ap.add_argument("--iters", type=int, default=200)
    ap.add_argument("--target", default="host", help="target whose kernel variants to use (default host)")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in [n.strip() for n in args.models.split(",") if n.strip()]:
            print(f"[c_backend] {name} ...", flush=True)
            rows.append(bench_model(name, Path(tmp), args.iters, args.target))
            print(json.dumps(rows[-1]), flush=True)
    write(rows, machine_info(), HERE / "results")
    print((HERE / "results" / "c_backend.md").read_text())
    bad = [r for r in rows if r["values_differing_from_tflm"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
