"""Train the example model: a small Keras CNN on scikit-learn's 8x8 digits.

Deterministic (fixed seeds, TensorFlow op determinism) and quick (seconds on 2 cores). Writes, next to
this file:

  digits_cnn.keras   the trained float model (no optimizer state)
  digits_calib.npz   x: 100 training samples, float32 NHWC [100, 8, 8, 1] in [0, 1]; y: their labels
  digits_test.npz    x, y: the held-out 20% split (360 samples)

    python examples/train_digits.py [--out DIR] [--seed N]

`make demo` then compiles it:

    edgec compile examples/digits_cnn.keras -o out/digits --quantize int8 \
        --calibration examples/digits_calib.npz --eval-data examples/digits_test.npz
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

HERE = Path(__file__).resolve().parent
SEED = 0
EPOCHS = 40
BATCH = 32
N_CALIB = 100


def load_data(seed: int = SEED):
    """The digits split: (x_train, y_train, x_test, y_test); x float32 [N, 8, 8, 1] in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
    return x_tr, y_tr, x_te, y_te


def build_model():
    import keras
    from keras import layers
    inp = keras.Input((8, 8, 1), name="image")
    x = layers.Conv2D(16, 3, padding="same", use_bias=False, name="conv1")(inp)
    x = layers.BatchNormalization(name="bn1")(x)
    x = layers.ReLU(name="relu1")(x)
    x = layers.DepthwiseConv2D(3, strides=2, padding="same", name="dw2")(x)
    x = layers.ReLU(name="relu2")(x)
    x = layers.Conv2D(32, 1, activation="relu", name="pw2")(x)
    x = layers.Flatten(name="flatten")(x)
    out = layers.Dense(10, activation="softmax", name="logits")(x)
    return keras.Model(inp, out, name="digits_cnn")


def seed_everything(seed: int) -> None:
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # already enabled, or an old TF
        pass


def strip_optimizer(model):
    """A copy of `model` with the same weights and no optimizer/compile state (a smaller .keras)."""
    import keras
    clean = keras.models.clone_model(model)
    clean.set_weights(model.get_weights())
    return clean


def train(seed: int = SEED, epochs: int = EPOCHS, verbose: int = 0):
    """Train from scratch. Returns (model, data) with data = (x_train, y_train, x_test, y_test)."""
    seed_everything(seed)
    import keras
    x_tr, y_tr, x_te, y_te = load_data(seed)
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x_tr, y_tr, batch_size=BATCH, epochs=epochs, shuffle=True, verbose=verbose)
    return strip_optimizer(model), (x_tr, y_tr, x_te, y_te)


def calibration_subset(x_tr, y_tr, n: int = N_CALIB, seed: int = SEED):
    """`n` training samples, chosen with a fixed seed (10 per class for n=100)."""
    rng = np.random.default_rng(seed)
    per = n // 10
    idx = np.concatenate([rng.choice(np.flatnonzero(y_tr == c), per, replace=False) for c in range(10)])
    idx = np.sort(idx)
    return x_tr[idx], y_tr[idx]


def save_small(model, path) -> None:
    """model.save(), then the archive re-written with deflate: Keras stores its members uncompressed,
    and the HDF5 weights file is mostly padding (116 KiB -> 27 KiB here). Keras loads either."""
    import io
    import zipfile
    path = Path(path)
    model.save(path)
    with zipfile.ZipFile(path) as src:
        members = [(i.filename, src.read(i.filename)) for i in src.infolist()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for name, data in members:
            dst.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data,
                         compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    path.write_bytes(buf.getvalue())


def accuracy(model, x, y) -> float:
    p = model.predict(x, batch_size=256, verbose=0)
    return float((p.argmax(-1) == y).mean())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(HERE), help="output folder (default: examples/)")
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    model, (x_tr, y_tr, x_te, y_te) = train(args.seed, args.epochs, verbose=2 if args.verbose else 0)
    secs = time.perf_counter() - t0
    acc = accuracy(model, x_te, y_te)
    xc, yc = calibration_subset(x_tr, y_tr, seed=args.seed)

    save_small(model, out / "digits_cnn.keras")
    np.savez_compressed(out / "digits_calib.npz", x=xc.astype(np.float32), y=yc.astype(np.int64))
    np.savez_compressed(out / "digits_test.npz", x=x_te.astype(np.float32), y=y_te.astype(np.int64))
    sizes = {p: (out / p).stat().st_size for p in ("digits_cnn.keras", "digits_calib.npz", "digits_test.npz")}
    print(f"trained {model.name} ({model.count_params()} params) in {secs:.1f} s: "
          f"test accuracy {acc:.2%} on {len(y_te)} samples")
    for p, s in sizes.items():
        print(f"  wrote {out / p} ({s / 1024:.1f} KiB)")
    if acc < 0.95:
        print(f"warning: test accuracy {acc:.2%} is below the 95% target")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
