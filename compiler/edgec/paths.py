"""Where the data shipped with edgec lives: kernels/, runtimes/ and targets/ at the repository root
in a checkout, or edgec/_data/ inside an installed wheel (setup.py copies them there)."""
from __future__ import annotations

from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    for base in (_PKG / "_data", _PKG.parent.parent):
        if (base / name).is_dir():
            return base / name
    raise FileNotFoundError(f"edgec data folder {name!r} is missing from this installation")
