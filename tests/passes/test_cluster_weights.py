"""cluster_weights: initialisations, codebook sizes per channel / tensor, sparsity preservation, centroid
training with summed gradients and fixed assignments, the hand-over to the quantize pass (the deployed int8
levels are the trained weights exactly), the C artifact bit-exact, the deep-compression recipe and its
[emit] table, and the --cluster flags."""
import json

import numpy as np
import pytest

from ccheck import check_c_exact
from edgec.backends.c.emit import emit_c
from edgec.backends.tflite import write_tflite
from edgec.calibrate import observe
from edgec.cli import main
from edgec.data import dataset_from
from edgec.errors import EdgecError
from edgec.ir import structurally_equal
from edgec.passes import Pipeline, Step, load_recipe
from edgec.passes.cluster_weights import stored_bytes
from edgec.passes.manager import recipe_emit
from edgec.train import build_model, export, fit
from edgec.train.constraints import Cluster, cluster_values, init_centroids, kmeans_lloyd
from graphs import small_cnn

RNG = np.random.default_rng(0)
X = RNG.standard_normal((60, 8, 8, 1)).astype(np.float32)
DATA = dataset_from({"x": X, "y": RNG.integers(0, 10, 60)})


def cluster(g, overrides=None, **opts):
    out, rep = Pipeline([Step("cluster_weights", {"epochs": 0, **opts}, overrides or {})]).run(g, train_data=DATA)
    return out, rep[0]


def quantize(g):
    return Pipeline([Step("quantize", {})]).run(g.copy(), calibration=DATA, observe=lambda q: observe(q, [X[:16]]))


def channel_rows(t):
    axis = t.meta["qat_axis"]
    return t.data.reshape(1, -1) if axis is None else np.moveaxis(t.data, axis, 0).reshape(t.shape[axis], -1)


# ------------------------------------------------------------------------------------ initialisation

def test_init_methods():
    x = np.concatenate([np.linspace(-1, 1, 101), np.full(400, 0.1)])
    rng = np.random.default_rng(0)
    np.testing.assert_allclose(init_centroids(x, 5, "linear", rng), [-1, -0.5, 0, 0.5, 1])
    dens = init_centroids(x, 4, "density", rng)
    assert np.sum(np.isclose(dens, 0.1)) >= 2                     # crowds where the weights are
    a, b = (init_centroids(x, 6, "kmeans++", np.random.default_rng(s)) for s in (1, 1))
    np.testing.assert_array_equal(a, b)                           # seeded
    assert np.all(np.isin(a, x)) and np.all(np.diff(a) >= 0)      # drawn from the data, sorted
    with pytest.raises(EdgecError, match="forgy"):
        init_centroids(x, 4, "forgy", rng)


def test_lloyd_converges_to_cluster_means_and_keeps_few_values_exact():
    x = np.concatenate([np.full(10, -2.0), np.full(10, 0.5), np.full(5, 3.0)]) + np.tile([-.01, .01], 13)[:25]
    c = kmeans_lloyd(x, np.array([-3.0, 0.0, 1.0]), 50)
    np.testing.assert_allclose(c, [-2.0, 0.5, 3.0], atol=0.01)
    np.testing.assert_array_equal(cluster_values(np.array([1.0, 2.0, 2.0]), 4, "linear", 20,
                                                 np.random.default_rng(0)), [1, 2, 2, 2])


# ------------------------------------------------------------------------------------ codebooks

@pytest.mark.parametrize("granularity,k", [("channel", 4), ("tensor", 5)])
def test_codebook_sizes_and_sparsity_preserved(granularity, k):
    g = small_cnn()
    w = g.tensors["logits_w"]
    mask = RNG.random(w.shape) > 0.5
    w.data = np.where(mask, w.data, np.float32(0))
    w.meta["prune_mask"] = mask
    out, rep = cluster(g, granularity=granularity, clusters=k)
    assert structurally_equal(out, small_cnn(), check_data=False) is None   # no op changes
    for r in rep["cluster_layers"]:
        t = out.tensors[r["tensor"]]
        rows = channel_rows(t)
        assert max(len(np.unique(row)) for row in rows) <= k
        assert r["codebook_entries"] <= k and r["index_bits"] == int(np.ceil(np.log2(r["codebook_entries"])))
        book = np.asarray(t.meta["qat_codebook"])
        assert book.ndim == (2 if granularity == "channel" else 1)
    t = out.tensors["logits_w"]
    assert np.all(t.data[~mask] == 0)                              # pruned zeros stay exactly zero
    assert 0 in np.asarray(t.meta["qat_codebook"])                 # zero is an exact centroid
    np.testing.assert_array_equal(t.meta["prune_mask"], mask)


def test_kept_and_skipped_layers_are_untouched():
    g = small_cnn()
    out, rep = cluster(g, overrides={"conv1": {"skip": True}, "logits": {"granularity": "tensor"}}, clusters=64)
    status = {r["layer"]: r["status"] for r in rep["cluster_layers"]}
    assert status["conv1"] == "skipped"
    assert status["conv2"].startswith("kept")        # 12 rows of 72 weights: 64-entry tables are not smaller
    for name in ("conv1_w", "conv2_w"):
        np.testing.assert_array_equal(out.tensors[name].data, g.tensors[name].data)
        assert "qat_codebook" not in out.tensors[name].meta
    assert status["logits"] == "clustered"                 # one 64-entry table for 1920 weights is
    assert stored_bytes("FULLY_CONNECTED", (10, 192), False, 64) == 10 * 144 + 64 < 1920
    assert stored_bytes("FULLY_CONNECTED", (10, 192), True, 64) == 10 * 144 + 640 > 1920


# ------------------------------------------------------------------------------------ training

def test_centroid_training_moves_centroids_and_keeps_assignments():
    g = small_cnn()
    m = build_model(g, {"logits_w": Cluster(8, axis=0, int8=True)})
    c = m.constraints["logits_w"][0]
    c0, idx0 = c.c.numpy().copy(), c.assignments().copy()
    fit(m, DATA, epochs=2, batch_size=16, lr=1e-2, seed=0, progress=False)
    assert not np.allclose(c.c.numpy(), c0)                       # centroids trained
    np.testing.assert_array_equal(c.assignments(), idx0)          # assignments fixed
    w = m.weight("logits_w").numpy()
    book = c._book_np(c.c.numpy())
    np.testing.assert_array_equal(w, np.take_along_axis(book, idx0, axis=1).astype(np.float32))
    assert m.variables["logits_w"] not in [v for v in m.trainable_variables if v is c.c]


def test_reassign_lets_weights_change_cluster():
    g = small_cnn()
    m = build_model(g, {"logits_w": Cluster(4, axis=None, reassign=True, int8=True)})
    c = m.constraints["logits_w"][0]
    idx0 = c.assignments().copy()
    fit(m, DATA, epochs=2, batch_size=16, lr=3e-2, seed=0, progress=False)
    assert (c.assignments() != idx0).any()
    e = export(m, snap=True)
    assert len(np.unique(e.tensors["logits_w"].data)) <= 4


def test_deployed_levels_are_the_trained_weights():
    g = small_cnn()
    out, rep = Pipeline([Step("cluster_weights", {"clusters": 6, "epochs": 1, "lr": 1e-2})]).run(g, train_data=DATA)
    # conv1 (8 rows of 9 weights) is kept: 8 tables of 6 entries would not be smaller than int8
    assert rep[0]["cluster_fine_tuned"] and rep[0]["clustered_layers"] == 2
    q, qrep = quantize(out)
    assert qrep[0]["qat_layers"] == 2
    for op in q.ops:
        if op.type not in ("CONV_2D", "FULLY_CONNECTED") or op.name == "conv1":
            continue
        src = out.tensors[next(o for o in out.ops if o.name == op.name).inputs[1]]
        w = q.tensors[op.inputs[1]]
        assert w.quant.scheme == "kmeans" and w.quant.bits == 3
        np.testing.assert_array_equal(w.data, src.meta["qat_levels"])
        np.testing.assert_array_equal(w.meta["codebook"], src.meta["qat_codebook"])
        shape = [1] * w.data.ndim
        shape[0] = -1
        deq = (w.data.astype(np.float64) * w.quant.scale.astype(np.float64).reshape(shape)).astype(np.float32)
        np.testing.assert_array_equal(deq, src.data)              # trained forward == deployed weights
    check_c_exact(q, n=100)
    project = emit_c(q)
    assert "ec_fully_connected_s8cb" in project.kernels and "ec_conv2d_s8wN" in project.kernels


def test_per_tensor_codebook_deploys_bit_exact():
    out, _ = cluster(small_cnn(seed=2), clusters=16, granularity="tensor", init="kmeans++")
    q, _ = quantize(out)
    assert all(q.tensors[op.inputs[1]].meta["codebook"].ndim == 1 for op in q.ops
               if op.type in ("CONV_2D", "FULLY_CONNECTED"))
    check_c_exact(q, n=100)


# ------------------------------------------------------------------------------------ recipe, CLI

def test_deep_compression_recipe(tmp_path):
    steps = load_recipe("deep-compression")
    assert [s.name for s in steps][-3:] == ["prune_weights", "cluster_weights", "quantize"]
    assert recipe_emit("deep-compression") == {"entropy": "init"}
    assert recipe_emit("int8") == {}
    bad = tmp_path / "bad.toml"
    bad.write_text('[[pass]]\nname = "quantize"\n[emit]\nentropy = "huffman"\n')
    with pytest.raises(EdgecError, match="entropy"):
        load_recipe(str(bad))
    bad.write_text('[emit]\ncompress = true\n')
    with pytest.raises(EdgecError, match="unknown \\[emit\\] option 'compress'"):
        recipe_emit(str(bad))


def test_cli_deep_compression_end_to_end(tmp_path, capsys):
    (tmp_path / "m.tflite").write_bytes(write_tflite(small_cnn()))
    np.savez(tmp_path / "d.npz", x=X, y=RNG.integers(0, 10, 60))
    args = ["compile", str(tmp_path / "m.tflite"), "-o", str(tmp_path / "o"), "--recipe", "deep-compression",
            "--train-data", str(tmp_path / "d.npz"), "--calibration", str(tmp_path / "d.npz"), "--emit", "tflite,c",
            "--epochs", "1", "--json"]
    assert main(args) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["recipe"][-3:] == ["prune_weights", "cluster_weights", "quantize"]
    assert rep["entropy"]["mode"] == "init"                       # the recipe's [emit] table
    passes = {p["name"]: p for p in rep["passes"]}
    assert passes["quantize"]["weight_bytes_after"] < passes["quantize"]["weight_bytes_before"]
    assert all("weight_bytes_before" in p and "weight_bytes_after" in p for p in rep["passes"])
    assert rep["totals"]["weight_bytes"] < rep["totals"]["float_bytes"] / 4
    assert main(args[:-1] + ["--entropy", "off", "--json"]) == 0   # the caller's choice wins
    assert "entropy" not in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("flags,msg", [
    (["--cluster", "1"], "--cluster 1"),
    (["--cluster", "300"], "2 to 256"),
    (["--cluster-granularity", "tensor"], "without --cluster K"),
    (["--cluster", "16", "--quantize", "int8", "--qat"], "drop --qat"),
    (["--cluster-init", "forgy"], "forgy"),
])
def test_cli_bad_cluster_flags(tmp_path, capsys, flags, msg):
    (tmp_path / "m.tflite").write_bytes(write_tflite(small_cnn()))
    assert main(["compile", str(tmp_path / "m.tflite"), "-o", str(tmp_path / "o"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1
