"""Pipelines of passes: the registry, the context a pass runs in, recipes, and the shared traversal.

A pass is a module passes/<verb_object>.py that defines one function decorated with
`@register_pass(name, **default_options)`; `run(graph, ctx) -> graph`. Recipes are TOML files in
edgec/recipes/ (or a path) listing passes and options; `[pass.overrides]` maps a regex on op names
to options that replace the pass's options for the ops it matches (mixed precision per layer).
"""
from __future__ import annotations

import importlib
import pkgutil
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import EdgecError
from ..ir import Graph, Op, verify

RECIPES_DIR = Path(__file__).resolve().parent.parent / "recipes"


@dataclass(frozen=True)
class PassDef:
    name: str
    run: Callable[[Graph, "PassContext"], Graph]
    defaults: dict


PASSES: dict[str, PassDef] = {}


def register_pass(name: str, **defaults):
    def wrap(fn):
        if name in PASSES:
            raise ValueError(f"pass {name} registered twice")
        PASSES[name] = PassDef(name, fn, defaults)
        return fn
    return wrap


def load_passes() -> None:
    """Import every pass module of this package (each registers itself); idempotent."""
    pkg = Path(__file__).resolve().parent
    for m in pkgutil.iter_modules([str(pkg)]):
        if m.name != "manager":
            importlib.import_module(f"{__package__}.{m.name}")


@dataclass
class PassContext:
    """What a pass may read besides the graph: its options, data, and where to report."""
    options: dict = field(default_factory=dict)       # this pass's options (defaults filled in)
    overrides: list[tuple[re.Pattern, dict]] = field(default_factory=list)
    calibration: list | None = None                   # list of input arrays, each [N, ...]
    train_data: object | None = None                  # a Dataset with labels for training passes (qat)
    observe: Callable | None = None                   # observe(graph) -> {tensor: TensorStats}
    debug: bool = False
    progress: Callable | None = None                  # progress(label, iterable) -> iterable
    report: dict = field(default_factory=dict)        # the running pass's report entry
    teacher: object | None = None                     # set by a `distill` step: later passes fine-tune
                                                      # on its signal (passes/distill_step.teacher_signal)

    def op_options(self, op: Op) -> dict:
        """The pass options as they apply to `op`, after per-layer overrides."""
        opts = dict(self.options)
        for pattern, extra in self.overrides:
            if pattern.search(op.name):
                opts.update(extra)
        return opts

    def track(self, label: str, items):
        return self.progress(label, items) if self.progress else items


@dataclass
class Step:
    name: str
    options: dict = field(default_factory=dict)
    overrides: dict = field(default_factory=dict)


class Pipeline:
    def __init__(self, steps: list[Step]):
        for s in steps:
            if s.name not in PASSES:
                raise EdgecError(f"unknown pass {s.name!r}; known: {', '.join(sorted(PASSES))}")
            unknown = set(s.options) - set(PASSES[s.name].defaults)
            if unknown:
                raise EdgecError(f"pass {s.name}: unknown option(s) {', '.join(sorted(unknown))}; "
                                 f"it takes {', '.join(sorted(PASSES[s.name].defaults)) or 'none'}")
        self.steps = steps

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.steps]

    def run(self, g: Graph, calibration=None, observe=None, debug: bool = False,
            progress=None, train_data=None) -> tuple[Graph, list[dict]]:
        reports = []
        teacher = None
        for s in self.steps:
            p = PASSES[s.name]
            ctx = PassContext(options={**p.defaults, **s.options},
                              overrides=[(re.compile(k), v) for k, v in s.overrides.items()],
                              calibration=calibration, observe=observe, debug=debug, progress=progress,
                              train_data=train_data, teacher=teacher)
            before = weight_bytes(g)
            t0 = time.perf_counter()
            g = p.run(g, ctx)
            teacher = ctx.teacher
            ctx.report.update(name=s.name, weight_bytes_before=before, weight_bytes_after=weight_bytes(g),
                              seconds=round(time.perf_counter() - t0, 3))
            reports.append(dict(sorted(ctx.report.items())))
            if debug:
                verify(g)
        return g, reports


def weight_bytes(g: Graph) -> int:
    return sum(t.nbytes for t in g.weights())


# what a recipe's [emit] table may set: backend options applied when the caller gives none
EMIT_OPTIONS = {"entropy": ("off", "init", "layer")}


def _read_recipe(name_or_path: str) -> tuple[Path, dict]:
    path = Path(name_or_path)
    if not path.suffix:
        path = RECIPES_DIR / f"{name_or_path}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RECIPES_DIR.glob("*.toml")))
        raise EdgecError(f"no recipe {name_or_path!r} (a TOML path, or one of: {known})")
    try:
        return path, tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise EdgecError(f"recipe {path}: not valid TOML ({e})") from None


def recipe_emit(name_or_path: str) -> dict:
    """The recipe's [emit] table: options for the backends (EMIT_OPTIONS, e.g. entropy = "init"), which
    compile applies when its caller sets none. {} when the recipe has none."""
    return _emit_table(*_read_recipe(name_or_path))


def _emit_table(path: Path, doc: dict) -> dict:
    emit = doc.get("emit", {})
    if not isinstance(emit, dict):
        raise EdgecError(f"recipe {path}: [emit] must be a table")
    for key, value in emit.items():
        if key not in EMIT_OPTIONS:
            raise EdgecError(f"recipe {path}: unknown [emit] option {key!r}; known: {', '.join(EMIT_OPTIONS)}")
        if value not in EMIT_OPTIONS[key]:
            raise EdgecError(f"recipe {path}: [emit] {key} = {value!r}; choose {', '.join(EMIT_OPTIONS[key])}")
    return dict(emit)


def load_recipe(name_or_path: str) -> list[Step]:
    """The recipe's [[pass]] steps (its [emit] table is checked here and read by recipe_emit)."""
    path, doc = _read_recipe(name_or_path)
    _emit_table(path, doc)
    steps = []
    for entry in doc.get("pass", []):
        entry = dict(entry)
        name = entry.pop("name", None)
        if not name:
            raise EdgecError(f"recipe {path}: a [[pass]] has no name")
        overrides = entry.pop("overrides", {})
        for pattern in overrides:
            try:
                re.compile(pattern)
            except re.error as e:
                raise EdgecError(f"recipe {path}: bad override pattern {pattern!r}: {e}") from None
        steps.append(Step(name, entry, overrides))
    return steps


def rewrite_ops(g: Graph, fn: Callable[[Op, Graph], list[Op] | None]) -> int:
    """The shared traversal: call fn on each op in execution order; a list it returns replaces the
    op (an empty list deletes it). fn may also delete ops after the current one (a fusion that
    absorbs its consumer). Returns how many ops were rewritten; dead ops and tensors are dropped."""
    changed, k = 0, 0
    while k < len(g.ops):
        new = fn(g.ops[k], g)
        if new is None:
            k += 1
            continue
        g.ops[k:k + 1] = new
        k += len(new)
        changed += 1
    g.remove_dead_ops()
    return changed
