"""Keras (.keras, .h5, in-memory keras.Model) and SavedModel frontends.

Both are lowered by TensorFlow's own converter to a float TFLite graph at batch 1 (a concrete
function with batch-1 input specs, so no SHAPE/PACK arithmetic for a dynamic batch survives), then
imported by the one TFLite importer. TensorFlow is imported only here, and only when such a model is
given; what it prints (absl logs, "Saved artifact" notices) is captured and shown only on failure.
"""
from __future__ import annotations

import logging
import os
import warnings

from ..errors import EdgecError
from ..native_output import captured_native_output as _quiet


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _quiet():
        import tensorflow as tf
    logging.getLogger("absl").setLevel(logging.ERROR)
    tf.get_logger().setLevel(logging.ERROR)
    return tf


def _first_line(e: Exception) -> str:
    return next((ln for ln in str(e).splitlines() if ln.strip()), type(e).__name__)[:300]


def _convert(converter, what: str) -> bytes:
    try:
        with _quiet():
            return converter.convert()
    except Exception as e:
        raise EdgecError(f"{what}: TensorFlow could not lower it to TFLite builtin ops: {_first_line(e)}") from None


def load_keras_file(path: str, unsafe: bool = False):
    tf = _tf()
    keras = tf.keras
    if unsafe:
        warnings.warn(f"loading {path} with safe_mode off: it may run arbitrary code", stacklevel=2)
    try:
        with _quiet():
            if path.endswith((".h5", ".hdf5")):
                return keras.models.load_model(path, compile=False)
            return keras.models.load_model(path, compile=False, safe_mode=not unsafe)
    except Exception as e:
        first = _first_line(e)
        if "safe_mode" in first:
            first += " (pass --unsafe if you trust this file)"
        raise EdgecError(f"{path}: not a loadable Keras model: {first}") from None


def _batch1(spec, tf):
    shape = list(spec.shape)
    if shape and shape[0] is None:
        shape[0] = 1
    if any(d is None for d in shape):
        raise EdgecError(f"input {getattr(spec, 'name', '')!r} has unknown dimensions {shape}; "
                         f"edgec compiles fixed shapes")
    return tf.TensorSpec(shape, spec.dtype, name=getattr(spec, "name", None))


def lower_keras(model, what: str = "keras model") -> bytes:
    tf = _tf()
    inputs = getattr(model, "inputs", None)
    if not inputs:  # a subclassed model that was never built on concrete inputs
        return _convert(tf.lite.TFLiteConverter.from_keras_model(model), what)
    specs = [_batch1(tf.TensorSpec(t.shape, t.dtype, name=getattr(t, "name", None)), tf) for t in inputs]
    fn = tf.function(lambda *xs: model(list(xs) if len(xs) > 1 else xs[0], training=False))
    try:
        with _quiet():
            concrete = fn.get_concrete_function(*specs)
    except Exception as e:
        raise EdgecError(f"{what}: TensorFlow could not trace the model: {_first_line(e)}") from None
    return _convert_frozen(concrete, what, tf)


def _convert_frozen(concrete, what: str, tf) -> bytes:
    """Fold the function's variables into constants, then convert the frozen graph (the converter's
    graph path: no SavedModel round trip, and no resource variables left in the model)."""
    from tensorflow.python.framework import convert_to_constants
    try:
        with _quiet():
            frozen = convert_to_constants.convert_variables_to_constants_v2(concrete)
            converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    except Exception as e:
        raise EdgecError(f"{what}: TensorFlow could not freeze the model's variables: {_first_line(e)}") from None
    return _convert(converter, what)


def lower_saved_model(path: str) -> bytes:
    tf = _tf()
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise EdgecError(f"{path}: a directory but not a SavedModel (no saved_model.pb)")
    try:
        with _quiet():
            loaded = tf.saved_model.load(path)
        sig = loaded.signatures.get("serving_default") or next(iter(loaded.signatures.values()))
    except StopIteration:
        raise EdgecError(f"{path}: the SavedModel has no serving signature") from None
    except Exception as e:
        raise EdgecError(f"{path}: cannot read SavedModel: {_first_line(e)}") from None
    specs = {k: _batch1(s, tf) for k, s in sig.structured_input_signature[1].items()}
    with _quiet():
        concrete = tf.function(lambda **kw: sig(**kw)).get_concrete_function(**specs)
    return _convert_frozen(concrete, path, tf)
