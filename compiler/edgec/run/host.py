"""Build a generated C project with the host compiler and run it through ctypes.

Builds are cached by content hash (sources + compiler + flags) under $EDGEC_CACHE or
~/.cache/edgec, so running the same project twice compiles once.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..errors import EdgecError
from ..ir import Graph
from ..paths import data_dir

WARN = ["-std=c99", "-Wall", "-Wextra", "-Werror"]


def cache_root() -> Path:
    return Path(os.environ.get("EDGEC_CACHE", Path.home() / ".cache" / "edgec"))


def read_project(c_dir: str | os.PathLike) -> dict[str, bytes]:
    root = Path(c_dir)
    if not (root / "model.c").is_file():
        raise EdgecError(f"{root}: no generated C project (model.c missing); compile with --emit c")
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
            and p.suffix in (".c", ".h")}


def build(files: dict[str, bytes], kind: str = "shared", cc: str | None = None, opt: str = "-O2",
          extra: tuple[str, ...] = ()) -> Path:
    """Compile the project (+ the host harness) into a shared library or a program; returns its path."""
    cc = cc or os.environ.get("CC", "cc")
    harness = data_dir("runtimes") / "host" / ("ec_host.c" if kind == "shared" else "ec_main.c")
    flags = [opt, *WARN, *extra] + (["-shared", "-fPIC"] if kind == "shared" else [])
    h = hashlib.sha256(" ".join([cc, kind, *flags]).encode())
    for k in sorted(files):
        h.update(k.encode() + b"\0" + files[k])
    h.update(harness.read_bytes())
    out_dir = cache_root() / "host" / h.hexdigest()[:20]
    target = out_dir / ("libmodel.so" if kind == "shared" else "model_main")
    if target.is_file():
        return target
    with tempfile.TemporaryDirectory(dir=cache_root().mkdir(parents=True, exist_ok=True) or cache_root()) as tmp:
        src = Path(tmp)
        for rel, data in files.items():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes(data)
        shutil.copy(harness, src / harness.name)
        sources = [str(src / r) for r in files if r.endswith(".c")] + [str(src / harness.name)]
        cmd = [cc, *flags, f"-I{src}", f"-I{src / 'kernels' / 'include'}", *sources, "-o", str(src / target.name), "-lm"]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            errors = [ln for ln in r.stderr.splitlines() if "error" in ln] or r.stderr.strip().splitlines() or [str(r.returncode)]
            raise EdgecError(f"host build failed: {errors[0].replace(str(src) + '/', '')}")
        out_dir.mkdir(parents=True, exist_ok=True)
        os.replace(src / target.name, target)
    return target


class HostModel:
    """A built model: run(inputs) per sample, bench() timing inside C."""

    def __init__(self, lib: Path, g: Graph, arena_size: int):
        self.lib = ctypes.CDLL(str(lib))
        self.g = g
        self.arena = np.zeros(arena_size + 16, np.uint8)
        off = (-self.arena.ctypes.data) % 16
        self.arena_ptr = ctypes.c_void_p(self.arena.ctypes.data + off)
        self.lib.model_invoke_v.restype = ctypes.c_int
        self.lib.ec_host_bench.restype = ctypes.c_int
        self.outs = [np.zeros(g.tensors[n].shape, g.tensors[n].dtype) for n in g.outputs]
        self._out_ptrs = (ctypes.c_void_p * len(self.outs))(*[o.ctypes.data for o in self.outs])

    def _in_ptrs(self, sample: list[np.ndarray]):
        return (ctypes.c_void_p * len(sample))(*[x.ctypes.data for x in sample])

    def _prepare(self, inputs: list[np.ndarray], s: int) -> list[np.ndarray]:
        return [np.ascontiguousarray(x[s:s + 1], self.g.tensors[n].dtype).reshape(self.g.tensors[n].shape)
                for x, n in zip(inputs, self.g.inputs)]

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        results = [[] for _ in self.outs]
        for s in range(len(inputs[0])):
            sample = self._prepare(inputs, s)
            rc = self.lib.model_invoke_v(self.arena_ptr, self._in_ptrs(sample), self._out_ptrs)
            if rc != 0:
                raise RuntimeError(f"model_invoke returned {rc}")
            for r, o in zip(results, self.outs):
                r.append(o.copy())
        return [np.concatenate(r) for r in results]

    def bench(self, inputs: list[np.ndarray], iters: int = 200, warmup: int = 10) -> np.ndarray:
        """Per-inference microseconds over `iters` runs of the first sample, measured in C."""
        sample = self._prepare(inputs, 0)
        ptrs = self._in_ptrs(sample)
        us = np.zeros(max(iters, warmup), np.float64)
        for n in (warmup, iters):
            rc = self.lib.ec_host_bench(self.arena_ptr, ptrs, self._out_ptrs, ctypes.c_int(n),
                                        us.ctypes.data_as(ctypes.POINTER(ctypes.c_double)))
            if rc != 0:
                raise RuntimeError(f"model_invoke returned {rc}")
        return us[:iters].copy()


def load_host(files: dict[str, bytes], g: Graph, arena_size: int, opt: str = "-O2") -> HostModel:
    return HostModel(build(files, "shared", opt=opt), g, arena_size)
