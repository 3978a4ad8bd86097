"""QAT weights quantize to exactly what the deployed model stores: the quantize pass keeps the levels
and scales the qat pass trained with (and its kmeans codebooks and group multipliers), the C artifact
computes what the reference interpreter does, and `edgec compile --qat` runs both passes."""
import json

import numpy as np
import pytest

from ccheck import check_c_exact
from edgec import quant_weights as qw
from edgec.backends.c.pack_weights import weight_rows
from edgec.calibrate import observe
from edgec.cli import main
from edgec.data import dataset_from
from edgec.errors import EdgecError
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


def _qat_then_quantize(opts, n=48):
    """small_cnn trained by the qat pass (n < 50 samples: no held-out split, the last epoch is kept),
    then quantized; returns (trained graph, quantized graph, quantize report, input samples)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, 8, 8, 1)).astype(np.float32)
    data = dataset_from({"x": x, "y": rng.integers(0, 10, n)})
    obs = lambda g: observe(g, [x[:16]])  # noqa: E731
    trained, _ = Pipeline([Step("qat", {**opts, "epochs": 2, "lr": 1e-2})]).run(
        small_cnn(), calibration=data, train_data=data, observe=obs)
    q, rep = Pipeline([Step("quantize", opts)]).run(trained.copy(), calibration=data, observe=obs)
    return trained, q, rep[0], x


def _deployed_weights(trained, q):
    """{op name: (trained weight tensor, deployed weight tensor)} for the ops the qat pass trained."""
    out = {}
    for op in q.ops:
        src = [t for t in trained.ops if t.name == op.name]
        if src and op.inputs[1:] and "qat_levels" in trained.tensors[src[0].inputs[1]].meta:
            out[op.name] = (trained.tensors[src[0].inputs[1]], q.tensors[op.inputs[1]], op.type)
    return out


@pytest.mark.parametrize("bits,per_channel", [(4, True), (3, False)])
def test_kmeans_qat_deploys_the_trained_codebook(bits, per_channel):
    opts = {"weight_scheme": "kmeans", "weight_bits": bits, "per_channel": per_channel}
    trained, q, rep, x = _qat_then_quantize(opts)
    ws = _deployed_weights(trained, q)
    assert rep["qat_layers"] == len(ws) == 3
    for name, (t, w, _) in ws.items():
        book = t.meta["qat_codebook"]
        assert w.quant.scheme == "kmeans" and w.quant.bits == bits and w.quant.per_channel == per_channel
        np.testing.assert_array_equal(w.meta["codebook"], book)
        np.testing.assert_array_equal(w.data, t.meta["qat_levels"])               # the trained levels
        np.testing.assert_array_equal(w.quant.scale, t.meta["qat_scale"].reshape(-1))
        axis = w.quant.axis if per_channel else None
        shape = [-1 if k == axis else 1 for k in range(w.data.ndim)]
        # the deployed level x scale is, bit for bit, the weight the trained forward pass used
        np.testing.assert_array_equal((w.data * w.quant.scale.reshape(shape)).astype(np.float32), t.data)
        rows = qw.to_rows(w.data, axis)
        for r in range(rows.shape[0]):
            assert np.isin(rows[r], book[r] if per_channel else book).all(), name
    check_c_exact(q, inputs=[q.tensors[q.inputs[0]].quant.quantize(x[:20], "int8")])


@pytest.mark.parametrize("scheme,bits,n", [("uniform", 4, 5), ("ternary", 8, 8), ("binary", 8, 3)])
def test_group_qat_deploys_the_trained_multipliers(scheme, bits, n):
    opts = {"weight_scheme": scheme, "weight_bits": bits, "group_size": n}
    trained, q, rep, x = _qat_then_quantize(opts)
    ws = _deployed_weights(trained, q)
    assert rep["qat_layers"] == len(ws) == 3
    for name, (t, w, op_type) in ws.items():
        assert w.meta["group_size"] == n == t.meta["qat_group_size"]
        np.testing.assert_array_equal(w.meta["group_mult"], t.meta["qat_group_mult"])
        np.testing.assert_array_equal(w.data, t.meta["qat_levels"])
        shape = [-1 if k == w.quant.axis else 1 for k in range(w.data.ndim)]
        np.testing.assert_array_equal((w.data * w.quant.scale.reshape(shape)).astype(np.float32), t.data)
        q_ = qw.group_levels(weight_rows(op_type, w.data), w.meta["group_mult"], n)
        assert set(np.unique(q_).tolist()) <= set(qw.levels(w.quant.bits, scheme).astype(int).tolist())
    check_c_exact(q, inputs=[q.tensors[q.inputs[0]].quant.quantize(x[:20], "int8")])


@pytest.mark.parametrize("opts,match", [({"weight_scheme": "kmeans", "weight_bits": 4, "lsq": True}, "lsq"),
                                        ({"weight_scheme": "pow2", "weight_bits": 4, "group_size": 8}, "pow2"),
                                        ({"weight_bits": 4, "group_size": -1}, "group_size")])
def test_qat_refuses_untrainable_formats(opts, match):
    data = dataset_from({"x": np.zeros((8, 8, 8, 1), np.float32), "y": np.zeros(8, np.int64)})
    with pytest.raises(EdgecError, match=match):
        Pipeline([Step("qat", {**opts, "epochs": 1})]).run(small_cnn(), train_data=data)


@pytest.mark.parametrize("flags", [["--quantize", "int4", "--scheme", "kmeans"],
                                   ["--quantize", "int4", "--granularity", "group:8"]])
def test_compile_with_qat_kmeans_and_groups(tmp_path, capsys, flags):
    from edgec.backends.tflite import write_tflite
    rng = np.random.default_rng(1)
    (tmp_path / "m.tflite").write_bytes(write_tflite(small_cnn()))
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((48, 8, 8, 1)).astype(np.float32), y=rng.integers(0, 10, 48))
    args = ["compile", str(tmp_path / "m.tflite"), "-o", str(tmp_path / "o"), *flags, "--emit", "tflite,c",
            "--calibration", str(tmp_path / "d.npz"), "--qat", "--train-data", str(tmp_path / "d.npz"),
            "--epochs", "1", "--json"]
    assert main(args) == 0
    rep = json.loads(capsys.readouterr().out)
    q = [p for p in rep["passes"] if p["name"] == "quantize"][0]
    assert q["qat_layers"] == 3
    assert [p for p in rep["passes"] if p["name"] == "qat"][0]["qat_activation_ranges"] == "calibrated"
