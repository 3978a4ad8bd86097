"""The edgec command line. Each command calls edgec.api; user mistakes exit 2 with one line."""
from __future__ import annotations

import json
import os
import sys

import click

from .errors import EdgecError

QUANTIZE = ("int8", "int16x8", "float16", "int4", "int3", "int2", "ternary", "binary")


def _console(stderr: bool = False):
    """A rich console; 120 columns when the output is not a terminal (logs, pipes)."""
    from rich.console import Console
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 120)


def _progress(label, items):
    """A rich progress bar on stderr for interactive use; silent when stderr is not a terminal."""
    if not sys.stderr.isatty():
        return items
    from rich.progress import track
    return track(items, description=label, console=_console(stderr=True), transient=True)


def _budget_options(fn):
    for opt in reversed([
            click.option("--max-flash", help="Fail (exit 3) above this flash size, e.g. 256K."),
            click.option("--max-ram", help="Fail (exit 3) above this RAM size, e.g. 64K."),
            click.option("--max-latency", help="Fail (exit 3) above this latency, e.g. 50ms.")]):
        fn = opt(fn)
    return fn


def _limits(max_flash, max_ram, max_latency) -> dict:
    from .budgets import parse_latency_ms, parse_size
    return {"max_flash": None if max_flash is None else parse_size(max_flash),
            "max_ram": None if max_ram is None else parse_size(max_ram),
            "max_latency_ms": None if max_latency is None else parse_latency_ms(max_latency)}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and verify the graph between passes.")
@click.pass_context
def cli(ctx, debug):
    """edgec: compile trained models for phones and microcontrollers."""
    ctx.obj = {"debug": debug}


@cli.command()
@click.argument("model")
@click.option("--json", "as_json", is_flag=True, help="Print the layers as JSON.")
@click.option("--unsafe", is_flag=True, help="Load .keras files with safe_mode off.")
def inspect(model, as_json, unsafe):
    """Ops, shapes, params, MACs and bytes of MODEL, per layer."""
    from .api import load
    from .profile.report import layer_rows, params
    g = load(model, unsafe).graph
    rows = layer_rows(g)
    for r, op in zip(rows, g.ops):
        r["inputs"] = [list(g.tensors[i].shape) for i in op.inputs if i is not None and not g.tensors[i].is_const]
        r["outputs"] = [list(g.tensors[o].shape) for o in op.outputs]
    if as_json:
        click.echo(json.dumps({"model": model, "params": params(g), "macs": sum(r["macs"] for r in rows),
                               "inputs": {n: list(g.tensors[n].shape) for n in g.inputs},
                               "outputs": {n: list(g.tensors[n].shape) for n in g.outputs},
                               "layers": rows}, indent=2))
        return
    from rich.table import Table
    table = Table(title=f"{model}: {len(g.ops)} ops, {params(g):,} params", title_justify="left")
    for col in ("#", "name", "op", "in", "out", "MACs", "weights"):
        table.add_column(col, justify="right" if col in ("#", "MACs", "weights") else "left")
    for k, r in enumerate(rows):
        table.add_row(str(k), r["name"], r["op"], " ".join("x".join(map(str, s)) for s in r["inputs"]),
                      " ".join("x".join(map(str, s)) for s in r["outputs"]), f"{r['macs']:,}", f"{r['weight_bytes']:,}")
    _console().print(table)


@cli.command()
@click.argument("model")
@click.option("-o", "--out", required=True, help="Output directory (written atomically).")
@click.option("--quantize", type=click.Choice(QUANTIZE), help="Quantize to this precision.")
@click.option("--recipe", help="A named recipe or a recipe TOML file.")
@click.option("--calibration", type=click.Path(), help="Calibration data (.npz with x, optional y).")
@click.option("--calibration-method", type=click.Choice(["minmax", "percentile", "mse"]),
              help="How activation ranges are chosen (default minmax).")
@click.option("--scheme", type=click.Choice(["uniform", "pow2", "kmeans"]), help="Weight levels (default uniform).")
@click.option("--granularity", help="Weight scales per tensor, per channel, or per group of N weights of a row: tensor|channel|group:N (default channel).")
@click.option("--rounding", type=click.Choice(["nearest", "stochastic"]), help="Weight rounding (default nearest).")
@click.option("--no-loss-aware", "plain", is_flag=True,
              help="Plain round-to-nearest: no GPTQ error feedback, no bias correction.")
@click.option("--qat", is_flag=True, help="Quantization-aware training before quantizing (needs --train-data).")
@click.option("--train-data", type=click.Path(), help="Training data for --qat and for --prune, --factorize, --cluster and --share fine-tuning (.npz with x, y).")
@click.option("--epochs", type=int, help="Epochs of --qat training and of --prune, --factorize, --cluster and --share fine-tuning (defaults 10, 10, 5, 5, 10).")
@click.option("--prune", "prune", type=float, help="Prune this fraction of the weights, e.g. 0.9 (fine-tunes on --train-data).")
@click.option("--prune-granularity", help="What one pruning decision removes: weight|block:RxC|nm:N:M (default weight).")
@click.option("--prune-schedule", type=click.Choice(["oneshot", "iterative", "gradual", "dsd"]),
              help="How sparsity is reached while fine-tuning (default gradual).")
@click.option("--prune-criterion", type=click.Choice(["magnitude", "l2", "taylor"]),
              help="Which weights go first (default magnitude).")
@click.option("--prune-structured", help="Remove channels, attention heads or layers: channels:F|heads:F|layers:N.")
@click.option("--factorize", help="Low-rank factorization: svd:0.9 (energy kept) | svd:rank=16 | svd:params=0.5 | "
                                  "tucker:0.5 | tucker:macs=0.6 | cp:rank=8 | svd+tucker:params=0.4 (docs/factorize.md).")
@click.option("--cluster", "cluster", type=int, help="Weight clustering: K shared values (2..256) per channel or "
                                                     "tensor, centroids fine-tuned on --train-data, stored as a K-entry "
                                                     "int8 codebook (docs/deep_compression.md).")
@click.option("--cluster-granularity", type=click.Choice(["channel", "tensor"]),
              help="One codebook per output channel or per tensor (default channel).")
@click.option("--cluster-init", type=click.Choice(["linear", "kmeans++", "density"]),
              help="Centroid initialisation before k-means (default linear).")
@click.option("--share", help="Parameter sharing: tie:BOUND (tie same-shaped weights within that relative distance) | "
                              "hash:Rx[:tensor|row|blockN] (HashedNets, R times fewer FULLY_CONNECTED weights).")
@click.option("--eval-data", type=click.Path(), help="Held-out data (.npz with x, y) to measure accuracy.")
@click.option("--io", type=click.Choice(["int", "float"]), help="Integer (default) or float model inputs/outputs.")
@click.option("--emit", default="tflite", show_default=True, help="Artifacts to write, comma-separated.")
@click.option("--tflite-sparse", is_flag=True, help="Store pruned weights in model.tflite in TFLite's sparse "
                                                   "format where LiteRT's kernels run it; not for TFLite Micro.")
@click.option("--target", help="Target name (see `edgec targets`).")
@click.option("--entropy", type=click.Choice(["off", "init", "layer"]),
              help="rANS-code the C project's weight arrays in flash: init = decode once into RAM at start-up; "
                   "layer = decode each layer's arrays into one shared buffer before it runs (less RAM, decode "
                   "cost on every inference). Default: the recipe's [emit] entropy, else off.")
@click.option("--kernels", help="C kernel variants in preference order, e.g. ref or cmsis,ref (default: the target's).")
@click.option("--unsafe", is_flag=True, help="Load .keras files with safe_mode off.")
@click.option("--json", "as_json", is_flag=True, help="Print report.json instead of the summary.")
@_budget_options
@click.pass_context
def compile(ctx, model, out, quantize, recipe, calibration, calibration_method, scheme, granularity, rounding, plain,
            qat, train_data, epochs, prune, prune_granularity, prune_schedule, prune_criterion, prune_structured,
            factorize, cluster, cluster_granularity, cluster_init, share, eval_data, io, emit, target, entropy, kernels,
            unsafe, as_json, max_flash, max_ram, max_latency, tflite_sparse):
    """Compile MODEL into OUT (model.tflite, report.json, report.html; c/ with --emit c)."""
    from . import api
    from .profile.report import print_summary
    limits = _limits(max_flash, max_ram, max_latency)
    report = api.compile(model, out, quantize=quantize, recipe=recipe, calibration=calibration,
                         calibration_method=calibration_method, eval_data=eval_data, io=io,
                         emit=tuple(e.strip() for e in emit.split(",") if e.strip()), target=target,
                         unsafe=unsafe, debug=ctx.obj["debug"], progress=_progress,
                         kernels=tuple(k.strip() for k in kernels.split(",")) if kernels else None,
                         quantize_opts=api.quantize_options(scheme, granularity, rounding, False if plain else None),
                         qat=qat, train_data=train_data, epochs=epochs,
                         prune_opts=api.prune_options(prune, prune_granularity, prune_schedule, prune_criterion),
                         prune_structured=prune_structured, factorize=factorize, entropy=entropy,
                         cluster_opts=api.cluster_options(cluster, cluster_granularity, cluster_init), share=share,
                         tflite_sparse=tflite_sparse, **limits)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        print_summary(report, _console())
        _print_pruning(report, _console())
        _print_savings(report, _console())
        wrote = [os.path.join(out, "model.tflite")] + ([os.path.join(out, "c") + "/"] if report["artifacts"]["c"] else [])
        click.echo(f"wrote {', '.join(wrote)} and {os.path.join(out, 'report.json')}")


def _print_pruning(report: dict, console) -> None:
    """Per pruned layer: pattern, params, non-zeros, sparsity; and the held-out accuracy around it."""
    for p in report["passes"]:
        if not p.get("prune_layers"):
            continue
        from rich.table import Table
        table = Table(title=f"{p['name']} ({p.get('prune_schedule')}, {p.get('prune_epochs')} epochs): "
                            f"{100 * p['prune_sparsity']:.1f}% of {p['prune_params']:,} weights removed",
                      title_justify="left")
        for col in ("layer", "pattern", "params", "non-zero", "sparsity"):
            table.add_column(col, justify="left" if col in ("layer", "pattern") else "right")
        for r in p["prune_layers"]:
            table.add_row(r["layer"], r["pattern"], f"{r['params']:,}", f"{r['nonzero']:,}", f"{100 * r['sparsity']:.1f}%")
        console.print(table)
        if p.get("prune_accuracy_before") is not None:
            console.print(f"float accuracy on the {p['prune_accuracy_on']} data: {100 * p['prune_accuracy_before']:.2f}% "
                          f"dense -> {100 * p['prune_accuracy_after']:.2f}% pruned and fine-tuned")


def _print_savings(report: dict, console) -> None:
    """Where the weight bytes went: each compression pass's IR bytes before / after (and what it did), then
    the C backend's storage (packing, sparse formats, hashing, entropy coding); shown when any step saved."""
    notes = {"prune_weights": lambda p: f"{100 * p['prune_sparsity']:.1f}% zeros" if "prune_sparsity" in p else "",
             "cluster_weights": lambda p: f"{p['clustered_layers']} layers clustered" if p.get("clustered_layers") else "",
             "share_weights": lambda p: (f"{p['hashed_params']:,} weights hashed into {p['hashed_stored_params']:,}"
                                         if p.get("hashed_layers") else
                                         f"{p.get('params_shared_away', 0):,} params tied away" if p.get("tied_groups") else ""),
             "factorize": lambda p: f"{p['params_before']:,} -> {p['params_after']:,} params" if "params_after" in p else ""}
    rows = [(p["name"], p["weight_bytes_before"], p["weight_bytes_after"], notes.get(p["name"], lambda p: "")(p))
            for p in report["passes"]]
    rows = [r for r in rows if r[1] != r[2] or r[3]]
    t = report["totals"]
    ir = report["passes"][-1]["weight_bytes_after"] if report["passes"] else t["float_bytes"]
    if report["artifacts"].get("c") and t["weight_bytes"] != ir:
        e = report.get("entropy")
        rows.append(("C backend", ir, t["weight_bytes"], "packed / sparse / hashed" +
                     (f", rANS ({e['mode']}: {e['ram_bytes']:,} B of RAM decoded)" if e and e["arrays_coded"] else "")))
    if len(rows) < 2:
        return
    from rich.table import Table
    table = Table(title="where the weight bytes went", title_justify="left")
    for col in ("step", "before", "after", ""):
        table.add_column(col, justify="right" if col in ("before", "after") else "left")
    for name, before, after, note in rows:
        table.add_row(name, f"{before:,}", f"{after:,}", note)
    console.print(table)


@cli.command()
@click.argument("model")
@click.option("--data", required=True, type=click.Path(), help="Data (.npz with x, and y for accuracy).")
@click.option("--sensitivity", type=click.Choice(["prune"]), default="prune", show_default=True,
              help="What to sweep per layer.")
@click.option("--target-sparsity", type=float, help="Choose per-layer sparsities meeting this global fraction, "
                                                    "written as OUT/prune_recipe.toml.")
@click.option("-o", "--out", help="Write sensitivity.json, sensitivity.svg (and prune_recipe.toml) here.")
@click.option("--prune-granularity", default="weight", show_default=True, help="weight|block:RxC|nm:N:M.")
@click.option("--prune-criterion", type=click.Choice(["magnitude", "l2", "taylor"]), default="magnitude",
              show_default=True)
@click.option("--sparsities", help="Comma-separated sweep (default 0,0.1,...,0.9,0.95).")
@click.option("--quantize", type=click.Choice(QUANTIZE), help="The recipe written prunes, then quantizes to this.")
@click.option("--unsafe", is_flag=True, help="Load .keras files with safe_mode off.")
@click.option("--json", "as_json", is_flag=True, help="Print the curves as JSON.")
def analyze(model, data, sensitivity, target_sparsity, out, prune_granularity, prune_criterion, sparsities,
            quantize, unsafe, as_json):
    """Per-layer pruning sensitivity of MODEL on D.npz: accuracy against each layer's sparsity."""
    from . import api
    sweep = None
    if sparsities:
        try:
            sweep = [float(v) for v in sparsities.split(",") if v.strip()]
        except ValueError:
            raise EdgecError(f"--sparsities {sparsities!r}: comma-separated numbers, e.g. 0,0.5,0.9") from None
    res = api.analyze(model, data, sensitivity=sensitivity, target_sparsity=target_sparsity, out=out,
                      granularity=prune_granularity, criterion=prune_criterion, sparsities=sweep,
                      quantize=quantize, unsafe=unsafe, progress=_progress)
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    from rich.table import Table
    alloc = res.get("allocation")
    table = Table(title=f"{res['model']}: {res['metric']} when one layer is pruned ({res['granularity']}, "
                        f"{res['criterion']}, no fine-tuning; {res['samples']} samples, unpruned "
                        f"{100 * res['baseline']:.2f}%)", title_justify="left")
    table.add_column("layer")
    table.add_column("params", justify="right")
    for s in res["sparsities"][1:]:
        table.add_column(f"{s:g}", justify="right")
    if alloc:
        table.add_column(f"for {alloc['target']:g}", justify="right")
    for r in res["layers"]:
        cells = [f"{100 * v:.1f}" for v in r["curve"][1:]]
        table.add_row(r["layer"], f"{r['params']:,}", *cells, *([f"{alloc['layers'][r['layer']]:.3f}"] if alloc else []))
    _console().print(table)
    if alloc:
        click.echo(f"per-layer sparsities remove {100 * alloc['achieved']:.2f}% of the weights; estimated "
                   f"{res['metric']} drop before fine-tuning {100 * alloc['estimated_drop']:.2f} points")
    if res.get("files"):
        click.echo("wrote " + ", ".join(res["files"].values())
                   + (f"; compile with --recipe {res['files']['prune_recipe.toml']} --train-data D.npz"
                      if "prune_recipe.toml" in res["files"] else ""))
    elif alloc:
        click.echo("give -o OUT to write the recipe")


@cli.command()
@click.argument("teachers", nargs=-1, required=True)
@click.option("-o", "--out", required=True, help="Output directory: student.keras, model.tflite, report.json.")
@click.option("--train-data", type=click.Path(), help="Training data (.npz with x, and y unless teacher labels only).")
@click.option("--unlabeled", type=click.Path(), help="More inputs (.npz with x) that the teacher labels.")
@click.option("--val-data", type=click.Path(), help="Held-out data (.npz with x, y) for the accuracies reported.")
@click.option("--student", help="The student model to train (default: derived from the teacher).")
@click.option("--derive", help="Derive the student from the teacher: width=0.5,depth=-2 (default width=0.5).")
@click.option("--loss", type=click.Choice(["kd", "mse", "hints", "labels"]), default="kd", show_default=True,
              help="What to mimic: softened probabilities, logits, features; labels = the labels-only baseline.")
@click.option("--temperature", type=float, default=4.0, show_default=True)
@click.option("--alpha", type=float, default=0.9, show_default=True, help="Weight of the teacher's signal vs labels.")
@click.option("--epochs", type=int, default=15, show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--lr", type=float, default=5e-3, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--augment", help="noise, shift, mixup, or a comma list.")
@click.option("--assistant", is_flag=True, help="Teacher -> assistant (derived at an intermediate size) -> student.")
@click.option("--mutual", type=int, default=0, help="Deep mutual learning among K >= 2 students.")
@click.option("--hint", "hints", multiple=True, help="Feature hint TEACHER_TENSOR:STUDENT_TENSOR (repeatable).")
@click.option("--unsafe", is_flag=True, help="Load .keras files with safe_mode off.")
@click.option("--json", "as_json", is_flag=True, help="Print report.json instead of the summary.")
def distill(teachers, out, train_data, unlabeled, val_data, student, derive, loss, temperature, alpha, epochs,
            batch_size, lr, seed, augment, assistant, mutual, hints, unsafe, as_json):
    """Train a small student to mimic TEACHERS (several: an averaged ensemble) into OUT."""
    from .distill import distill as run_distill
    from .profile.report import print_summary
    report = run_distill(list(teachers) if len(teachers) > 1 else teachers[0], out, train_data=train_data,
                         student=student, derive=derive, loss=loss, temperature=temperature, alpha=alpha,
                         epochs=epochs, seed=seed, unlabeled=unlabeled, augment=augment, assistant=assistant,
                         mutual=mutual, hints=list(hints) or None, val_data=val_data, progress=_progress,
                         batch_size=batch_size, lr=lr, unsafe=unsafe)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        print_summary(report, _console())
        click.echo(f"wrote {os.path.join(out, 'student.keras')}, {os.path.join(out, 'model.tflite')} and "
                   f"{os.path.join(out, 'report.json')}")


@cli.command("eval")
@click.argument("model_or_out")
@click.option("--data", required=True, type=click.Path(), help="Data (.npz with x, optional y).")
@click.option("--reference", help="The float model to compare outputs with (default: the OUT's source model).")
@click.option("--artifact", type=click.Choice(["c", "tflite"]),
              help="Which artifact of OUT to evaluate (default: c when OUT has one).")
@click.option("--per-layer", is_flag=True, help="Also the SNR/MSE of each quantized tensor against float.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def eval_cmd(model_or_out, data, reference, artifact, per_layer, as_json):
    """Accuracy of MODEL_OR_OUT on D.npz, and output error against the float model."""
    from . import api
    res = api.eval(model_or_out, data, reference_model=reference, artifact=artifact, per_layer=per_layer)
    if as_json:
        click.echo(json.dumps(res, indent=2))
        return
    layers = res.pop("layers", None)
    if layers:
        from rich.table import Table
        table = Table(title="quantization error per tensor (reference interpreter, vs float)", title_justify="left")
        for col in ("layer", "tensor", "SNR dB", "MSE", "max |err|"):
            table.add_column(col, justify="right" if col in ("SNR dB", "MSE", "max |err|") else "left")
        for r in layers:   # tensor names are in --json; a person needs the layer and what kind
            table.add_row(r["op"], r["kind"], f"{r['snr_db']:.1f}", f"{r['mse']:.3g}", f"{r['max_abs_error']:.3g}")
        _console().print(table)
    for k, v in res.items():
        if v is not None:
            click.echo(f"{k:22s} {100 * v:.2f}%" if k.endswith(("accuracy", "agreement")) else f"{k:22s} {v}")


@cli.command()
@click.argument("model_or_out")
@click.option("--target", required=True, help="Target name (see `edgec targets`).")
@click.option("--data", type=click.Path(), help="Profile on the first sample of this .npz (default: random).")
@click.option("--json", "as_json", is_flag=True, help="Print report.json on stdout.")
@_budget_options
def profile(model_or_out, target, data, as_json, max_flash, max_ram, max_latency):
    """Flash, RAM, latency and energy of MODEL_OR_OUT on TARGET, per layer and in total."""
    from . import api
    from .budgets import BudgetError
    try:
        report = api.profile(model_or_out, target, data=data, **_limits(max_flash, max_ram, max_latency))
        failure = None
    except BudgetError as e:
        report, failure = getattr(e, "report", None), e
    if report is not None:
        if as_json:
            click.echo(json.dumps(report, indent=2))
        else:
            from .profile.report import print_profile
            print_profile(report, _console())
    if failure is not None:
        raise failure


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print the targets as JSON.")
def targets(as_json):
    """The targets edgec knows, with their memories, clock and kernels."""
    from dataclasses import asdict
    from rich.table import Table
    from .targets import list_targets
    ts = list_targets()
    if as_json:
        click.echo(json.dumps([asdict(t) for t in ts], indent=2))
        return
    table = Table(title="targets", title_justify="left")
    for col in ("name", "description", "ISA", "clock", "flash", "RAM", "kernels"):
        table.add_column(col, justify="right" if col in ("clock", "flash", "RAM") else "left")
    kb = lambda n: "-" if n is None else f"{n // 1024:,} KB"  # noqa: E731
    for t in ts:
        table.add_row(t.name, t.description, t.isa, f"{t.clock_hz / 1e6:g} MHz" if t.clock_hz else "-",
                      kb(t.memory_bytes("flash")), kb(t.memory_bytes("ram")), ", ".join(t.kernels))
    _console().print(table)


@cli.command("run")
@click.argument("out")
@click.option("--data", required=True, type=click.Path(), help="Inputs (.npz with x; integer x is taken as quantized).")
@click.option("-o", "--output", "preds", type=click.Path(), help="Write y (dequantized) and y_q (raw) here (.npz).")
@click.option("--bench", is_flag=True, help="Time inferences inside C instead (median and spread).")
@click.option("--iters", default=200, show_default=True, help="Timed runs for --bench.")
@click.option("--json", "as_json", is_flag=True, help="Print --bench results as JSON.")
def run_cmd(out, data, preds, bench, iters, as_json):
    """Build OUT's C project for this machine and run it on D.npz."""
    from . import api
    if bench:
        res = api.run(out, data, bench=True, iters=iters)
        if as_json:
            click.echo(json.dumps(res))
        else:
            click.echo(f"median {res['median_us']:.1f} us per inference (p10 {res['p10_us']:.1f}, "
                       f"p90 {res['p90_us']:.1f}, {iters} runs, measured in C)")
        return
    if not preds:
        raise EdgecError("give -o PREDS.npz for the outputs, or --bench")
    res = api.run(out, data)
    import numpy as np
    arrays = ({"y": res["y"][0], "y_q": res["y_q"][0]} if len(res["y"]) == 1 else
              {**{f"y{k}": y for k, y in enumerate(res["y"])}, **{f"y_q{k}": y for k, y in enumerate(res["y_q"])}})
    tmp = preds + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, preds)
    click.echo(f"wrote {preds}: {len(res['y'][0])} samples")


def main(argv=None) -> int:
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="edgec", standalone_mode=False)
        return 0
    except click.exceptions.Abort:
        click.echo("edgec: aborted", err=True)
        return 130
    except click.exceptions.ClickException as e:  # usage errors: unknown option, bad choice, ...
        if debug:
            raise
        click.echo(f"edgec: error: {e.format_message().splitlines()[0]}", err=True)
        return 2
    except EdgecError as e:
        if debug:
            raise
        click.echo(f"edgec: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", err=True)
        return getattr(e, "exit_code", 2)
    except click.exceptions.Exit as e:
        return e.exit_code
    except Exception as e:
        if debug:
            raise
        click.echo(f"edgec: internal error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
                   f"(rerun with --debug for the traceback)", err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
