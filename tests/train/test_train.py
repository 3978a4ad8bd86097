"""edgec.train on sklearn digits: training, determinism, early stopping, export, constraints, QAT."""
import numpy as np
import pytest

from digits import digits, digits_cnn, digits_mlp
from edgec import quant_weights as qw
from edgec.backends.c.pack_weights import weight_rows
from edgec.calibrate import observe
from edgec.data import dataset_from
from edgec.errors import EdgecError
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


def _stored(t):
    """The weight a quantize pass stores from QAT meta, dequantized: qat_levels x qat_scale."""
    lv, s = t.meta["qat_levels"], t.meta["qat_scale"]
    shape = [1] * lv.ndim
    if t.meta["qat_axis"] is not None:
        shape[t.meta["qat_axis"]] = -1
    return (lv.astype(np.float32) * s.reshape(shape)).astype(np.float32)


@pytest.mark.parametrize("per_channel", [True, False])
def test_kmeans_codebook_trains_and_is_what_is_stored(per_channel):
    g = digits_cnn()
    m = build_model(g, quantize_weights(g, 3, "kmeans", per_channel=per_channel))
    book0 = {k: c[0].codebook().numpy().copy() for k, c in m.constraints.items()}
    fit(m, TRAIN, epochs=1, batch_size=64, lr=3e-3, seed=0)
    e = export(m, snap=True)
    moved = 0
    for name in m.constraints:
        t = e.tensors[name]
        book, lv = t.meta["qat_codebook"], t.meta["qat_levels"]
        assert book.dtype == np.int8 and lv.dtype == np.int8 and t.meta["qat_scheme"] == "kmeans"
        assert book.shape[-1] <= 8 and np.all(np.diff(book.astype(int), axis=-1) >= 0)
        assert book.ndim == (2 if per_channel else 1)
        rows = qw.to_rows(lv, t.meta["qat_axis"])
        for r in range(rows.shape[0]):                 # every level is an entry of its channel's codebook
            assert np.isin(rows[r], book[r] if per_channel else book).all()
        np.testing.assert_array_equal(_stored(t), t.data)        # exactly what the forward pass used
        np.testing.assert_array_equal(t.data, m.weight(name).numpy())
        moved += not np.array_equal(book.reshape(book0[name].shape), book0[name])
    assert moved                                        # the centroids were trained
    xs = [TEST["x"][:32]]
    np.testing.assert_allclose(run_batch(e, xs)[0], m.predict(xs)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scheme,bits,n,scale", [("uniform", 4, 8, "fixed"), ("ternary", 2, 5, "ttq"),
                                                 ("binary", 1, 16, "lsq")])
def test_group_fake_quant_is_what_is_stored(scheme, bits, n, scale):
    g = digits_cnn()
    m = build_model(g, quantize_weights(g, bits, scheme, per_channel=True, scale=scale, group_size=n))
    fit(m, TRAIN, epochs=1, batch_size=64, lr=3e-3, seed=0)
    e = export(m, snap=True)
    types = {op.inputs[1]: op.type for op in g.ops if op.inputs[1:] and op.inputs[1] in m.constraints}
    for name in m.constraints:
        t = e.tensors[name]
        v = weight_rows(types[name], t.meta["qat_levels"])
        mult = t.meta["qat_group_mult"]
        assert t.meta["qat_group_size"] == n and mult.dtype == np.uint8
        assert mult.shape == (v.shape[0], -(-v.shape[1] // n)) and mult.min() >= 1
        q = qw.group_levels(v, mult, n)                           # v = q * m exactly
        assert set(np.unique(q).tolist()) <= set(qw.levels(bits, scheme).astype(int).tolist())
        assert t.meta["qat_scale"].size == v.shape[0]             # the row scale, per channel
        np.testing.assert_allclose(_stored(t), t.data, rtol=1e-6, atol=0)
    xs = [TEST["x"][:32]]
    np.testing.assert_allclose(run_batch(e, xs)[0], m.predict(xs)[0], rtol=1e-4, atol=1e-5)


def test_weight_quant_rejects_what_cannot_be_trained():
    with pytest.raises(EdgecError, match="kmeans"):
        WeightQuant(4, "kmeans", 0, "lsq")
    with pytest.raises(EdgecError, match="per-group scales need uniform weights below 8 bits"):
        WeightQuant(4, "pow2", 0, group_size=8)
    with pytest.raises(EdgecError, match="per-group scales need uniform weights below 8 bits"):
        WeightQuant(8, "uniform", 0, group_size=8)
    with pytest.raises(EdgecError, match="row layout"):
        WeightQuant(4, "uniform", 0, group_size=8)


def _calibrated(ctx, xs):
    ctx.observe = lambda g: observe(g, xs)
    return ctx


@pytest.mark.parametrize("scheme,bits,want", [("ternary", 2, 0.9), ("binary", 1, 0.85), ("uniform", 8, 0.93)])
def test_qat_pass_on_digits(scheme, bits, want):
    m = build_model(digits_cnn())
    fit(m, TRAIN, epochs=4, batch_size=32, lr=3e-3, schedule="cosine", seed=0)
    p = PASSES["qat"]
    ctx = _calibrated(PassContext(options={**p.defaults, "weight_bits": bits, "weight_scheme": scheme, "epochs": 4,
                                           "lr": 1e-3}, train_data=dataset_from(TRAIN)), [VAL["x"][:100]])
    q = p.run(export(m), ctx)
    for name in ("c1_w", "c2_w", "fc_w"):
        t = q.tensors[name]
        assert t.meta["qat_scheme"] == scheme and t.meta["qat_bits"] == bits
        per_tensor = name == "fc_w" and bits == 8              # FC: per channel only when low-bit
        assert t.meta["qat_scale"].size == (1 if per_tensor else t.shape[0])
    assert accuracy(build_model(q), TEST) > want
    rep = ctx.report
    assert rep["qat_target"] == "labels" and rep["qat_activations"] > 0 and rep["qat_activation_ranges"] == "calibrated"
    assert len(rep["qat_held_out_scores"]) == 5                 # the start (epoch 0) and 4 epochs
    if bits < 8:   # rounding a float model to 1-2 bits costs accuracy that training significantly wins back
        assert rep["qat_kept_epoch"] > 0
        assert rep["qat_held_out_scores"][rep["qat_kept_epoch"]] > rep["qat_held_out_scores"][0]


def test_qat_keeps_the_post_training_start_unless_training_beats_it():
    """lr 0: every epoch ties with the start, which is kept; its activation ranges are the calibrated
    ones and its weights the 8-bit PTQ grid."""
    m = build_model(digits_cnn())
    fit(m, TRAIN, epochs=1, batch_size=32, lr=3e-3, seed=0)
    f = export(m)
    p = PASSES["qat"]
    xs = [VAL["x"][:100]]
    ctx = _calibrated(PassContext(options={**p.defaults, "epochs": 2, "lr": 0.0}, train_data=dataset_from(TRAIN)), xs)
    q = p.run(f, ctx)
    rep = ctx.report
    assert rep["qat_kept_epoch"] == 0 and len(set(rep["qat_held_out_scores"])) == 1
    stats = observe(q, xs)
    for name, t in q.tensors.items():
        if "qat_range" in t.meta:
            np.testing.assert_allclose(t.meta["qat_range"], (stats[name].lo, stats[name].hi), rtol=1e-6)
        if "qat_levels" in t.meta:
            axis = t.meta["qat_axis"]
            want = qw.quantize_weight(f.tensors[name].data, axis or 0, axis is not None, 8, "uniform", "max")
            np.testing.assert_array_equal(t.meta["qat_levels"], want.levels)



@pytest.mark.parametrize("gained,kept", [(1, 0), (2, 0), (10, 1)])
def test_qat_replaces_the_start_only_on_a_significant_held_out_gain(gained, kept):
    """Epoch 1 gets `gained` more of 400 held-out samples right than the start: +1 or +2 is within the
    noise of 400 samples (one-sided paired test at 95%), +10 is not."""
    from edgec.passes.train_quantized import _BestEpoch
    y = np.arange(400) % 10

    class Stub:   # a model whose predictions are set by hand
        trainable_variables, right = [], 380

        def predict(self, xs):
            return [np.eye(10)[np.where(np.arange(400) < self.right, y, (y + 1) % 10)]]

    model = Stub()
    keeper = _BestEpoch(model, {}, dataset_from({"x": np.zeros((400, 1), np.float32), "y": y}), "crossentropy")
    model.right += gained
    keeper.score(1)
    keeper.restore()
    assert keeper.best_epoch == 1 and keeper.kept_epoch == kept
    assert keeper.scores == [0.95, (380 + gained) / 400]

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
