"""report.json (the fixed schema in ARCHITECTURE.md) and its terminal view."""
from __future__ import annotations

from ..ir import Graph
from ..ir import ops as opreg


def layer_rows(g: Graph, stored: dict[str, int] | None = None) -> list[dict]:
    """Per-op figures; `stored` (op -> bytes, from the C backend) replaces the IR's count of weight
    bytes with what the deployed C artifact holds (packed, sparse, entropy-coded or re-laid out)."""
    rows = []
    for op in g.ops:
        ins = [g.t(i) for i in op.inputs]
        outs = [g.tensors[o] for o in op.outputs]
        d = opreg.get(op.type)
        rows.append({
            "name": op.name, "op": op.type,
            "macs": int(d.macs(op, ins, outs)),
            "weight_bytes": int(stored.get(op.name, 0)) if stored is not None else
            int(sum(t.nbytes for k, t in enumerate(ins) if t is not None and t.is_const and k not in d.int_operands)),
            "activation_bytes": int(sum(t.nbytes for t in outs)),
            "instructions": None, "cycles_est": None, "energy_uj_est": None,
        })
    return rows


def params(g: Graph) -> int:
    return int(sum(t.size for t in g.weights() if t.dtype != "int32" or t.quant is not None))


def build_report(model: str, target: str | None, recipe: list[str], float_graph: Graph, g: Graph,
                 tflite_bytes: int | None, passes: list[dict], evaluation: dict | None,
                 artifacts: dict, stored_weight_bytes: dict[str, int] | None = None) -> dict:
    rows = layer_rows(g, stored_weight_bytes)
    ev = evaluation or {}
    return {
        "model": model, "target": target, "recipe": recipe,
        "totals": {
            "params": params(float_graph),
            "macs": int(sum(r["macs"] for r in rows)),
            "float_bytes": int(sum(t.size * 4 for t in float_graph.weights() if t.dtype.startswith("float"))),
            "weight_bytes": int(sum(r["weight_bytes"] for r in rows)),
            "tflite_bytes": tflite_bytes, "flash_bytes": None, "arena_bytes": None, "ram_bytes": None,
            "instructions": None, "cycles_est": None, "latency_ms": None, "latency_is_estimate": False,
            "energy_uj_est": None,
            "accuracy": ev.get("accuracy"), "float_accuracy": ev.get("float_accuracy"),
        },
        "evaluation": evaluation,
        "passes": passes,
        "layers": rows,
        "artifacts": artifacts,
    }


def _fmt_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} B"


def print_summary(report: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table
    console = console or Console(stderr=False)
    t = report["totals"]
    table = Table(title=f"edgec: {report['model']}", title_justify="left")
    table.add_column("")
    table.add_column("float", justify="right")
    table.add_column("compiled", justify="right")
    table.add_column("ratio", justify="right")
    ratio = t["float_bytes"] / t["weight_bytes"] if t["weight_bytes"] else float("nan")
    table.add_row("weights", _fmt_bytes(t["float_bytes"]), _fmt_bytes(t["weight_bytes"]), f"{ratio:.2f}x")
    table.add_row("model file", "", _fmt_bytes(t["tflite_bytes"]), "")
    if t["arena_bytes"] is not None:
        table.add_row("arena (C)", "", _fmt_bytes(t["arena_bytes"]), "")
    table.add_row("params / MACs", f"{t['params']:,}", f"{t['macs']:,} MACs", "")
    if t["accuracy"] is not None:
        fa = t["float_accuracy"]
        table.add_row("accuracy", "-" if fa is None else f"{100 * fa:.2f}%", f"{100 * t['accuracy']:.2f}%",
                      "" if fa is None else f"{100 * (t['accuracy'] - fa):+.2f} pt")
    ev = report.get("evaluation") or {}
    if "output_rmse" in ev:
        table.add_row("output error", "", f"rmse {ev['output_rmse']:.4g}", f"top-1 agree {100 * ev.get('top1_agreement', float('nan')):.1f}%")
    console.print(table)
    console.print(f"passes: {' → '.join(report['recipe']) or 'none'}")


def print_profile(report: dict, console=None) -> None:
    """Per-layer instructions, cycles and energy, then the totals; estimates say so."""
    from rich.console import Console
    from rich.table import Table
    console = console or Console()
    t = report["totals"]
    est = t.get("latency_is_estimate")
    table = Table(title=f"{report['model']} on {report.get('target')}", title_justify="left")
    for col in ("#", "layer", "op", "MACs", "instructions", "cycles (est.)", "share", "energy µJ (est.)"):
        table.add_column(col, justify="left" if col in ("layer", "op") else "right")
    total_cycles = t.get("cycles_est") or 0
    for k, r in enumerate(report["layers"]):
        cyc = r.get("cycles_est")
        table.add_row(str(k), r["name"], r["op"], f"{r['macs']:,}",
                      "-" if r.get("instructions") is None else f"{r['instructions']:,}",
                      "-" if cyc is None else f"{cyc:,}",
                      "-" if not cyc or not total_cycles else f"{100 * cyc / total_cycles:.1f}%",
                      "-" if r.get("energy_uj_est") is None else f"{r['energy_uj_est']:.2f}")
    console.print(table)
    lat = t.get("latency_ms")
    parts = [f"flash {_fmt_bytes(t.get('flash_bytes'))}", f"RAM {_fmt_bytes(t.get('ram_bytes'))}",
             f"arena {_fmt_bytes(t.get('arena_bytes'))}"]
    if t.get("instructions") is not None:
        parts.append(f"{t['instructions']:,} instructions")
    if lat is not None:
        parts.append(f"latency {lat:.3f} ms ({'estimated' if est else 'measured'})")
    if t.get("energy_uj_est") is not None:
        parts.append(f"energy {t['energy_uj_est']:.1f} µJ (estimated)")
    console.print("total: " + ", ".join(parts))
    prof = report.get("profile") or {}
    if prof.get("cycle_model"):
        console.print(f"cycle model: {prof['cycle_model']}")
