"""report.html: a self-contained page (inline CSS and SVG, no scripts, no network) with the
summary, per-layer cost bars, the arena timeline, and what each pass did to size."""
from __future__ import annotations

import html

PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
           "#9c755f", "#bab0ac"]


def _e(s) -> str:
    return html.escape(str(s), quote=True)


def _fmt_bytes(n) -> str:
    if n is None:
        return "–"
    return f"{n / 1024:.1f} KB" if n >= 1024 else f"{n} B"


def _count(n) -> str:
    return "" if n is None else f"{n:,}"


def bar_chart(title: str, rows: list[tuple[str, float, str]], unit: str, chart_id: str) -> str:
    """Horizontal bars: (label, value, tooltip) per row."""
    if not rows:
        return ""
    label_w, bar_w, row_h = 260, 520, 18
    top = max(v for _, v, _ in rows) or 1
    h = row_h * len(rows) + 30
    parts = [f'<svg class="chart" id="{chart_id}" role="img" aria-label="{_e(title)}" width="{label_w + bar_w + 110}" '
             f'height="{h}" xmlns="http://www.w3.org/2000/svg">']
    for k, (label, v, tip) in enumerate(rows):
        y = 20 + k * row_h
        w = max(1.0, bar_w * v / top) if v else 0
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end" class="lbl">{_e(label[-40:])}</text>')
        parts.append(f'<rect class="bar" x="{label_w}" y="{y + 2}" width="{w:.1f}" height="{row_h - 5}" '
                     f'fill="{PALETTE[0]}"><title>{_e(tip)}</title></rect>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 12}" class="val">{_e(f"{v:,.0f}" if float(v).is_integer() else f"{v:,.4g}")} {unit}</text>')
    parts.append(f'<text x="0" y="12" class="ttl">{_e(title)}</text></svg>')
    return "".join(parts)


def arena_timeline(plan: dict, ops: list[str]) -> str:
    """Which buffer occupies which arena bytes at each op: x = op index, y = byte offset."""
    buffers = plan.get("buffers") or []
    arena = plan.get("arena_bytes") or 0
    if not buffers or not arena:
        return '<p class="note">No arena: the model was compiled without the C backend, or needs none.</p>'
    n = max(len(ops), max(b["last"] for b in buffers) + 1)
    w, h, left, top = 760, 320, 60, 20
    xs, ys = w / n, h / arena
    parts = [f'<svg class="chart" id="arena-timeline" role="img" aria-label="arena timeline" width="{left + w + 20}" '
             f'height="{top + h + 40}" xmlns="http://www.w3.org/2000/svg">',
             f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#f6f6f6" stroke="#999"/>']
    for k, b in enumerate(buffers):
        x0, x1 = left + b["first"] * xs, left + (b["last"] + 1) * xs
        y0 = top + h - (b["offset"] + b["bytes"]) * ys
        tip = f'{b["name"]}: {b["bytes"]:,} B at offset {b["offset"]:,}, ops {b["first"]}–{b["last"]}'
        parts.append(f'<rect class="buf" x="{x0:.1f}" y="{y0:.1f}" width="{max(x1 - x0, 1):.1f}" '
                     f'height="{max(b["bytes"] * ys, 1):.1f}" fill="{PALETTE[k % len(PALETTE)]}" fill-opacity="0.8" '
                     f'stroke="#333" stroke-width="0.5"><title>{_e(tip)}</title></rect>')
    parts.append(f'<text x="{left}" y="{top + h + 16}" class="lbl">op 0</text>')
    parts.append(f'<text x="{left + w}" y="{top + h + 16}" text-anchor="end" class="lbl">op {n - 1}</text>')
    parts.append(f'<text x="{left - 4}" y="{top + 10}" text-anchor="end" class="lbl">{_e(_fmt_bytes(arena))}</text>')
    parts.append(f'<text x="{left - 4}" y="{top + h}" text-anchor="end" class="lbl">0</text></svg>')
    return "".join(parts)


def render_html(report: dict) -> str:
    t = report["totals"]
    layers = report.get("layers", [])
    est = " (estimated)" if t.get("latency_is_estimate") else ""
    summary = [("parameters", f"{t['params']:,}"), ("MACs", f"{t['macs']:,}"),
               ("float weights", _fmt_bytes(t["float_bytes"])), ("deployed weights", _fmt_bytes(t["weight_bytes"])),
               ("TFLite file", _fmt_bytes(t["tflite_bytes"])), ("arena", _fmt_bytes(t["arena_bytes"])),
               ("flash", _fmt_bytes(t["flash_bytes"])), ("RAM", _fmt_bytes(t["ram_bytes"])),
               ("latency" + est, "–" if t["latency_ms"] is None else f"{t['latency_ms']:.3f} ms"),
               ("energy (estimated)", "–" if t["energy_uj_est"] is None else f"{t['energy_uj_est']:.1f} µJ"),
               ("accuracy", "–" if t["accuracy"] is None else f"{100 * t['accuracy']:.2f}%"),
               ("float accuracy", "–" if t["float_accuracy"] is None else f"{100 * t['float_accuracy']:.2f}%")]
    cost_key, cost_unit = next(((k, u) for k, u in (("latency_us", "µs"), ("cycles_est", "cycles"),
                                                    ("instructions", "instr."))
                                if layers and all(r.get(k) is not None for r in layers)), ("macs", "MACs"))
    cost_rows = [(r["name"], r[cost_key] or 0, f'{r["op"]}: {r[cost_key]:,} {cost_unit}') for r in layers]
    size_rows = [(r["name"], r["weight_bytes"], f'{r["op"]}: {r["weight_bytes"]:,} B') for r in layers]
    pass_rows = [(p["name"], p["weight_bytes_after"],
                  f'{p["name"]}: {p["weight_bytes_before"]:,} → {p["weight_bytes_after"]:,} B') for p in report["passes"]]
    layer_table = "".join(
        f"<tr><td>{k}</td><td>{_e(r['name'])}</td><td>{_e(r['op'])}</td><td>{r['macs']:,}</td>"
        f"<td>{r['weight_bytes']:,}</td><td>{r['activation_bytes']:,}</td>"
        f"<td>{_count(r.get('instructions'))}</td><td>{_count(r.get('cycles_est'))}</td></tr>"
        for k, r in enumerate(layers))
    css = ("body{font:14px system-ui,sans-serif;margin:24px;color:#222}h1{font-size:20px}h2{font-size:16px;"
           "margin-top:28px}table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:3px 8px;"
           "text-align:right}td:nth-child(2),td:nth-child(3),th{text-align:left}.lbl,.val{font-size:11px;fill:#333}"
           ".ttl{font-size:12px;font-weight:600}.note{color:#666}dl{display:grid;grid-template-columns:max-content "
           "auto;gap:2px 16px}dt{color:#555}dd{margin:0;font-weight:600}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>edgec report: {_e(report['model'])}</title>
<style>{css}</style></head><body>
<h1>edgec report: {_e(report['model'])}</h1>
<p>target: {_e(report.get('target') or 'none')} · passes: {_e(' → '.join(report['recipe']) or 'none')}</p>
<dl id="summary">{''.join(f'<dt>{_e(k)}</dt><dd>{_e(v)}</dd>' for k, v in summary)}</dl>
<h2>Cost per layer ({_e(cost_unit)}{_e(est if cost_key != 'macs' else '')})</h2>
{bar_chart('cost per layer', cost_rows, cost_unit, 'layer-cost')}
<h2>Weights per layer</h2>
{bar_chart('weight bytes per layer', size_rows, 'B', 'layer-size')}
<h2>Arena timeline</h2>
{arena_timeline(report.get('memory_plan') or {}, [r['name'] for r in layers])}
<h2>Passes: weight bytes after each</h2>
{bar_chart('weight bytes after each pass', pass_rows, 'B', 'pass-size')}
<p class="note">accuracy: float {_e('–' if t['float_accuracy'] is None else f"{100 * t['float_accuracy']:.2f}%")},
deployed {_e('–' if t['accuracy'] is None else f"{100 * t['accuracy']:.2f}%")}</p>
<h2>Layers</h2>
<table id="layers"><tr><th>#</th><th>name</th><th>op</th><th>MACs</th><th>weights B</th><th>activations B</th>
<th>instructions</th><th>cycles (est.)</th></tr>{layer_table}</table>
</body></html>
"""
