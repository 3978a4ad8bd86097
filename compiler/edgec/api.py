"""The public Python API; the CLI is a thin layer over it.

compile() reads as the pipeline it runs: load, passes, backends, evaluate, report, write.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from .data import Dataset, check_against, dataset_from, load_npz
from .errors import EdgecError
from .frontend import Loaded, load_model
from .ir import Graph

CALIBRATION_SAMPLES = 100


def load(model, unsafe: bool = False) -> Loaded:
    """Import a model (path or keras.Model) into the IR; returns graph, float TFLite and source."""
    return load_model(model, unsafe=unsafe)


def _data(d, what: str) -> Dataset | None:
    if d is None:
        return None
    return load_npz(os.fspath(d)) if isinstance(d, (str, os.PathLike)) else dataset_from(d, what)


def quantize_options(scheme: str | None = None, granularity: str | None = None, rounding: str | None = None,
                     loss_aware: bool | None = None, calibration_method: str | None = None,
                     io: str | None = None) -> dict:
    """The CLI's quantization flags as options of the quantize pass (None: the recipe's choice)."""
    opts: dict = {}
    if scheme is not None:
        opts["weight_scheme"] = scheme
    if granularity is not None:
        opts.update(parse_granularity(granularity))
    if rounding is not None:
        opts["rounding"] = rounding
    if loss_aware is not None:
        opts["loss_aware"] = opts["bias_correction"] = loss_aware
    if calibration_method is not None:
        opts["calibration"] = calibration_method
    if io is not None:
        opts["io"] = io
    return opts


def parse_granularity(text: str) -> dict:
    """"tensor", "channel" or "group:N" as quantize-pass options (per_channel, group_size)."""
    if text in ("tensor", "channel"):
        return {"per_channel": text == "channel", "group_size": 0}
    kind, _, n = text.partition(":")
    if kind == "group" and n.isdigit() and int(n) >= 1:
        return {"per_channel": True, "group_size": int(n)}
    raise EdgecError(f"granularity {text!r}: choose tensor, channel or group:N (N >= 1 weights per group)")


def recipe_steps(recipe: str | None = None, quantize: str | None = None, calibration_method: str | None = None,
                 io: str | None = None, options: dict | None = None):
    from .passes import Step, load_recipe
    if recipe and quantize:
        raise EdgecError("give either a recipe or --quantize, not both")
    steps = load_recipe(recipe or quantize or "float")
    extra = {**quantize_options(calibration_method=calibration_method, io=io), **(options or {})}
    if extra and not any(s.name == "quantize" for s in steps):
        raise EdgecError(f"quantization options given ({', '.join(sorted(extra))}) but nothing is quantized; "
                         f"add --quantize")
    for s in steps:
        if s.name == "quantize":
            s.options.update(extra)
    return [Step(s.name, dict(s.options), dict(s.overrides)) for s in steps]


def with_qat(steps, epochs: int | None = None):
    """Insert quantization-aware training before the quantize step, with the same weight format
    (and per-layer overrides), so training sees exactly what will be stored."""
    from .passes import PASSES, Step
    at = next((k for k, s in enumerate(steps) if s.name == "quantize"), None)
    if at is None:
        raise EdgecError("--qat needs a quantizing recipe or --quantize")
    q = steps[at]
    keys = set(PASSES["qat"].defaults)
    opts = {k: v for k, v in q.options.items() if k in keys}
    if epochs is not None:
        opts["epochs"] = epochs
    overrides = {pat: {k: v for k, v in o.items() if k in keys} for pat, o in q.overrides.items()}
    return steps[:at] + [Step("qat", opts, {p: o for p, o in overrides.items() if o})] + steps[at:]


def prune_options(sparsity: float | None = None, granularity: str | None = None, schedule: str | None = None,
                  criterion: str | None = None) -> dict:
    """The CLI's --prune flags as options of the prune_weights pass (checked here, before any work)."""
    from .passes.prune_weights import parse_pattern
    opts: dict = {}
    if sparsity is not None:
        if not 0.0 < float(sparsity) < 1.0:
            raise EdgecError(f"--prune {sparsity:g}: the sparsity is the fraction of weights removed, "
                             f"between 0 and 1 (e.g. 0.9)")
        opts["sparsity"] = float(sparsity)
    if granularity is not None:
        pattern = parse_pattern(granularity)
        fixed = pattern.fixed_sparsity
        if fixed is not None and sparsity is not None and abs(float(sparsity) - fixed) > 1e-6:
            raise EdgecError(f"--prune {sparsity:g} with --prune-granularity {granularity}: {pattern} "
                             f"removes {fixed:g} of the weights; drop --prune or choose another N:M")
        opts["granularity"] = str(pattern)
    if schedule is not None:
        opts["schedule"] = schedule
    if criterion is not None:
        opts["criterion"] = criterion
    return opts


def parse_structured(text: str) -> dict:
    """"channels:0.5", "heads:0.25" or "layers:2" as prune_channels options: a fraction in (0, 1) or a
    count >= 1 of the channels / attention heads / layers to remove."""
    what, _, amount = str(text).partition(":")
    try:
        value = int(amount) if amount.isdigit() else float(amount)
    except ValueError:
        value = None
    ok = what in ("channels", "heads", "layers") and value is not None and (
        (isinstance(value, int) and value >= 1) or (isinstance(value, float) and 0.0 < value < 1.0))
    if not ok:
        raise EdgecError(f"--prune-structured {text!r}: choose channels:F, heads:F or layers:N (F a fraction "
                         f"in (0, 1) to remove, N a count), e.g. channels:0.5")
    return {"what": what, "amount": value}


def with_pruning(steps, prune_opts: dict | None = None, structured: str | None = None,
                 epochs: int | None = None):
    """Insert prune_channels (--prune-structured) and prune_weights (--prune) before training for and
    quantizing (prune, fine-tune, then quantize), or set the flags on the recipe's own prune_weights."""
    from .passes import Step
    steps = list(steps)
    at = next((k for k, s in enumerate(steps) if s.name in ("qat", "quantize")), len(steps))
    own = next((s for s in steps if s.name == "prune_weights"), None)
    opts = dict(prune_opts or {})
    if opts.get("granularity", "").startswith("nm:") and "sparsity" not in opts:
        opts["sparsity"] = "auto"      # N:M sets its own sparsity, whatever the recipe said
    if opts and own is None:
        if "sparsity" not in opts:
            flags = ", ".join(f"--prune-{k}" for k in sorted(opts))
            raise EdgecError(f"{flags} given without --prune S (or an nm:N:M granularity): nothing to prune")
        own = Step("prune_weights", {})
        steps.insert(at, own)
    if own is not None:
        own.options.update(opts)
        if epochs is not None:
            own.options["epochs"] = epochs
    if structured is not None:   # channels first: weight pruning then works on the smaller layers
        steps.insert(steps.index(own) if own is not None else at, Step("prune_channels", parse_structured(structured)))
    return steps


def with_factorize(steps, spec: str, epochs: int | None = None):
    """Set --factorize SPEC on the recipe's factorize step, or insert one after the clean-ups (before
    equalization, pruning, training and quantization)."""
    from .passes import Step
    from .passes.factorize import parse_factorize
    opts = parse_factorize(spec)
    if epochs is not None:
        opts["epochs"] = epochs
    steps = list(steps)
    own = next((s for s in steps if s.name == "factorize"), None)
    if own is not None:
        own.options.update(opts)
        return steps
    later = ("equalize_layers", "prune_channels", "prune_weights", "qat", "quantize")
    at = next((k for k, s in enumerate(steps) if s.name in later), len(steps))
    steps.insert(at, Step("factorize", opts))
    return steps


def cluster_options(clusters: int | None = None, granularity: str | None = None, init: str | None = None) -> dict:
    """The CLI's --cluster flags as options of the cluster_weights pass (checked here, before any work)."""
    from .passes.cluster_weights import GRANULARITIES, check_clusters
    from .train.constraints import CLUSTER_INITS
    opts: dict = {}
    if clusters is not None:
        opts["clusters"] = check_clusters(clusters, f"--cluster {clusters}")
    if granularity is not None:
        if granularity not in GRANULARITIES:
            raise EdgecError(f"--cluster-granularity {granularity!r}: choose tensor or channel")
        opts["granularity"] = granularity
    if init is not None:
        if init not in CLUSTER_INITS:
            raise EdgecError(f"--cluster-init {init!r}: choose one of {', '.join(CLUSTER_INITS)}")
        opts["init"] = init
    return opts


def with_cluster(steps, cluster_opts: dict | None = None, epochs: int | None = None):
    """Set the --cluster flags on the recipe's cluster_weights step, or insert one after pruning and
    before quantizing (prune, then cluster the survivors, then store the codebook)."""
    from .passes import Step
    opts = dict(cluster_opts or {})
    steps = list(steps)
    own = next((s for s in steps if s.name == "cluster_weights"), None)
    if opts and own is None:
        if "clusters" not in opts:
            flags = ", ".join(f"--cluster-{k}" for k in sorted(opts))
            raise EdgecError(f"{flags} given without --cluster K: nothing to cluster")
        own = Step("cluster_weights", {})
        steps.insert(next((k for k, s in enumerate(steps) if s.name in ("qat", "quantize")), len(steps)), own)
    if own is not None:
        if any(s.name == "qat" for s in steps):
            raise EdgecError("--cluster trains its own int8 codebooks; drop --qat (QAT would retrain the "
                             "clustered weights onto a uniform grid)")
        own.options.update(opts)
        if epochs is not None:
            own.options["epochs"] = epochs
    return steps


def with_share(steps, spec: str, epochs: int | None = None):
    """Set --share SPEC on the recipe's share_weights step, or insert one: tying before pruning (the tied
    tensor is then pruned once), hashing after it (pruned layers are not hashed) and before clustering,
    training and quantizing."""
    from .passes import Step
    from .passes.share_weights import parse_share
    opts = parse_share(spec)
    if epochs is not None:
        opts["epochs"] = epochs
    steps = list(steps)
    if any(s.name == "qat" for s in steps) and opts["mode"] == "hash":
        raise EdgecError("--share hash trains its own int8 buckets; drop --qat (QAT would retrain the hashed "
                         "weights onto a per-layer grid)")
    own = next((s for s in steps if s.name == "share_weights"), None)
    if own is not None:
        own.options.update(opts)
        return steps
    later = (("prune_channels", "prune_weights") if opts["mode"] == "tie" else ()) + \
        ("cluster_weights", "qat", "quantize")
    at = next((k for k, s in enumerate(steps) if s.name in later), len(steps))
    steps.insert(at, Step("share_weights", opts))
    return steps


def compile(model, out: str | os.PathLike, *, quantize: str | None = None, recipe: str | None = None,
            calibration=None, calibration_method: str | None = None, eval_data=None, io: str | None = None,
            emit=("tflite",), target: str | None = None, unsafe: bool = False, debug: bool = False,
            progress=None, max_flash: int | None = None, max_ram: int | None = None,
            max_latency_ms: float | None = None, kernels: tuple[str, ...] | None = None,
            quantize_opts: dict | None = None, qat: bool = False, train_data=None,
            epochs: int | None = None, prune_opts: dict | None = None,
            prune_structured: str | None = None, factorize: str | None = None, entropy: str | None = None,
            cluster_opts: dict | None = None, share: str | None = None, tflite_sparse: bool = False) -> dict:
    """Compile `model` into the directory `out` (written atomically) and return its report.
    Budgets (and the target's memories) are checked on what compiling knows: the weights must fit
    the flash and the arena the RAM (`edgec profile` checks the linked firmware); over one, the
    outputs are still written and BudgetError (exit code 3) is raised. entropy None: the recipe's
    [emit] entropy, else "off". tflite_sparse: model.tflite stores weights in TFLite's sparse format
    where LiteRT's kernels run it (backends/tflite/writer.py; TFLite Micro cannot read it)."""
    from .backends.tflite import write_tflite
    from .backends.tflite.writer import stored_weight_bytes
    from .evaluate import evaluate
    from .passes import Pipeline
    from .profile.report import build_report

    unknown = set(emit) - {"tflite", "c"}
    if unknown or not emit:
        raise EdgecError(f"cannot emit {', '.join(sorted(unknown)) or 'nothing'}; choose from: tflite, c")
    t0 = time.perf_counter()
    tgt = None
    if target is not None:
        from .targets import load_target
        tgt = load_target(target)
    steps = recipe_steps(recipe, quantize, calibration_method, io, quantize_opts)
    if qat:
        steps = with_qat(steps, epochs)
    steps = with_pruning(steps, prune_opts, prune_structured, epochs)
    if factorize is not None:
        steps = with_factorize(steps, factorize, epochs)
    if share is not None:
        steps = with_share(steps, share, epochs)
    steps = with_cluster(steps, cluster_opts, epochs)
    if entropy not in (None, "off") and "c" not in emit:
        raise EdgecError("--entropy codes the C project's weights: it needs --emit c")
    if entropy is None:
        from .passes.manager import recipe_emit
        entropy = recipe_emit(recipe).get("entropy", "off") if recipe else "off"
    pipeline = Pipeline(steps)
    calib, evald = _data(calibration, "calibration"), _data(eval_data, "eval data")
    train = _data(train_data, "train data")
    if qat and train is None and (calib is None or calib.y is None):
        raise EdgecError("--qat needs --train-data D.npz (or calibration data with labels y)")
    loaded = load(model, unsafe)
    float_graph = loaded.graph
    for ds in (calib, evald, train):
        if ds is not None:
            check_against(ds, float_graph)
    observe = None
    if calib is not None:
        from .calibrate import observe as observe_stats
        samples = calib.head(CALIBRATION_SAMPLES).xs if len(calib) > CALIBRATION_SAMPLES else calib.xs
        observe = lambda g: observe_stats(g, samples, progress)  # noqa: E731

    g, pass_reports = pipeline.run(float_graph.copy(), calibration=calib, observe=observe, debug=debug,
                                   progress=progress, train_data=train)
    tflite = write_tflite(g, sparse=tflite_sparse)
    files = {"model.tflite": tflite}
    c_project = None
    if "c" in emit:
        from .backends.c.emit import emit_c
        c_project = emit_c(g, os.path.basename(os.fspath(model)) if isinstance(model, (str, os.PathLike))
                           else getattr(model, "name", "model"),
                           variants=tuple(kernels) if kernels else (tgt.kernels if tgt else ("ref",)),
                           entropy=entropy)
        files.update({f"c/{k}": v for k, v in c_project.files.items()})
    evaluation = None
    if evald is not None or (calib is not None and calib.y is not None):
        # the deployed artifact: the C project when there is one (its numerics are TFLite Micro's),
        # else the .tflite in LiteRT's reference kernels (which round some int8 ops differently)
        runner, runtime = None, "LiteRT reference kernels"
        if c_project is not None:
            from .run.host import load_host
            runner, runtime = load_host(c_project.files, g, c_project.arena_size).run, "C artifact built for the host"
        evaluation = evaluate(tflite, g, evald or calib, loaded.tflite, float_graph, runner=runner)
        evaluation["data"] = "eval data" if evald is not None else "calibration data"
        evaluation["runtime"] = runtime
    name = model if isinstance(model, (str, os.PathLike)) else getattr(model, "name", "model")
    report = build_report(os.fspath(name), target, pipeline.names, float_graph, g, len(tflite), pass_reports,
                          evaluation, {"tflite": "model.tflite", "c": "c" if c_project else None,
                                       "elf": None, "html": "report.html"},
                          c_project.weight_bytes if c_project is not None else
                          stored_weight_bytes(g, sparse=True) if tflite_sparse else None)
    if c_project is not None:
        report["totals"]["arena_bytes"] = c_project.arena_size
        report["memory_plan"] = {"arena_bytes": c_project.arena_size, "buffers": c_project.plan.timeline,
                                 "order": [op.name for op in c_project.plan.order]}
        report["c_kernels"] = dict(sorted(c_project.kernels.items()))
        if c_project.entropy is not None:
            report["entropy"] = c_project.entropy.as_dict()
    report["timings"] = {"compile_seconds": round(time.perf_counter() - t0, 3)}
    from .profile.html import render_html
    files["report.json"] = dumps_report(report)
    files["report.html"] = render_html(report).encode()
    write_outputs(out, files, replace=("model.tflite", "report.json", "report.html", "c"))
    from .budgets import BudgetError, overshoots
    ram = report["totals"]["arena_bytes"]
    if ram is not None and c_project is not None and c_project.entropy is not None:
        ram += c_project.entropy.ram_bytes      # decoded weights live in RAM too
    known = {"flash_bytes": report["totals"]["weight_bytes"], "ram_bytes": ram}
    over = overshoots(known, tgt, max_flash=max_flash, max_ram=max_ram)
    if over:
        raise BudgetError("over budget (weights vs flash, arena vs RAM): " + "; ".join(over))
    if max_latency_ms is not None:   # a latency budget needs a latency: profile what was written
        if tgt is None or c_project is None:
            raise EdgecError("--max-latency needs --target and --emit c (the latency comes from profiling)")
        return _profile_out(Path(out), tgt, None, dict(max_flash=max_flash, max_ram=max_ram,
                                                       max_latency_ms=max_latency_ms), 100, write=True)
    return report


def analyze(model, data, *, sensitivity: str = "prune", target_sparsity: float | None = None, out=None,
            granularity: str = "weight", criterion: str = "magnitude", sparsities=None,
            quantize: str | None = None, unsafe: bool = False, progress=None) -> dict:
    """Pruning sensitivity of `model` on `data` (edgec.analyze): each prunable layer's accuracy curve
    against its sparsity and, with target_sparsity, per-layer sparsities that meet it, as a recipe
    (the `quantize` recipe, default float, with prune_weights before quantizing). With `out`, writes
    OUT/sensitivity.json, OUT/sensitivity.svg and OUT/prune_recipe.toml."""
    from . import analyze as an
    from .passes import Pipeline
    from .passes.prune_weights import parse_pattern
    if sensitivity != "prune":
        raise EdgecError(f"--sensitivity {sensitivity!r}: only prune is analyzed")
    if target_sparsity is not None and not 0.0 < float(target_sparsity) < 1.0:
        raise EdgecError(f"--target-sparsity {target_sparsity:g}: a fraction of the weights, between 0 and 1")
    parse_pattern(granularity)
    ds = _data(data, "data")
    base = recipe_steps(quantize=quantize)
    at = next((k for k, s in enumerate(base) if s.name in ("qat", "quantize")), len(base))
    loaded = load(model, unsafe)
    check_against(ds, loaded.graph)
    g, _ = Pipeline(base[:at]).run(loaded.graph.copy(), calibration=ds)   # what prune_weights will see
    result = an.prune_sensitivity(g, ds, an.SWEEP if sparsities is None else sparsities, granularity,
                                  criterion, progress)
    name = os.fspath(model) if isinstance(model, (str, os.PathLike)) else getattr(model, "name", "model")
    result["model"] = name
    files = {}
    alloc = None
    if target_sparsity is not None:
        alloc = result["allocation"] = an.allocate(result, float(target_sparsity))
        header = (f"edgec analyze {name} --sensitivity prune --target-sparsity {target_sparsity:g}\n"
                  f"per-layer sparsities removing {100 * alloc['achieved']:.2f}% of the prunable weights at the least "
                  f"{result['metric']} drop per weight removed\n(estimated drop before fine-tuning: "
                  f"{100 * alloc['estimated_drop']:.2f} points); fine-tunes on --train-data D.npz")
        files["prune_recipe.toml"] = an.recipe_toml(an.pruning_recipe(base, result, alloc), header).encode()
    if out is not None:
        files["sensitivity.json"] = (json.dumps(result, indent=2) + "\n").encode()
        files["sensitivity.svg"] = an.sensitivity_svg(result, alloc).encode()
        write_outputs(out, files, replace=("prune_recipe.toml",))
        result["files"] = {k: os.path.join(os.fspath(out), k) for k in sorted(files)}
    return result


def dumps_report(report: dict) -> bytes:
    return (json.dumps(report, indent=2, sort_keys=False) + "\n").encode()


def write_outputs(out: str | os.PathLike, files: dict[str, bytes], replace: tuple[str, ...] = ()) -> None:
    """Write OUT atomically: build a sibling temporary directory, then swap it in with renames, so a
    failure at any point leaves an existing OUT as it was. Entries of an existing OUT that this step
    neither writes nor `replace`s (e.g. a profile written later) are carried over."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EdgecError(f"{out}: exists and is not a directory")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        if out.is_dir():  # keep files of OUT that this step does not write (e.g. c/ from an earlier run)
            written = {rel.split("/")[0] for rel in files} | set(replace)
            for item in out.iterdir():
                if item.name not in written:
                    dest = tmp / item.name
                    (shutil.copytree if item.is_dir() else shutil.copy2)(item, dest)
        for rel, data in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.rename(out, old)
        os.rename(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def resolve_artifact(path: str) -> tuple[bytes, Graph, dict | None]:
    """A compiled OUT directory (its model.tflite and report.json) or a model file."""
    p = Path(path)
    if p.is_dir() and (p / "model.tflite").is_file():
        report = None
        if (p / "report.json").is_file():
            try:
                report = json.loads((p / "report.json").read_text())
            except ValueError:
                report = None
        loaded = load_model(str(p / "model.tflite"))
        return loaded.tflite, loaded.graph, report
    loaded = load_model(path)
    return loaded.tflite, loaded.graph, None


def eval(model_or_out, data, *, reference_model=None, artifact: str | None = None, per_layer: bool = False) -> dict:
    """Accuracy of a model or compiled OUT on D.npz, and its output error against the float model
    (the report's source model for an OUT, or `reference_model`). An OUT with a C project is
    evaluated through the C artifact built for the host unless artifact="tflite"."""
    from .evaluate import evaluate
    tflite, g, report = resolve_artifact(os.fspath(model_or_out))
    has_c = Path(model_or_out, "c", "model.c").is_file()
    artifact = artifact or ("c" if has_c else "tflite")
    if artifact not in ("c", "tflite"):
        raise EdgecError(f"unknown artifact {artifact!r}; choose c or tflite")
    if artifact == "c" and not has_c:
        raise EdgecError(f"{model_or_out}: has no C project (compile with --emit c)")
    ds = _data(data, "data")
    ref = reference_model or (report or {}).get("model")
    float_tfl = float_graph = None
    if ref and ref != os.fspath(model_or_out) and os.path.exists(ref):
        loaded = load_model(ref)
        float_tfl, float_graph = loaded.tflite, loaded.graph
    runner = host_model(model_or_out, g).run if artifact == "c" else None
    res = evaluate(tflite, g, ds, float_tfl, float_graph, runner=runner)
    res["artifact"] = artifact
    if per_layer:
        if float_graph is None:
            raise EdgecError("--per-layer needs the float model: evaluate a compiled OUT, or give --reference")
        from .data import model_inputs
        from .layer_error import layer_errors
        from .passes import Pipeline
        cleaned, _ = Pipeline(recipe_steps("float")).run(float_graph.copy())
        res["layers"] = layer_errors(cleaned, g, model_inputs(ds, cleaned), model_inputs(ds, g))
    return res


def host_model(out, g: Graph | None = None, opt: str = "-O2"):
    """The C project of a compiled OUT, built for this machine and loaded (see run/host.py)."""
    import re
    from .run.host import load_host, read_project
    files = read_project(Path(out, "c"))
    m = re.search(rb"#define MODEL_ARENA_SIZE (\d+)", files["model.h"])
    if g is None:
        g = resolve_artifact(os.fspath(out))[1]
    return load_host(files, g, int(m.group(1)), opt=opt)


def run(out, data, *, bench: bool = False, iters: int = 200) -> dict:
    """Run OUT's C artifact on the host over every sample of `data`: raw and dequantized outputs;
    with bench, per-inference latency measured inside C over `iters` runs."""
    import numpy as np
    from .data import model_inputs
    from .evaluate import float_outputs
    _, g, _ = resolve_artifact(os.fspath(out))
    model = host_model(out, g)
    ds = _data(data, "data")
    xs = model_inputs(ds, g)
    if bench:
        us = model.bench(xs, iters=iters)
        return {"median_us": round(float(np.median(us)), 3), "p10_us": round(float(np.percentile(us, 10)), 3),
                "p90_us": round(float(np.percentile(us, 90)), 3), "min_us": round(float(us.min()), 3),
                "iterations": iters}
    raw = model.run(xs)
    return {"y_q": raw, "y": float_outputs(g, raw)}


def _profile_inputs(g: Graph, data) -> list:
    """One sample per input, in the model's dtypes: the first of `data`, else seeded random values
    (instruction counts depend on shapes, hardly on values)."""
    import numpy as np
    from .data import model_inputs
    if data is not None:   # model_inputs gives [1, ...]: each input's own (batch-1) shape
        return model_inputs(_data(data, "data").head(1), g)
    rng = np.random.default_rng(0)
    xs = []
    for n in g.inputs:
        t = g.tensors[n]
        if t.dtype.startswith("float"):
            xs.append(rng.standard_normal(t.shape).astype(t.dtype))
        else:
            info = np.iinfo(t.dtype)
            xs.append(rng.integers(info.min, info.max + 1, t.shape).astype(t.dtype))
    return xs


def profile(model_or_out, target: str, *, data=None, max_flash=None, max_ram=None, max_latency_ms=None,
            iters: int = 200, progress=None) -> dict:
    """Flash, RAM, instructions, latency and energy of a compiled OUT (or a model, compiled here) on
    `target`, per layer and in total; updates OUT/report.json and report.html. Emulated targets
    give exact instruction counts and estimated cycles/latency/energy; the host target measures.
    Over a budget (the target's memories, or the limits given): BudgetError, exit code 3."""
    from .targets import load_target

    tgt = load_target(target)
    out = Path(model_or_out)
    if not (out.is_dir() and (out / "c" / "model.c").is_file()):
        if out.is_dir() and (out / "model.tflite").is_file():
            raise EdgecError(f"{out}: has no C project; compile it with --emit tflite,c --target {target}")
        tmp = Path(tempfile.mkdtemp(prefix="edgec-profile-"))
        try:
            compile(model_or_out, tmp / "out", emit=("tflite", "c"), target=target)
            return _profile_out(tmp / "out", tgt, data, dict(max_flash=max_flash, max_ram=max_ram,
                                                            max_latency_ms=max_latency_ms), iters, write=False)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return _profile_out(out, tgt, data, dict(max_flash=max_flash, max_ram=max_ram, max_latency_ms=max_latency_ms),
                        iters, write=True)


def _profile_out(out: Path, tgt, data, limits: dict, iters: int, write: bool) -> dict:
    import numpy as np
    from .budgets import enforce
    from .ir.interpret import run as reference_run
    from .profile.emulated import build_firmware, parse_arena, profile_elf
    from .profile.html import render_html

    tflite, g, report = resolve_artifact(os.fspath(out))
    if report is None:
        raise EdgecError(f"{out}: no report.json; recompile it with edgec compile")
    t = report["totals"]
    arena = parse_arena((out / "c" / "model.h").read_bytes())
    inputs = _profile_inputs(g, data)
    order = (report.get("memory_plan") or {}).get("order") or [op.name for op in g.ops]
    rows = {r["name"]: r for r in report["layers"]}
    files: dict[str, bytes] = {}
    if tgt.is_host:
        us = host_model(out, g, opt="-O3").bench(inputs, iters=iters)
        t.update(latency_ms=round(float(np.median(us)) / 1000, 6), latency_is_estimate=False, ram_bytes=arena)
        report["profile"] = {"target": tgt.name, "measured": "median of %d runs timed inside C" % iters,
                             "p10_ms": round(float(np.percentile(us, 10)) / 1000, 6),
                             "p90_ms": round(float(np.percentile(us, 90)) / 1000, 6)}
    else:
        prof = profile_elf(build_firmware(out / "c", g, tgt), g, tgt, inputs)
        try:
            want, against = host_model(out, g).run(inputs), "host C build"
        except EdgecError:   # kernels for another ISA (NEON) do not build here
            want, against = reference_run(g, inputs), "reference interpreter"
        equal = all(np.array_equal(a.reshape(-1), np.asarray(b).reshape(-1)) for a, b in zip(prof.outputs, want))
        if not equal:
            raise EdgecError(f"the emulated {tgt.emulator} outputs differ from the {against}'s")
        pj = (tgt.power or {}).get("pj_per_cycle")
        t.update(instructions=prof.instructions, cycles_est=int(round(prof.cycles)),
                 latency_ms=round(prof.cycles / tgt.clock_hz * 1000, 6), latency_is_estimate=True,
                 energy_uj_est=None if pj is None else round(prof.cycles * pj * 1e-6, 3),
                 flash_bytes=prof.flash_bytes, ram_bytes=prof.static_ram_bytes + prof.stack_bytes, arena_bytes=arena)
        for r in report["layers"]:
            r.update(instructions=None, cycles_est=None, energy_uj_est=None)
        for k, n in prof.layer_instructions.items():
            r = rows.get(order[k]) if k < len(order) else None
            if r is not None:
                cyc = prof.layer_cycles[k]
                r.update(instructions=n, cycles_est=int(round(cyc)),
                         energy_uj_est=None if pj is None else round(cyc * pj * 1e-6, 4))
        report["profile"] = {
            "target": tgt.name, "emulator": f"unicorn {tgt.emulator}", "clock_hz": tgt.clock_hz,
            "cycle_model": tgt.cycles.get("source", ""), "power_model": (tgt.power or {}).get("source"),
            "stack_bytes": prof.stack_bytes, "static_ram_bytes": prof.static_ram_bytes,
            "sections": prof.sections, "instruction_classes": prof.classes,
            "outputs_checked_against": against, "outputs_equal": equal,
            "estimated": ["cycles_est", "latency_ms", "energy_uj_est"]}
        files["firmware.elf"] = prof.elf.read_bytes()
        report["artifacts"]["elf"] = "firmware.elf"
    report["target"] = tgt.name
    if write:
        files["report.json"] = dumps_report(report)
        files["report.html"] = render_html(report).encode()
        write_outputs(out, files)
    try:
        enforce(t, tgt, **limits)
    except Exception as e:
        e.report = report   # the CLI still shows what was measured
        raise
    return report
