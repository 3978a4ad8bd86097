"""Small float graphs built by hand for pass and backend tests."""
from __future__ import annotations

import numpy as np

from edgec.ir import Graph, Op, Tensor
from edgec.ir.ops import default_attrs


class Builder:
    def __init__(self, seed: int = 0):
        self.g = Graph(name="test")
        self.rng = np.random.default_rng(seed)

    def input(self, shape, name="x"):
        self.g.add_tensor(Tensor(name, shape))
        self.g.inputs.append(name)
        return name

    def const(self, name, data):
        return self.g.const(name, np.asarray(data, np.float32))

    def rand(self, name, shape, scale=0.5):
        return self.const(name, self.rng.standard_normal(shape).astype(np.float32) * scale)

    def op(self, type_, inputs, out_shape, name=None, **attrs):
        out = self.g.unique_name(name or type_.lower())
        self.g.add_tensor(Tensor(out, out_shape))
        self.g.ops.append(Op(type_, list(inputs), [out], default_attrs(type_, **attrs)))
        return out

    def conv(self, x, cout, k=3, stride=1, act="NONE", name=None):
        h, w, cin = self.g.tensors[x].shape[1:]
        wt = self.rand((name or "conv") + "_w", (cout, k, k, cin))
        b = self.rand((name or "conv") + "_b", (cout,), 0.1)
        oh, ow = -(-h // stride), -(-w // stride)
        return self.op("CONV_2D", [x, wt, b], (1, oh, ow, cout), name, padding="SAME", stride_h=stride,
                       stride_w=stride, fused_activation_function=act)

    def fc(self, x, units, act="NONE", name=None):
        n = self.g.tensors[x].shape[-1]
        wt = self.rand((name or "fc") + "_w", (units, n))
        b = self.rand((name or "fc") + "_b", (units,), 0.1)
        return self.op("FULLY_CONNECTED", [x, wt, b], (1, units), name, fused_activation_function=act)

    def reshape(self, x, shape, name=None):
        s = self.g.const("shape", np.array(shape, np.int32))
        return self.op("RESHAPE", [x, s], tuple(shape), name, new_shape=list(shape))

    def output(self, *names):
        self.g.outputs.extend(names)
        return self.g


def small_cnn(seed: int = 0, act_op: bool = False) -> Graph:
    """conv -> relu -> conv(stride 2) -> reshape -> fc -> softmax, 8x8x1 input."""
    b = Builder(seed)
    x = b.input((1, 8, 8, 1))
    y = b.conv(x, 8, name="conv1", act="NONE" if act_op else "RELU")
    if act_op:
        y = b.op("RELU", [y], (1, 8, 8, 8), "relu1")
    y = b.conv(y, 12, stride=2, act="RELU6", name="conv2")
    y = b.reshape(y, (1, 4 * 4 * 12))
    y = b.fc(y, 10, name="logits")
    y = b.op("SOFTMAX", [y], (1, 10), "probs", beta=1.0)
    return b.output(y)
