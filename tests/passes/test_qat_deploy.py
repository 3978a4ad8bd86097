"""QAT weights quantize to exactly what the deployed model stores: the quantize pass keeps the levels
and scales the qat pass trained with, and `edgec compile --qat` runs both."""
import json

import numpy as np
import pytest

from edgec.calibrate import observe
from edgec.cli import main
from edgec.data import dataset_from
from edgec.passes import Pipeline, Step
from graphs import small_cnn


@pytest.mark.parametrize("scheme,bits", [("ternary", 8), ("binary", 8), ("uniform", 4)])
def test_deployed_weights_are_the_trained_levels(scheme, bits):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 8, 8, 1)).astype(np.float32)
    data = dataset_from({"x": x, "y": rng.integers(0, 10, 64)})
    opts = {"weight_scheme": scheme, "weight_bits": bits}
    trained, _ = Pipeline([Step("qat", {**opts, "epochs": 1})]).run(small_cnn(), calibration=data, train_data=data)
    levels = {op.name: trained.tensors[op.inputs[1]].meta["qat_levels"] for op in trained.ops
              if op.inputs[1:] and trained.tensors[op.inputs[1]].meta.get("qat_levels") is not None}
    assert levels
    q, rep = Pipeline([Step("quantize", opts)]).run(trained, calibration=data,
                                                     observe=lambda g: observe(g, [x[:16]]))
    assert rep[0]["qat_layers"] == len(levels)
    for op in q.ops:
        if op.name in levels:
            w = q.tensors[op.inputs[1]]
            assert np.array_equal(w.data, levels[op.name]), op.name
            assert w.quant.scheme == scheme


def test_compile_with_qat(tmp_path, capsys):
    from edgec.backends.tflite import write_tflite
    rng = np.random.default_rng(1)
    (tmp_path / "m.tflite").write_bytes(write_tflite(small_cnn()))
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((64, 8, 8, 1)).astype(np.float32), y=rng.integers(0, 10, 64))
    args = ["compile", str(tmp_path / "m.tflite"), "-o", str(tmp_path / "o"), "--quantize", "ternary",
            "--calibration", str(tmp_path / "d.npz"), "--qat", "--train-data", str(tmp_path / "d.npz"),
            "--epochs", "1", "--json"]
    assert main(args) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["recipe"][-2:] == ["qat", "quantize"]
    assert [p for p in rep["passes"] if p["name"] == "quantize"][0]["qat_layers"] == 3   # conv, conv, fc
    assert main(["compile", str(tmp_path / "m.tflite"), "-o", str(tmp_path / "p"), "--qat"]) == 2
    assert "--qat" in capsys.readouterr().err
