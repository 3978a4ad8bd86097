"""Shared helpers of the ops' TensorFlow lowerings (`OpDef.tf`), used by edgec.train.

A lowering `tf(op, inputs, attrs) -> [tf.Tensor]` computes the op's float32 reference semantics on a
*batch*: activation inputs carry a free leading batch dimension where the IR tensor has its batch of
1; constant operands (weights, biases, alphas) are tf tensors/variables of their IR shape; integer
operands (shapes, axes, paddings, begin/end/strides, sizes) are passed as numpy arrays. TensorFlow is
imported lazily here, so compiling a .tflite never imports it.
"""
from __future__ import annotations

import numpy as np

from ..quant import activation_range
from ..tensor import Tensor


def tfm():
    import tensorflow as tf
    return tf


def ir_shape(x) -> tuple[int, ...]:
    """The IR (one-sample) shape of a batched activation: batch dim replaced by 1."""
    if isinstance(x, np.ndarray):
        return x.shape
    return (1,) + tuple(int(d) for d in x.shape[1:])


def fake(xs, activations=(0,)) -> list[Tensor | None]:
    """IR Tensors standing for the lowering's inputs, so the ops' shape logic can be reused:
    activations get their one-sample shape, numpy operands are constants, others keep their shape."""
    out = []
    for k, x in enumerate(xs):
        if x is None:
            out.append(None)
        elif isinstance(x, np.ndarray):
            out.append(Tensor(f"c{k}", x.shape, str(x.dtype) if str(x.dtype) != "float64" else "float32", x))
        elif k in activations:
            out.append(Tensor(f"x{k}", ir_shape(x)))
        else:
            out.append(Tensor(f"w{k}", tuple(int(d) for d in x.shape)))
    return out


def batched(shape) -> list[int]:
    """A static IR output shape as a TF reshape target with a free batch: a leading 1 becomes -1,
    otherwise the batch is prepended."""
    shape = [int(d) for d in shape]
    return [-1] + shape[1:] if shape and shape[0] == 1 else [-1] + shape


def act(y, a: str | None):
    """The fused activation's float clamp."""
    if a in (None, "NONE"):
        return y
    tf = tfm()
    lo, hi = activation_range(a, "float32")
    if hi == float("inf"):
        return tf.maximum(y, 0.0)
    return tf.clip_by_value(y, lo, hi)
