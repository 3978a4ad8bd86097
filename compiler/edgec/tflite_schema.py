"""The TFLite schema bindings (the object API shipped with LiteRT or TensorFlow, never hand-edited)
and the conversions between their enums/options and the IR's names."""
from __future__ import annotations

import re

import numpy as np

try:
    from ai_edge_litert import schema_py_generated as schema
except ImportError:  # only TensorFlow installed
    from tensorflow.lite.python import schema_py_generated as schema  # type: ignore

TENSOR_TYPES = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
DTYPE_TO_TYPE = {
    "float32": schema.TensorType.FLOAT32, "float16": schema.TensorType.FLOAT16,
    "int8": schema.TensorType.INT8, "uint8": schema.TensorType.UINT8,
    "int16": schema.TensorType.INT16, "int32": schema.TensorType.INT32,
    "int64": schema.TensorType.INT64, "bool": schema.TensorType.BOOL,
}
TYPE_TO_DTYPE = {v: k for k, v in DTYPE_TO_TYPE.items()}
BUILTIN_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
BUILTIN_CODES = {k: v for v, k in BUILTIN_NAMES.items()}
OPTIONS_CODES = {k: v for k, v in vars(schema.BuiltinOptions).items() if not k.startswith("_")}

# Enum-valued option fields are kept by name in the IR, so attrs read like the schema's docs.
_ENUMS = {
    "padding": {v: k for k, v in vars(schema.Padding).items() if not k.startswith("_")},
    "fused_activation_function": {v: k for k, v in vars(schema.ActivationFunctionType).items()
                                  if not k.startswith("_")},
}


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


def options_to_attrs(opts) -> dict:
    attrs = {}
    for key, val in vars(opts).items():
        key = _snake(key)
        if key in _ENUMS:
            val = _ENUMS[key][val]
        elif isinstance(val, np.ndarray):
            val = [int(v) for v in val]
        elif isinstance(val, (np.integer, np.floating, np.bool_)):
            val = val.item()
        attrs[key] = val
    return attrs


def attrs_to_options(options_name: str, attrs: dict):
    opts = getattr(schema, options_name + "T")()
    for key, val in attrs.items():
        if key in _ENUMS:
            val = {n: c for c, n in _ENUMS[key].items()}[val]
        elif isinstance(val, (list, tuple)):
            val = list(val)
        camel = _camel(key)
        if not hasattr(opts, camel):
            raise ValueError(f"{options_name} has no field {camel}")
        setattr(opts, camel, val)
    return opts
