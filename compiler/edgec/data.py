"""Data files: .npz with `x` (or x0, x1, ... for several inputs), batch first, and optional `y`.

A float x is quantized with the model's input parameters; an integer x is taken as already
quantized. Shapes are checked against the model, per sample, with one clear line on mismatch.
"""
from __future__ import annotations

import zipfile
from dataclasses import dataclass

import numpy as np

from .errors import EdgecError
from .ir import Graph


@dataclass
class Dataset:
    xs: list[np.ndarray]
    y: np.ndarray | None = None
    source: str = "data"

    def __len__(self):
        return len(self.xs[0])

    def head(self, n: int) -> "Dataset":
        return Dataset([x[:n] for x in self.xs], None if self.y is None else self.y[:n], self.source)


def load_npz(path: str) -> Dataset:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise EdgecError(f"{path}: no such file") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise EdgecError(f"{path}: not a readable .npz file ({type(e).__name__})") from None
    return dataset_from(arrays, path)


def dataset_from(arrays, source: str = "data") -> Dataset:
    """From a dict with x / x0, x1, ... and optional y (what the Python API accepts)."""
    if isinstance(arrays, Dataset):
        return arrays
    if "x" in arrays:
        xs = [np.asarray(arrays["x"])]
    else:
        keys = sorted((k for k in arrays if k[:1] == "x" and k[1:].isdigit()), key=lambda k: int(k[1:]))
        if not keys:
            raise EdgecError(f"{source}: no input array (expected 'x', or 'x0', 'x1', ...)")
        xs = [np.asarray(arrays[k]) for k in keys]
    if any(x.ndim == 0 or len(x) != len(xs[0]) for x in xs) or len(xs[0]) == 0:
        raise EdgecError(f"{source}: inputs must be non-empty arrays with the same number of samples")
    if any(x.dtype.kind not in "fiub" for x in xs):
        raise EdgecError(f"{source}: inputs must be numeric arrays")
    y = arrays.get("y") if hasattr(arrays, "get") else None
    y = None if y is None else np.asarray(y)
    if y is not None and len(y) != len(xs[0]):
        raise EdgecError(f"{source}: y has {len(y)} samples, x has {len(xs[0])}")
    return Dataset(xs, y, source)


def check_against(ds: Dataset, g: Graph) -> None:
    if len(ds.xs) != len(g.inputs):
        raise EdgecError(f"{ds.source}: {len(ds.xs)} input array(s), the model takes {len(g.inputs)}")
    for k, (x, name) in enumerate(zip(ds.xs, g.inputs)):
        want = g.tensors[name].shape[1:]
        if tuple(x.shape[1:]) != tuple(want):
            label = "x" if len(ds.xs) == 1 else f"x{k}"
            raise EdgecError(f"{ds.source}: {label} has samples of shape {list(x.shape[1:])}, "
                             f"the model's input {name!r} takes {list(want)}")


def model_inputs(ds: Dataset, g: Graph) -> list[np.ndarray]:
    """The inputs as `g` takes them: float data quantized for integer inputs, and vice versa."""
    check_against(ds, g)
    out = []
    for x, name in zip(ds.xs, g.inputs):
        t = g.tensors[name]
        if t.quant is not None and x.dtype.kind == "f":
            x = t.quant.quantize(x, t.dtype)
        elif t.quant is not None:
            x = x.astype(t.dtype)
        elif x.dtype.kind != "f":
            raise EdgecError(f"{ds.source}: integer inputs given to a float model input {name!r}")
        else:
            x = x.astype(t.dtype)
        out.append(x)
    return out
