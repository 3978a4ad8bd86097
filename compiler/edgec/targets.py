"""Targets are data: targets/<name>.toml (schema in docs/targets.md), with `inherits` for shared
bases. This module only reads them; compiler behaviour stays in options, hardware facts here."""
from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .errors import EdgecError
from .paths import data_dir


@dataclass(frozen=True)
class Memory:
    name: str
    kind: str          # "flash" or "ram"
    size: int
    wait_states: int | None = None
    note: str = ""


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    isa: str
    emulator: str
    kernels: tuple[str, ...]
    clock_hz: int | None
    toolchain: dict = field(default_factory=dict)
    memories: tuple[Memory, ...] = ()
    cycles: dict = field(default_factory=dict)
    power: dict | None = None
    budgets: dict = field(default_factory=dict)

    @property
    def is_host(self) -> bool:
        return self.isa == "host"

    def memory_bytes(self, kind: str) -> int | None:
        sizes = [m.size for m in self.memories if m.kind == kind]
        return sum(sizes) if sizes else None


def _merge(base: dict, child: dict) -> dict:
    out = dict(base)
    for k, v in child.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read(name: str, root: Path, seen: tuple[str, ...] = ()) -> dict:
    path = root / f"{name}.toml"
    if name in seen:
        raise EdgecError(f"target {name}: inheritance cycle {' -> '.join(seen + (name,))}")
    if not path.is_file():
        known = ", ".join(t.name for t in list_targets(root)) or "none"
        raise EdgecError(f"unknown target {name!r}; known targets: {known}")
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise EdgecError(f"{path}: not valid TOML ({e})") from None
    parent = doc.pop("inherits", None)
    return _merge(_read(parent, root, seen + (name,)), doc) if parent else doc


def load_target(name: str, root: Path | None = None) -> Target:
    root = root or data_dir("targets")
    doc = _read(name, root)
    try:
        return Target(
            name=doc.get("name", name), description=doc.get("description", ""), isa=doc["isa"],
            emulator=doc.get("emulator", ""), kernels=tuple(doc.get("kernels", ["ref"])),
            clock_hz=doc.get("clock_hz") or None, toolchain=doc.get("toolchain", {}),
            memories=tuple(Memory(m["name"], m["kind"], int(m["size"]), m.get("wait_states"), m.get("note", ""))
                           for m in doc.get("memory", [])),
            cycles=doc.get("cycles", {}), power=doc.get("power"), budgets=doc.get("budgets", {}))
    except (KeyError, TypeError, ValueError) as e:
        raise EdgecError(f"target {name}: malformed description ({type(e).__name__}: {e})") from None


def list_targets(root: Path | None = None) -> list[Target]:
    """The concrete targets (files that only serve as a base, like cortex-m.toml, have no isa)."""
    root = root or data_dir("targets")
    return [load_target(p.stem, root) for p in sorted(root.glob("*.toml")) if "isa" in _read(p.stem, root)]
