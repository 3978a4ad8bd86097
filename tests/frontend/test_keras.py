"""Keras 3 .keras, legacy .h5, SavedModel directories and in-memory models all lower to the same IR."""
import json
import os

import numpy as np
import pytest

from edgec import api
from edgec.cli import main
from edgec.ir import structurally_equal


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf
    d = tmp_path_factory.mktemp("keras")
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1), name="image")
    y = keras.layers.Conv2D(6, 3, padding="same")(inp)
    y = keras.layers.BatchNormalization()(y)
    y = keras.layers.ReLU()(y)
    y = keras.layers.Flatten()(y)
    out = keras.layers.Dense(4, activation="softmax")(y)
    m = keras.Model(inp, out, name="tiny")
    m.layers[2].set_weights([np.linspace(0.5, 1.5, 6), np.linspace(-0.2, 0.2, 6),
                             np.linspace(-0.1, 0.1, 6), np.linspace(0.5, 2.0, 6)])
    m.save(d / "tiny.keras")
    m.save(d / "tiny.h5")
    tf.saved_model.save(m, str(d / "saved"))
    lam = keras.Model(inp, keras.layers.Lambda(lambda t: t * 2.0)(inp))
    lam.save(d / "lambda.keras")
    x = np.random.default_rng(0).random((40, 8, 8, 1)).astype(np.float32)
    np.savez(d / "calib.npz", x=x, y=np.random.default_rng(1).integers(0, 4, 40))
    return {"dir": d, "model": m, "x": x}


def test_all_keras_formats_import_to_the_same_graph(models):
    d = models["dir"]
    base = api.load(models["model"]).graph
    for path in ("tiny.keras", "tiny.h5", "saved"):
        g = api.load(str(d / path)).graph
        assert structurally_equal(base, g) is None, path
    assert [op.type for op in base.ops] == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]
    assert base.tensors[base.inputs[0]].shape == (1, 8, 8, 1)


def test_lowered_graph_matches_keras(models):
    from edgec.ir.interpret import run_batch
    g = api.load(models["model"]).graph
    x = models["x"][:5]
    np.testing.assert_allclose(run_batch(g, [x])[0], models["model"].predict(x, verbose=0), rtol=1e-4, atol=1e-5)


def test_keras_compile_is_deterministic(models, tmp_path):
    d = models["dir"]
    for out in ("a", "b"):
        api.compile(str(d / "tiny.keras"), tmp_path / out, quantize="int8", calibration=d / "calib.npz")
    assert (tmp_path / "a/model.tflite").read_bytes() == (tmp_path / "b/model.tflite").read_bytes()


def test_in_memory_model_compiles_through_the_api(models, tmp_path):
    rep = api.compile(models["model"], tmp_path / "o", quantize="int8", calibration={"x": models["x"]},
                      eval_data={"x": models["x"], "y": np.zeros(40, int)})
    assert rep["model"] == "tiny" and rep["totals"]["tflite_bytes"] > 0
    assert rep["evaluation"]["output_rmse"] < 0.05


def test_safe_mode_refuses_lambda_and_unsafe_loads_it(models, tmp_path, capsys):
    path = str(models["dir"] / "lambda.keras")
    assert main(["inspect", path]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--unsafe" in err
    with pytest.warns(UserWarning, match="safe_mode off"):
        assert main(["inspect", path, "--unsafe", "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    assert [r["op"] for r in layers] == ["MUL"]


def test_directory_that_is_not_a_savedmodel(tmp_path, capsys):
    assert main(["inspect", str(tmp_path)]) == 2
    assert "not a SavedModel" in capsys.readouterr().err
