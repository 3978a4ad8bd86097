"""The op registry: one OpDef per TFLite builtin operator, and everything known about it.

Each family module (conv.py, pool.py, ...) registers its ops with `register(OpDef(...))`. An entry
holds the op's shape inference, its reference semantics (float32 and integer-exact, the oracle for
every backend), its cost, and how the quantizer treats its inputs and output. "Supported ops" is the
registry's key set; nothing else in the compiler keeps an op list.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..graph import Op
from ..tensor import Tensor

Shapes = list[tuple[int, ...]]


@dataclass
class CCall:
    """What an op's C emitter returns: one kernel call in the generated model.c.

    `kernel` names the kernel file (kernels/<variant>/<kernel>.c) and function; `params` is the
    struct type and its fields (C expressions), stored as a static const in flash and passed by
    pointer as the first argument; `args` are the remaining argument expressions; `scratch` is the
    bytes of scratch the chosen variant needs (the planner gives it arena space for this op only).
    """
    kernel: str
    args: list[str]
    params: tuple[str, dict] | None = None
    scratch: int = 0
    headers: tuple[str, ...] = ()


def _no_macs(op: Op, ins: list[Tensor | None], outs: list[Tensor]) -> int:
    return 0


@dataclass(frozen=True)
class OpDef:
    name: str
    # (op, input tensors) -> output shapes; constant operands (new shape, paddings, axes) are
    # read from the tensors' data.
    shape: Callable[[Op, list[Tensor | None]], Shapes]
    # (op, input values, input tensors, output tensors) -> output values. Values of quantized
    # tensors are the raw integers; the implementation dispatches on the tensors' dtypes.
    ref: Callable[[Op, list[np.ndarray | None], list[Tensor | None], list[Tensor]], list[np.ndarray]]
    options: str | None = None          # the TFLite BuiltinOptions table, e.g. "Conv2DOptions"
    macs: Callable[[Op, list[Tensor | None], list[Tensor]], int] = _no_macs
    # Quantization: inputs that are weights -> per-channel axis (None for per-tensor),
    # the int32 bias input, and how the output's scale is chosen: "calibrate", "same" (as input 0,
    # for ops that only move values) or fixed {"int8": (scale, zp), "int16": (scale, zp)}.
    weights: dict[int, int | None] = field(default_factory=dict)
    bias: int | None = None
    out_quant: str | dict = "calibrate"
    # activation dtypes the quantizer may choose: those with kernels in both LiteRT and TFLite
    # Micro (the reference may cover more, to check LiteRT-only models)
    quant_dtypes: tuple[str, ...] = ("int8",)
    # inputs that are integer operands (shapes, axes, paddings), never quantized
    int_operands: tuple[int, ...] = ()
    # (op, input tensors, output tensors, emit context) -> CCall; see backends/c/emit.py
    c: Callable | None = None
    # the output may share the input's memory (element-wise ops whose kernel reads each element
    # before writing it); "alias" means the output IS the input's bytes (reshapes)
    inplace: str | None = None
    # TF lowering for training (edgec.train): (op, inputs, attrs) -> output tf.Tensors, the float32
    # reference on a batch (see ir/ops/_tfutil.py); imports TensorFlow lazily. None: not trainable.
    tf: Callable | None = None


REGISTRY: dict[str, OpDef] = {}


def register(d: OpDef) -> OpDef:
    if d.name in REGISTRY:
        raise ValueError(f"op {d.name} registered twice")
    REGISTRY[d.name] = d
    return d


def get(name: str) -> OpDef:
    return REGISTRY[name]


def supported() -> list[str]:
    return sorted(REGISTRY)


def float_constant_inputs(g, op: Op) -> list[tuple[int, str]]:
    """(input index, tensor name) of the op's float32 constant operands: weights, biases, alphas,
    added constants; integer operands (shapes, axes, paddings) are not among them."""
    d = REGISTRY[op.type]
    return [(k, name) for k, name in enumerate(op.inputs)
            if name is not None and k not in d.int_operands and g.tensors[name].is_const
            and g.tensors[name].dtype == "float32"]


def default_attrs(op_type: str, **overrides) -> dict:
    """Every option field of `op_type` at the schema's defaults, then `overrides`: what an imported
    op carries, so graphs built by hand (tests, passes) compare equal to imported ones."""
    from ...tflite_schema import options_to_attrs, schema
    options = REGISTRY[op_type].options
    attrs = options_to_attrs(getattr(schema, options + "T")()) if options else {}
    unknown = set(overrides) - set(attrs)
    if unknown:
        raise ValueError(f"{op_type} has no option {sorted(unknown)}")
    attrs.update(overrides)
    return attrs


# Importing the family modules fills the registry.
from . import conv, pool, elementwise, activation, shape, resize, quantize, matmul  # noqa: E402,F401
