"""Keras (.keras, .h5, in-memory keras.Model) and SavedModel frontends.

Both are lowered by TensorFlow's own converter to a float TFLite graph at batch 1, then imported by
the one TFLite importer; TensorFlow is imported only here, and only when such a model is given.
"""
from __future__ import annotations

import os
import warnings

from ..errors import EdgecError


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    return tf


def _convert(converter, what: str) -> bytes:
    try:
        return converter.convert()
    except Exception as e:
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        raise EdgecError(f"{what}: TensorFlow could not lower it to TFLite builtin ops: {first[:300]}") from None


def load_keras_file(path: str, unsafe: bool = False):
    tf = _tf()
    keras = tf.keras
    if unsafe:
        warnings.warn(f"loading {path} with safe_mode off: it may run arbitrary code", stacklevel=2)
    try:
        if path.endswith((".h5", ".hdf5")):
            return keras.models.load_model(path, compile=False)
        return keras.models.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as e:
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        if "safe_mode" in first:
            first += " (pass --unsafe if you trust this file)"
        raise EdgecError(f"{path}: not a loadable Keras model: {first[:300]}") from None


def lower_keras(model, what: str = "keras model") -> bytes:
    tf = _tf()
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    return _convert(converter, what)


def lower_saved_model(path: str) -> bytes:
    tf = _tf()
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise EdgecError(f"{path}: a directory but not a SavedModel (no saved_model.pb)")
    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(path)
    except Exception as e:
        first = next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)
        raise EdgecError(f"{path}: cannot read SavedModel: {first[:300]}") from None
    return _convert(converter, path)
