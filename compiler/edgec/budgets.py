"""Budget gates for builds: flash, RAM and latency limits, and the target's own memory sizes.
Exceeding one is not a user mistake but a failed gate: exit code 3, naming each overshoot."""
from __future__ import annotations

import re

from .errors import EdgecError
from .targets import Target

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(i?[bB])?\s*$")
_TIME = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s)?\s*$")


class BudgetError(EdgecError):
    exit_code = 3


def parse_size(text: str) -> int:
    """'256K', '64KB', '1M', '1.5MiB', '4096' -> bytes (K = 1024)."""
    m = _SIZE.match(str(text))
    if not m:
        raise EdgecError(f"cannot read {text!r} as a size (e.g. 256K, 1M, 4096)")
    return int(float(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()])


def parse_latency_ms(text: str) -> float:
    """'50ms', '2s', '800us', '12.5' (ms) -> milliseconds."""
    m = _TIME.match(str(text))
    if not m:
        raise EdgecError(f"cannot read {text!r} as a latency (e.g. 50ms, 2s, 800us)")
    return float(m.group(1)) * {None: 1, "ms": 1, "s": 1000, "us": 1e-3, "µs": 1e-3}[m.group(2)]


def _kb(n: float) -> str:
    return f"{n / 1024:.1f} KB"


def overshoots(totals: dict, target: Target | None, max_flash=None, max_ram=None, max_latency_ms=None,
               flash_key: str = "flash_bytes", ram_key: str = "ram_bytes") -> list[str]:
    """Every budget the figures exceed, as 'what value > limit (whose) by how much'."""
    out = []
    flash, ram, lat = totals.get(flash_key), totals.get(ram_key), totals.get("latency_ms")
    checks = [("flash", flash, max_flash, "--max-flash"), ("RAM", ram, max_ram, "--max-ram")]
    if target is not None:
        checks += [("flash", flash, target.memory_bytes("flash"), f"{target.name} flash"),
                   ("RAM", ram, target.memory_bytes("ram"), f"{target.name} RAM")]
    for what, value, limit, whose in checks:
        if value is not None and limit is not None and value > limit:
            out.append(f"{what} {_kb(value)} > {_kb(limit)} ({whose}) by {_kb(value - limit)}")
    if lat is not None and max_latency_ms is not None and lat > max_latency_ms:
        est = " (estimated)" if totals.get("latency_is_estimate") else ""
        out.append(f"latency{est} {lat:.3f} ms > {max_latency_ms:g} ms (--max-latency) by {lat - max_latency_ms:.3f} ms")
    return out


def enforce(totals: dict, target: Target | None, **limits) -> None:
    over = overshoots(totals, target, **limits)
    if over:
        raise BudgetError("over budget: " + "; ".join(over))
