"""A small zoo of realistic float .tflite models, built from Keras 3 with seeded random weights.

Each builder returns (tflite_bytes, calibration x: float32 [N, ...]). The models are made the way a
user makes them (Keras -> tf.lite.TFLiteConverter.from_keras_model, float, no optimizations), with
small inputs so each builds in seconds. Nothing is downloaded (weights=None).

`ZOO` maps a name to its builder; tests cache the bytes per session (see test_real_models.py).
"""
from __future__ import annotations

import numpy as np

CALIB_N = 16


def _keras():
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf
    return keras, tf


def _seed(seed: int):
    keras, tf = _keras()
    keras.utils.set_random_seed(seed)


def _randomize_batchnorm(model, seed: int) -> None:
    """Give BatchNormalization layers non-trivial statistics (as a trained model has), so the
    importer's BN folding and the quantizer see realistic per-channel ranges."""
    import keras
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = [w.shape for w in layer.get_weights()]
            layer.set_weights([rng.uniform(0.6, 1.4, gamma).astype(np.float32),
                               rng.uniform(-0.2, 0.2, beta).astype(np.float32),
                               rng.uniform(-0.2, 0.2, mean).astype(np.float32),
                               rng.uniform(0.5, 2.0, var).astype(np.float32)])


def _convert(model) -> bytes:
    import contextlib
    import io
    _, tf = _keras()
    with contextlib.redirect_stdout(io.StringIO()):   # Keras' export prints the signatures
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _calib(shape, seed: int, n: int = CALIB_N) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1.0, 1.0, (n,) + tuple(shape)).astype(np.float32)


# -- 1. MobileNetV2 + SSD head ------------------------------------------------------------------
SSD_CLASSES = 5


def mobilenet_v2_ssd(seed: int = 0):
    """MobileNetV2 (alpha 0.35, 96x96) backbone with an SSD head on three feature maps: per-map 3x3
    conv box / class predictors, RESHAPE to [1, -1, 4] / [1, -1, C], CONCATENATION across scales,
    LOGISTIC on the class scores. Outputs: boxes [1, A, 4], scores [1, A, C]."""
    keras, tf = _keras()
    _seed(seed)
    inp = keras.Input(batch_shape=(1, 96, 96, 3), name="image")
    backbone = keras.applications.MobileNetV2(alpha=0.35, input_tensor=inp, include_top=False,
                                              weights=None)
    _randomize_batchnorm(backbone, seed)
    feats = [backbone.get_layer(n).output
             for n in ("block_6_expand_relu", "block_13_expand_relu", "out_relu")]   # 12x12, 6x6, 3x3
    anchors = (3, 3, 2)
    boxes, scores = [], []
    for k, (f, a) in enumerate(zip(feats, anchors)):
        b = keras.layers.Conv2D(a * 4, 3, padding="same", name=f"box_{k}")(f)
        c = keras.layers.Conv2D(a * SSD_CLASSES, 3, padding="same", name=f"cls_{k}")(f)
        boxes.append(keras.layers.Reshape((-1, 4), name=f"box_flat_{k}")(b))
        scores.append(keras.layers.Reshape((-1, SSD_CLASSES), name=f"cls_flat_{k}")(c))
    box = keras.layers.Concatenate(axis=1, name="boxes")(boxes)
    cls = keras.layers.Concatenate(axis=1, name="class_logits")(scores)
    cls = keras.layers.Activation("sigmoid", name="scores")(cls)
    model = keras.Model(inp, [box, cls], name="mobilenet_v2_ssd")
    return _convert(model), _calib((96, 96, 3), seed)


# -- 2. MobileNetV3Small ------------------------------------------------------------------------
def mobilenet_v3_small(seed: int = 0):
    """keras.applications.MobileNetV3Small (alpha 0.75, 96x96, 10 classes): HARD_SWISH,
    squeeze-excite (MEAN, MUL), residual ADD, SOFTMAX."""
    keras, tf = _keras()
    _seed(seed)
    inp = keras.Input(batch_shape=(1, 96, 96, 3), name="image")
    model = keras.applications.MobileNetV3Small(input_tensor=inp, alpha=0.75, minimalistic=False,
                                                weights=None, include_preprocessing=False, classes=10)
    _randomize_batchnorm(model, seed)
    return _convert(model), _calib((96, 96, 3), seed)


# -- 3. a face/hand-landmark-style net ----------------------------------------------------------
def _depth_to_space(x):
    import tensorflow as tf
    return tf.nn.depth_to_space(x, 2)


def _resize_nearest(x):
    # keras' UpSampling2D(interpolation="nearest") lowers to TILE + RESHAPE; tf.image.resize is
    # what landmark models use, and it converts to RESIZE_NEAREST_NEIGHBOR
    import tensorflow as tf
    return tf.image.resize(x, (2 * x.shape[1], 2 * x.shape[2]), method="nearest")


def _space_to_depth(x):
    import tensorflow as tf
    return tf.nn.space_to_depth(x, 2)


def landmark(seed: int = 0):
    """A landmark net on a 64x64 crop: conv stem, depthwise-separable blocks with PRELU and
    LEAKY_RELU, PAD, residual ADD, SPACE_TO_DEPTH / DEPTH_TO_SPACE, bilinear and nearest upsampling,
    a TRANSPOSE_CONV, STRIDED_SLICE, pooling, and two heads: a heatmap [1, 32, 32, 8] (logistic)
    and a TANH regression of 2D points [1, 42]."""
    keras, tf = _keras()
    L = keras.layers
    _seed(seed)
    inp = keras.Input(batch_shape=(1, 64, 64, 3), name="crop")
    x = L.Conv2D(16, 3, strides=2, padding="same", name="stem")(inp)                  # 32x32x16
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.PReLU(shared_axes=[1, 2], name="stem_prelu")(x)

    def ds_block(x, cout, stride, act, name):
        y = x
        if stride == 2:
            y = L.ZeroPadding2D(((1, 1), (1, 1)), name=f"{name}_pad")(y)   # not SAME: stays a PAD
        y = L.DepthwiseConv2D(3, strides=stride, padding="valid" if stride == 2 else "same",
                              name=f"{name}_dw")(y)
        y = L.BatchNormalization(name=f"{name}_dw_bn")(y)
        y = act(f"{name}_dw_act")(y)
        y = L.Conv2D(cout, 1, name=f"{name}_pw")(y)
        y = L.BatchNormalization(name=f"{name}_pw_bn")(y)
        if stride == 1 and x.shape[-1] == cout:
            y = L.Add(name=f"{name}_add")([x, y])
        return act(f"{name}_out_act")(y)

    prelu = lambda name: L.PReLU(shared_axes=[1, 2], name=name)  # noqa: E731
    leaky = lambda name: L.LeakyReLU(negative_slope=0.1, name=name)  # noqa: E731
    x = ds_block(x, 16, 1, prelu, "b1")                                                  # 32x32x16
    skip = x
    x = ds_block(x, 24, 2, leaky, "b2")                                                  # 16x16x24
    x = ds_block(x, 24, 1, leaky, "b3")
    s2d = L.Lambda(_space_to_depth, name="s2d")(x)                                       # 8x8x96
    x = L.Conv2D(32, 1, name="s2d_pw")(s2d)
    x = L.PReLU(shared_axes=[1, 2], name="s2d_prelu")(x)
    x = ds_block(x, 32, 1, prelu, "b4")                                                  # 8x8x32

    # regression head: pool, dense, tanh
    r = L.MaxPooling2D(2, name="reg_maxpool")(x)                                         # 4x4x32
    r = L.AveragePooling2D(2, name="reg_avgpool")(r)                                     # 2x2x32
    r = L.Flatten(name="reg_flat")(r)
    r = L.Dense(42, name="reg_dense")(r)
    reg = L.Activation("tanh", name="points")(r)

    # heatmap head: three ways up to 32x32
    up_b = L.UpSampling2D(2, interpolation="bilinear", name="up_bilinear")(x)            # 16x16x32
    up_t = L.Conv2DTranspose(16, 3, strides=2, padding="same", name="up_transpose")(x)    # 16x16x16
    d2s = L.Lambda(_depth_to_space, name="d2s")(x)                                       # 16x16x8
    h = L.Concatenate(name="up_cat")([up_b, up_t, d2s])                                  # 16x16x56
    h = L.Conv2D(32, 3, padding="same", name="head_conv")(h)
    h = L.LeakyReLU(negative_slope=0.2, name="head_leaky")(h)
    h = L.Lambda(_resize_nearest, name="up_nearest")(h)                 # 32x32x32
    h = L.Add(name="skip_add")([h[:, :, :, :16], skip])                                  # STRIDED_SLICE
    h = L.Conv2D(8, 1, name="heat_logits")(h)
    heat = L.Activation("sigmoid", name="heatmap")(h)
    model = keras.Model(inp, [heat, reg], name="landmark")
    _randomize_batchnorm(model, seed)
    return _convert(model), _calib((64, 64, 3), seed)


# -- 4. models edgec must refuse ----------------------------------------------------------------
def with_cumsum(seed: int = 0):
    """A small CNN whose features go through tf.math.cumsum (CUMSUM, outside the registry)."""
    keras, tf = _keras()
    L = keras.layers
    _seed(seed)
    inp = keras.Input(batch_shape=(1, 16, 16, 3), name="x")
    x = L.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inp)
    x = L.Lambda(lambda t: tf.math.cumsum(t, axis=1), name="cumsum")(x)
    x = L.GlobalAveragePooling2D()(x)
    out = L.Dense(4)(x)
    return _convert(keras.Model(inp, out, name="with_cumsum")), _calib((16, 16, 3), seed)


def with_lstm(seed: int = 0):
    """A keyword-spotting-style LSTM over 10 frames. Keras 3's LSTM converts to a WHILE loop over
    a body subgraph (not the fused UNIDIRECTIONAL_SEQUENCE_LSTM that tf.keras 2 produced)."""
    keras, tf = _keras()
    L = keras.layers
    _seed(seed)
    inp = keras.Input(batch_shape=(1, 10, 8), name="frames")
    x = L.LSTM(12, unroll=False)(inp)
    out = L.Dense(3)(x)
    return _convert(keras.Model(inp, out, name="with_lstm")), _calib((10, 8), seed)


CUSTOM_CODE = "MyCustomOp"


def with_custom_op(base: bytes, op_type: str = "LOGISTIC", custom_code: str = CUSTOM_CODE):
    """`base` with the operator code of `op_type` rewritten to CUSTOM `custom_code` (what a model
    holding a user's custom kernel looks like). Returns (bytes, index of the first rewritten op)."""
    import flatbuffers
    from edgec.tflite_schema import schema
    m = schema.ModelT.InitFromPackedBuf(bytearray(base), 0)
    want = getattr(schema.BuiltinOperator, op_type)
    idx = [k for k, c in enumerate(m.operatorCodes)
           if max(c.builtinCode, c.deprecatedBuiltinCode) == want]
    if not idx:
        raise ValueError(f"the model has no {op_type} op")
    code = m.operatorCodes[idx[0]]
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode = custom_code
    first = None
    for k, o in enumerate(m.subgraphs[0].operators):
        if o.opcodeIndex == idx[0]:
            # a custom op carries flexbuffer options, not builtin ones
            o.builtinOptionsType, o.builtinOptions = 0, None
            o.customOptions = []
            first = k if first is None else first
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output()), first


ZOO = {
    "mobilenet_v2_ssd": mobilenet_v2_ssd,
    "mobilenet_v3_small": mobilenet_v3_small,
    "landmark": landmark,
    "with_cumsum": with_cumsum,
    "with_lstm": with_lstm,
}


def op_types(tflite: bytes) -> dict[str, int]:
    """Op type -> count, read straight from the flatbuffer (custom ops as CUSTOM:<code>)."""
    from edgec.tflite_schema import BUILTIN_NAMES, schema
    m = schema.ModelT.InitFromPackedBuf(bytearray(tflite), 0)
    counts: dict[str, int] = {}
    for o in m.subgraphs[0].operators:
        c = m.operatorCodes[o.opcodeIndex]
        name = BUILTIN_NAMES.get(max(c.builtinCode, c.deprecatedBuiltinCode), "?")
        if name == "CUSTOM":
            cc = c.customCode.decode() if isinstance(c.customCode, bytes) else c.customCode
            name = f"CUSTOM:{cc}"
        counts[name] = counts.get(name, 0) + 1
    return counts
