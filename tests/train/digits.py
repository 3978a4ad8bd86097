"""sklearn digits (8x8) as IR-graph training data, and small float models for them."""
import numpy as np

from graphs import Builder


def digits(seed: int = 0):
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[..., None]          # [N, 8, 8, 1]
    y = d.target.astype(np.int64)
    idx = np.random.default_rng(seed).permutation(len(y))
    x, y = x[idx], y[idx]
    return {"x": x[:1200], "y": y[:1200]}, {"x": x[1200:1500], "y": y[1200:1500]}, {"x": x[1500:], "y": y[1500:]}


def _he(b, name, shape, fan_in):
    return b.const(name, b.rng.standard_normal(shape).astype(np.float32) * np.float32(np.sqrt(2.0 / fan_in)))


def digits_cnn(seed: int = 0):
    """conv3x3(8, relu) -> conv3x3 s2 (16, relu6) -> reshape -> fc 10 -> softmax."""
    b = Builder(seed)
    x = b.input((1, 8, 8, 1))
    w1, b1 = _he(b, "c1_w", (8, 3, 3, 1), 9), b.const("c1_b", np.zeros(8))
    y = b.op("CONV_2D", [x, w1, b1], (1, 8, 8, 8), "conv1", padding="SAME", stride_h=1, stride_w=1,
             fused_activation_function="RELU")
    w2, b2 = _he(b, "c2_w", (16, 3, 3, 8), 72), b.const("c2_b", np.zeros(16))
    y = b.op("CONV_2D", [y, w2, b2], (1, 4, 4, 16), "conv2", padding="SAME", stride_h=2, stride_w=2,
             fused_activation_function="RELU6")
    y = b.reshape(y, (1, 256))
    w3, b3 = _he(b, "fc_w", (10, 256), 256), b.const("fc_b", np.zeros(10))
    y = b.op("FULLY_CONNECTED", [y, w3, b3], (1, 10), "logits", fused_activation_function="NONE")
    y = b.op("SOFTMAX", [y], (1, 10), "probs", beta=1.0)
    return b.output(y)


def digits_mlp(seed: int = 0):
    b = Builder(seed)
    x = b.input((1, 8, 8, 1))
    y = b.reshape(x, (1, 64))
    w1, b1 = _he(b, "fc1_w", (32, 64), 64), b.const("fc1_b", np.zeros(32))
    y = b.op("FULLY_CONNECTED", [y, w1, b1], (1, 32), "fc1", fused_activation_function="RELU")
    w2, b2 = _he(b, "fc2_w", (10, 32), 32), b.const("fc2_b", np.zeros(10))
    y = b.op("FULLY_CONNECTED", [y, w2, b2], (1, 10), "logits", fused_activation_function="NONE")
    return b.output(y)
