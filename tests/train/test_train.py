"""edgec.train on sklearn digits: training, determinism, early stopping, export, constraints, QAT."""
import numpy as np
import pytest

from digits import digits, digits_cnn, digits_mlp
from edgec.data import dataset_from
from edgec.ir import structurally_equal
from edgec.ir.interpret import run_batch
from edgec.passes import PASSES, PassContext
from edgec.train import (Cluster, Prune, WeightQuant, accuracy, build_model, export, fit,
                         quantize_weights)

TRAIN, VAL, TEST = digits()


def _weights(m):
    return {k: v.numpy().copy() for k, v in m.variables.items()}


def test_training_improves_and_is_repeatable():
    runs = []
    for _ in range(2):
        m = build_model(digits_mlp(seed=1))
        h = fit(m, TRAIN, epochs=3, batch_size=32, lr=1e-2, seed=7)
        runs.append((h, _weights(m), m))
    h, w, m = runs[0]
    assert h["loss"][-1] < h["loss"][0] * 0.5
    assert accuracy(m, TEST) > 0.85
    assert runs[0][0]["loss"] == runs[1][0]["loss"]
    for k in w:
        np.testing.assert_array_equal(w[k], runs[1][1][k])


def test_cnn_trains_with_softmax_output_and_cosine():
    m = build_model(digits_cnn())
    h = fit(m, TRAIN, epochs=2, batch_size=32, lr=3e-3, schedule="cosine", val=VAL, seed=0)
    assert h["loss"][1] < h["loss"][0] and len(h["val_accuracy"]) == 2
    assert accuracy(m, TEST) > 0.8


def test_early_stopping_triggers_and_restores_best():
    m = build_model(digits_mlp())
    h = fit(m, TRAIN, epochs=20, batch_size=256, lr=0.0, val=VAL, early_stopping=2, seed=0)
    # lr 0: no epoch beats the starting weights (epoch 0), so it stops after `patience` epochs
    assert h["stopped_early"] and h["epochs"] == 2 and h["best_epoch"] == 0


def test_export_round_trip():
    g = digits_mlp()
    m = build_model(g)
    assert structurally_equal(export(m), g) is None            # untrained: identical
    fit(m, TRAIN, epochs=1, batch_size=64, lr=3e-3, seed=0)
    e = export(m)
    assert structurally_equal(e, g, check_data=False) is None
    for k, v in m.variables.items():
        np.testing.assert_array_equal(e.tensors[k].data, v.numpy())
    xs = [TEST["x"][:16]]
    np.testing.assert_allclose(run_batch(e, xs)[0], m.predict(xs)[0], rtol=1e-5, atol=1e-5)
    assert structurally_equal(export(build_model(e)), e) is None


def test_prune_and_cluster_constraints():
    g = digits_mlp()
    mask = (np.random.default_rng(0).random((32, 64)) > 0.7).astype(np.float32)
    m = build_model(g, {"fc1_w": Prune(mask), "fc2_w": Cluster(4)})
    fit(m, TRAIN, epochs=3, batch_size=32, lr=1e-2, seed=0)
    e = export(m, snap=True)
    assert np.all(e.tensors["fc1_w"].data[mask == 0] == 0)
    assert len(np.unique(e.tensors["fc2_w"].data)) <= 4
    assert accuracy(build_model(e), TEST) > 0.6
    c0 = np.sort(np.unique(export(build_model(g, {"fc2_w": Cluster(4)}), snap=True).tensors["fc2_w"].data))
    assert not np.allclose(c0, np.sort(e.tensors["fc2_w"].meta["centroids"]))   # centroids were trained


@pytest.mark.parametrize("scheme,bits,scale", [("ternary", 2, "ttq"), ("uniform", 4, "lsq"), ("pow2", 4, "fixed")])
def test_fake_quant_forward_equals_reference_of_stored_weights(scheme, bits, scale):
    g = digits_cnn()
    m = build_model(g, quantize_weights(g, bits, scheme, per_channel=True, scale=scale))
    s0 = {k: c[0].s.numpy().copy() for k, c in m.constraints.items()}
    fit(m, TRAIN, epochs=1, batch_size=64, lr=3e-3, seed=0)
    e = export(m, snap=True)
    dq = e.copy()
    for name in m.constraints:
        t = e.tensors[name]
        lv, s = t.meta["qat_levels"], t.meta["qat_scale"]
        assert lv.dtype == np.int8 and set(np.unique(lv)) <= set(WeightQuant(bits, scheme).grid.astype(int))
        shape = [1] * lv.ndim
        if t.meta["qat_axis"] is not None:
            shape[t.meta["qat_axis"]] = -1
        dq.tensors[name].data = (lv.astype(np.float32) * s.reshape(shape)).astype(np.float32)
        np.testing.assert_allclose(dq.tensors[name].data, t.data, rtol=1e-6, atol=1e-7)
        if scale != "fixed":
            assert not np.allclose(m.constraints[name][0].s.numpy(), s0[name])
    xs = [TEST["x"][:32]]
    np.testing.assert_allclose(run_batch(dq, xs)[0], m.predict(xs)[0], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scheme,bits,want", [("ternary", 2, 0.9), ("binary", 1, 0.85), ("uniform", 8, 0.93)])
def test_qat_pass_on_digits(scheme, bits, want):
    m = build_model(digits_cnn())
    fit(m, TRAIN, epochs=4, batch_size=32, lr=3e-3, schedule="cosine", seed=0)
    p = PASSES["qat"]
    ctx = PassContext(options={**p.defaults, "weight_bits": bits, "weight_scheme": scheme, "epochs": 4,
                               "lr": 1e-3}, train_data=dataset_from(TRAIN))
    q = p.run(export(m), ctx)
    for name in ("c1_w", "c2_w", "fc_w"):
        t = q.tensors[name]
        assert t.meta["qat_scheme"] == scheme and t.meta["qat_bits"] == bits
        per_tensor = name == "fc_w" and bits == 8              # FC: per channel only when low-bit
        assert t.meta["qat_scale"].size == (1 if per_tensor else t.shape[0])
    assert accuracy(build_model(q), TEST) > want
    assert ctx.report["qat_target"] == "labels" and ctx.report["qat_activations"] > 0


def test_qat_pass_distills_without_labels():
    g = digits_mlp()
    m = build_model(g)
    fit(m, TRAIN, epochs=3, batch_size=64, lr=3e-3, seed=0)
    f = export(m)
    p = PASSES["qat"]
    ctx = PassContext(options={**p.defaults, "weight_bits": 4, "epochs": 2, "lr": 1e-3},
                      calibration=dataset_from({"x": TRAIN["x"][:400]}))
    q = p.run(f, ctx)
    assert ctx.report["qat_target"] == "distill"
    assert accuracy(build_model(q), TEST) > accuracy(build_model(f), TEST) - 0.05
