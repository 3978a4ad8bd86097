"""export_keras: a float IR graph as a Keras functional model of standard layers (no custom objects),
so a trained student saves as a .keras file any Keras loads in safe mode, and edgec compiles it again
like any model.

One layer per op, weights laid out for Keras (conv filters [O, KH, KW, I] -> [KH, KW, I, O], depthwise
[1, KH, KW, C*M] -> [KH, KW, C, M], dense [O, I] -> [I, O]); a fused activation becomes the layer's
activation (or an Activation layer after it). Ops covered: CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED, AVERAGE_POOL_2D, MAX_POOL_2D, MEAN over H and W, ADD / SUB / MUL of two activations or
of an activation and a per-channel constant (a BatchNormalization with unit variance: gamma * x +
beta), RESHAPE, SQUEEZE, PAD (spatial zeros), CONCATENATION, RELU, RELU6, LOGISTIC, TANH, HARD_SWISH,
LEAKY_RELU, SOFTMAX. Another op is an EdgecError naming it. The model is checked against the IR
trainer's forward pass on random inputs before it is returned.
"""
from __future__ import annotations

import numpy as np

from ..errors import EdgecError
from ..ir import Graph, Op

ACTIVATIONS = {"NONE": None, "RELU": "relu", "RELU6": "relu6"}
UNARY = {"RELU": "relu", "RELU6": "relu6", "LOGISTIC": "sigmoid", "TANH": "tanh", "HARD_SWISH": "hard_swish"}
TOLERANCE = 1e-4        # max |keras - IR| relative to max |IR| on the check inputs


def _keras():
    import keras
    return keras


class _Builder:
    def __init__(self, g: Graph):
        self.g, self.k = g, _keras()
        self.env: dict = {}
        self.names: dict[str, int] = {}

    def name(self, base: str) -> str:
        n = self.names.get(base, 0)
        self.names[base] = n + 1
        return f"{base}_{n}"

    def const(self, name: str | None) -> np.ndarray | None:
        return None if name is None else np.asarray(self.g.tensors[name].data, np.float32)

    def fused(self, y, op: Op):
        a = _activation(op)
        return y if a is None else self.k.layers.Activation(a, name=self.name("act"))(y)

    def layer(self, layer, x, weights: list[np.ndarray]):
        y = layer(x)
        layer.set_weights(weights)
        return y


def _activation(op: Op) -> str | None:
    """The Keras activation of op's fused activation (None: none)."""
    a = op.attrs.get("fused_activation_function", "NONE") or "NONE"
    if a not in ACTIVATIONS:
        raise EdgecError(f"export to Keras: {op.type} {op.name} has fused activation {a}, which has no Keras layer")
    return ACTIVATIONS[a]


def _spatial(op: Op) -> dict:
    return dict(strides=(op.attrs.get("stride_h", 1), op.attrs.get("stride_w", 1)),
                padding=str(op.attrs.get("padding", "VALID")).lower())


def _conv(b: _Builder, op: Op, x):
    k = b.k
    w, bias = b.const(op.inputs[1]), b.const(op.inputs[2] if len(op.inputs) > 2 else None)
    dil = (op.attrs.get("dilation_h_factor", 1), op.attrs.get("dilation_w_factor", 1))
    if dil != (1, 1) and _spatial(op)["strides"] != (1, 1):
        raise EdgecError(f"export to Keras: {op.type} {op.name} has both strides and dilation")
    act = _activation(op)
    if op.type == "CONV_2D":
        groups = b.g.tensors[op.inputs[0]].shape[-1] // w.shape[3]
        layer = k.layers.Conv2D(w.shape[0], w.shape[1:3], dilation_rate=dil, groups=groups, use_bias=bias is not None,
                                activation=act, name=b.name("conv2d"), **_spatial(op))
        weights = [w.transpose(1, 2, 3, 0)]
    else:
        c = b.g.tensors[op.inputs[0]].shape[-1]
        m = w.shape[3] // c
        layer = k.layers.DepthwiseConv2D(w.shape[1:3], depth_multiplier=m, dilation_rate=dil, use_bias=bias is not None,
                                         activation=act, name=b.name("depthwise_conv2d"), **_spatial(op))
        weights = [w[0].reshape(w.shape[1], w.shape[2], c, m)]
    return b.layer(layer, x, weights + ([bias] if bias is not None else []))


def _dense(b: _Builder, op: Op, x):
    k = b.k
    w, bias = b.const(op.inputs[1]), b.const(op.inputs[2] if len(op.inputs) > 2 else None)
    shape = b.g.tensors[op.inputs[0]].shape
    if op.attrs.get("keep_num_dims"):
        if shape[-1] != w.shape[1]:
            raise EdgecError(f"export to Keras: FULLY_CONNECTED {op.name} keeps dims but reads rows of {w.shape[1]}")
    elif len(shape) != 2 or shape[0] != 1:
        if int(np.prod(shape)) != w.shape[1]:
            raise EdgecError(f"export to Keras: FULLY_CONNECTED {op.name} reads a batch of {list(shape)} as rows "
                             f"of {w.shape[1]}")
        x = k.layers.Flatten(name=b.name("flatten"))(x)
    layer = k.layers.Dense(w.shape[0], use_bias=bias is not None, activation=_activation(op), name=b.name("dense"))
    return b.layer(layer, x, [w.T] + ([bias] if bias is not None else []))


def _pool(b: _Builder, op: Op, x):
    cls = b.k.layers.AveragePooling2D if op.type == "AVERAGE_POOL_2D" else b.k.layers.MaxPooling2D
    y = cls((op.attrs["filter_height"], op.attrs["filter_width"]), name=b.name("pool"), **_spatial(op))(x)
    return b.fused(y, op)


def _mean(b: _Builder, op: Op, x):
    rank = len(b.g.tensors[op.inputs[0]].shape)
    axes = sorted(int(a) % rank for a in np.asarray(b.g.tensors[op.inputs[1]].data).reshape(-1))
    if rank != 4 or axes != [1, 2]:
        raise EdgecError(f"export to Keras: MEAN {op.name} over axes {axes} of a rank-{rank} tensor "
                         f"(only the spatial mean of [N, H, W, C], global average pooling)")
    return b.k.layers.GlobalAveragePooling2D(keepdims=bool(op.attrs.get("keep_dims")), name=b.name("gap"))(x)


def _binary(b: _Builder, op: Op, _x):
    k, g = b.k, b.g
    acts = [i for i in op.inputs if not g.tensors[i].is_const]
    if len(acts) == 2:
        if g.tensors[acts[0]].shape != g.tensors[acts[1]].shape:
            raise EdgecError(f"export to Keras: {op.type} {op.name} broadcasts two activations")
        cls = {"ADD": k.layers.Add, "SUB": k.layers.Subtract, "MUL": k.layers.Multiply}[op.type]
        return b.fused(cls(name=b.name(op.type.lower()))([b.env[a] for a in acts]), op)
    if len(acts) != 1:
        raise EdgecError(f"export to Keras: {op.type} {op.name} of constants only (fold constants first)")
    const_at = next(j for j, i in enumerate(op.inputs) if g.tensors[i].is_const)
    c = b.const(op.inputs[const_at])
    ch = g.tensors[acts[0]].shape[-1]
    if op.type == "SUB" and const_at == 0 or c.size not in (1, ch) or (c.ndim > 1 and c.shape[-1] != c.size):
        raise EdgecError(f"export to Keras: {op.type} {op.name} with a constant of shape {list(c.shape)} "
                         f"(only a per-channel or scalar constant after the activation)")
    c = np.broadcast_to(c.reshape(-1), (ch,)).astype(np.float32)
    gamma = c if op.type == "MUL" else np.ones(ch, np.float32)
    beta = np.zeros(ch, np.float32) if op.type == "MUL" else (c if op.type == "ADD" else -c)
    eps = 1e-3       # variance 1 - eps makes sqrt(var + eps) = 1: y = gamma * x + beta
    layer = k.layers.BatchNormalization(epsilon=eps, name=b.name("affine"))
    y = b.layer(layer, b.env[acts[0]], [gamma, beta, np.zeros(ch, np.float32), np.full(ch, 1 - eps, np.float32)])
    return b.fused(y, op)


def _reshape(b: _Builder, op: Op, x):
    src, dst = b.g.tensors[op.inputs[0]].shape, b.g.tensors[op.outputs[0]].shape
    if not src or not dst or src[0] != 1 or dst[0] != 1:
        raise EdgecError(f"export to Keras: {op.type} {op.name} moves the batch axis ({list(src)} -> {list(dst)})")
    return b.k.layers.Reshape(dst[1:], name=b.name("reshape"))(x)


def _pad(b: _Builder, op: Op, x):
    p = np.asarray(b.g.tensors[op.inputs[1]].data).reshape(-1, 2)
    if len(p) != 4 or p[0].any() or p[3].any() or (len(op.inputs) > 2 and op.inputs[2] is not None):
        raise EdgecError(f"export to Keras: PAD {op.name} pads other than H and W with zeros")
    return b.k.layers.ZeroPadding2D(((int(p[1, 0]), int(p[1, 1])), (int(p[2, 0]), int(p[2, 1]))), name=b.name("pad"))(x)


def _concat(b: _Builder, op: Op, _x):
    rank = len(b.g.tensors[op.outputs[0]].shape)
    axis = int(op.attrs.get("axis", 0)) % rank
    if axis == 0 or any(b.g.tensors[i].is_const for i in op.inputs):
        raise EdgecError(f"export to Keras: CONCATENATION {op.name} on the batch axis or of constants")
    y = b.k.layers.Concatenate(axis=axis, name=b.name("concat"))([b.env[i] for i in op.inputs])
    return b.fused(y, op)


def _unary(b: _Builder, op: Op, x):
    k = b.k
    if op.type == "LEAKY_RELU":
        return k.layers.LeakyReLU(negative_slope=float(op.attrs.get("alpha", 0.0)), name=b.name("leaky_relu"))(x)
    if op.type == "SOFTMAX":
        beta = float(np.float32(op.attrs.get("beta", 1.0)))
        if beta != 1.0:
            x = k.layers.Rescaling(beta, name=b.name("beta"))(x)
        return k.layers.Softmax(axis=-1, name=b.name("softmax"))(x)
    return k.layers.Activation(UNARY[op.type], name=b.name(op.type.lower()))(x)


LAYERS = {"CONV_2D": _conv, "DEPTHWISE_CONV_2D": _conv, "FULLY_CONNECTED": _dense, "AVERAGE_POOL_2D": _pool,
          "MAX_POOL_2D": _pool, "MEAN": _mean, "RESHAPE": _reshape, "SQUEEZE": _reshape, "PAD": _pad,
          "CONCATENATION": _concat, "LEAKY_RELU": _unary, "SOFTMAX": _unary,
          **{t: _unary for t in UNARY}}


def export_keras(g: Graph, check: bool = True):
    """`g` (float, batch-1 inputs) as a keras.Model with a free batch axis; with `check`, its outputs
    are compared with the IR trainer's on random inputs (EdgecError if they differ)."""
    k = _keras()
    b = _Builder(g)
    inputs = []
    for name in g.inputs:
        t = g.tensors[name]
        if t.dtype != "float32" or not t.shape or t.shape[0] != 1:
            raise EdgecError(f"export to Keras: input {name!r} must be float32 with a batch of 1, "
                             f"is {t.dtype} {list(t.shape)}")
        inputs.append(k.Input(t.shape[1:], name=b.name("input")))
        b.env[name] = inputs[-1]
    for op in g.ops:
        if op.type in ("ADD", "SUB", "MUL"):
            y = _binary(b, op, None)
        elif op.type in LAYERS:
            y = LAYERS[op.type](b, op, b.env[op.inputs[0]])
        else:
            raise EdgecError(f"export to Keras: op {op.type} ({op.name}) has no Keras layer here; "
                             f"supported: {', '.join(sorted(set(LAYERS) | {'ADD', 'SUB', 'MUL'}))}")
        b.env[op.outputs[0]] = y
    outputs = [b.env[o] for o in g.outputs]
    model = k.Model(inputs[0] if len(inputs) == 1 else inputs, outputs[0] if len(outputs) == 1 else outputs,
                    name=_keras_name(g.name))
    if check:
        _check(g, model)
    return model


def _keras_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch == "_" else "_" for ch in name) or "model"


def _check(g: Graph, model) -> None:
    from .model import build_model
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((4,) + g.tensors[n].shape[1:]).astype(np.float32) for n in g.inputs]
    want = [np.asarray(y) for y in build_model(g).forward(xs)]
    got = model(xs if len(xs) > 1 else xs[0], training=False)
    got = got if isinstance(got, (list, tuple)) else [got]
    for name, w, y in zip(g.outputs, want, got):
        y = np.asarray(y).reshape(w.shape)
        err = float(np.abs(y - w).max())
        if err > TOLERANCE * max(1.0, float(np.abs(w).max())):
            raise EdgecError(f"export to Keras: output {name!r} differs from the IR graph's by {err:.3g}")
