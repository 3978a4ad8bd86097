"""Frontends: every model format ends as a float (or already quantized) TFLite flatbuffer, which the
one importer (tflite.py) turns into the IR."""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import EdgecError
from ..ir import Graph
from .tflite import import_tflite


@dataclass
class Loaded:
    graph: Graph
    tflite: bytes          # the model as TFLite: the float reference for accuracy and calibration
    source: str            # "keras", "savedmodel" or "tflite"


def load_model(model, unsafe: bool = False) -> Loaded:
    """A path (.keras, .h5, SavedModel dir, .tflite) or an in-memory keras.Model."""
    if not isinstance(model, (str, os.PathLike)):
        from .keras import lower_keras
        data = lower_keras(model)
        return Loaded(import_tflite(data, getattr(model, "name", "model")), data, "keras")
    path = os.fspath(model)
    if not os.path.exists(path):
        raise EdgecError(f"{path}: no such file or directory")
    if os.path.isdir(path):
        from .keras import lower_saved_model
        data = lower_saved_model(path)
        return Loaded(import_tflite(data, path), data, "savedmodel")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise EdgecError(f"{path}: cannot read: {e.strerror}") from None
    if not head:
        raise EdgecError(f"{path}: empty file")
    if head[4:8] == b"TFL3" or path.endswith(".tflite"):
        with open(path, "rb") as f:
            data = f.read()
        return Loaded(import_tflite(data, path), data, "tflite")
    if path.endswith((".keras", ".h5", ".hdf5")) or head[:4] == b"PK\x03\x04" or head == b"\x89HDF\r\n\x1a\n":
        if head[:4] != b"PK\x03\x04" and head != b"\x89HDF\r\n\x1a\n":
            raise EdgecError(f"{path}: not a Keras model (neither a .keras zip archive nor HDF5)")
        from .keras import load_keras_file, lower_keras
        data = lower_keras(load_keras_file(path, unsafe), path)
        return Loaded(import_tflite(data, path), data, "keras")
    raise EdgecError(f"{path}: unknown model format (expected .keras, .h5, a SavedModel directory or .tflite)")
