"""prune_weights: masks of exactly the requested sparsity and pattern (weight, blocks, N:M) on every
prunable op, global vs per-layer thresholds and overrides, schedule values, Taylor scores, zeros that
survive fine-tuning, export and int8 quantization, the trainer's regularizers and mask hook, and the
CLI's --prune flags."""
import json

import numpy as np
import pytest

from edgec.calibrate import observe
from edgec.cli import main
from edgec.data import dataset_from
from edgec.errors import EdgecError
from edgec.ir import structurally_equal
from edgec.passes import Pipeline, Step
from edgec.passes.prune_weights import gradual_progress, parse_pattern, polynomial_sparsity
from edgec.train.constraints import RowView
from graphs import Builder, small_cnn
from train.digits import digits, digits_mlp

TRAIN, VAL, TEST = digits()
ONESHOT = {"schedule": "oneshot", "epochs": 0}


def prune(g, data=None, overrides=None, **opts):
    out, rep = Pipeline([Step("prune_weights", opts, overrides or {})]).run(
        g, train_data=None if data is None else dataset_from(data))
    return out, rep[0]


def rows(g, op):
    w = g.tensors[op.inputs[1]].data
    return RowView.of(op.type, op.attrs, w.ndim).to_rows(w)


def zoo(seed=0):
    """One of each prunable op: conv (K 36), depthwise (K 9), fc (K 64), batch matmul with a constant rhs."""
    b = Builder(seed)
    x = b.input((1, 4, 4, 4))
    y = b.conv(x, 8, name="conv")
    dw = b.rand("dw_w", (1, 3, 3, 8))
    y = b.op("DEPTHWISE_CONV_2D", [y, dw, b.rand("dw_b", (8,), 0.1)], (1, 4, 4, 8), "dw", padding="SAME",
             stride_h=1, stride_w=1, depth_multiplier=1)
    y = b.reshape(y, (1, 2, 64))
    y = b.op("BATCH_MATMUL", [y, b.rand("bmm_w", (64, 16))], (1, 2, 16), "bmm")
    y = b.reshape(y, (1, 32))
    y = b.fc(y, 64, name="fc")
    return b.output(y)


PRUNED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "BATCH_MATMUL", "FULLY_CONNECTED")


@pytest.fixture(scope="module")
def trained():
    from edgec.train import build_model, export, fit
    m = build_model(digits_mlp(seed=1))
    fit(m, TRAIN, epochs=4, batch_size=32, lr=1e-2, seed=0)
    return export(m)


def test_patterns_parse_and_bad_ones_are_user_errors():
    assert str(parse_pattern("weight")) == "weight"
    assert str(parse_pattern("block:1x4")) == "block:1x4" and parse_pattern("block:1x1").kind == "weight"
    assert parse_pattern("nm:2:4").fixed_sparsity == 0.5
    for bad in ("block:0x4", "block:4", "nm:4:4", "nm:0:4", "nm:2", "channel", ""):
        with pytest.raises(EdgecError, match="granularity"):
            parse_pattern(bad)


@pytest.mark.parametrize("s", [0.3, 0.75, 0.9])
def test_unstructured_masks_remove_exactly_the_smallest(s):
    g = zoo()
    out, rep = prune(g.copy(), sparsity=s, scope="layer", **ONESHOT)
    for op in out.ops:
        if op.type not in PRUNED_OPS:
            continue
        w0, w = g.tensors[op.inputs[1]].data, out.tensors[op.inputs[1]].data
        zero = w == 0
        assert zero.sum() == round(s * w.size), op.name
        assert np.abs(w0[zero]).max() <= np.abs(w0[~zero]).min()
        assert np.array_equal(w[~zero], w0[~zero])
        assert out.tensors[op.inputs[1]].meta["sparsity"] == "weight"
        assert np.array_equal(out.tensors[op.inputs[1]].meta["prune_mask"], ~zero)
    assert {r["op"] for r in rep["prune_layers"]} == set(PRUNED_OPS)


@pytest.mark.parametrize("r,c", [(1, 4), (4, 4), (16, 1), (2, 8)])
def test_block_masks_zero_whole_blocks(r, c):
    g = zoo(1)
    out, _ = prune(g.copy(), sparsity=0.5, granularity=f"block:{r}x{c}", scope="layer", **ONESHOT)
    for op in out.ops:
        if op.type not in PRUNED_OPS:
            continue
        z = rows(out, op) == 0
        R, K = z.shape
        zp = np.pad(z, ((0, -R % r), (0, -K % c)), constant_values=True)
        filled = np.pad(np.ones_like(z), ((0, -R % r), (0, -K % c)))
        blocks_z = zp.reshape(zp.shape[0] // r, r, -1, c).all((1, 3))
        blocks_any = (zp & filled.astype(bool)).reshape(zp.shape[0] // r, r, -1, c).any((1, 3))
        assert np.array_equal(blocks_z, blocks_any), f"{op.name}: a block is partly pruned"
        assert abs(z.mean() - 0.5) <= r * c / z.size + 1e-9, op.name
        assert out.tensors[op.inputs[1]].meta["sparsity"] == f"block:{r}x{c}"


@pytest.mark.parametrize("n,m", [(2, 4), (1, 4)])
@pytest.mark.parametrize("adj_y", [False, True])
def test_nm_masks_keep_the_n_largest_of_every_m_along_k(n, m, adj_y):
    g = zoo(2)
    if adj_y:   # the same matmul with its rhs stored transposed: groups still run along K
        op = next(o for o in g.ops if o.type == "BATCH_MATMUL")
        op.attrs["adj_y"] = True
        g.tensors["bmm_w"].data = np.ascontiguousarray(g.tensors["bmm_w"].data.T)
        g.tensors["bmm_w"].shape = (16, 64)
    out, rep = prune(g.copy(), granularity=f"nm:{n}:{m}", **ONESHOT)
    for op in out.ops:
        if op.type not in PRUNED_OPS:
            continue
        w0, w = rows(g, op), rows(out, op)
        R, K = w.shape
        for k in range(0, K, m):
            grp, grp0 = w[:, k:k + m], np.abs(w0[:, k:k + m])
            assert np.all((grp != 0).sum(1) == min(n, grp.shape[1])), f"{op.name} group {k}"
            kept_min = np.where(grp != 0, grp0, np.inf).min(1)
            pruned_max = np.where(grp == 0, grp0, -np.inf).max(1)
            assert np.all(kept_min >= pruned_max)
    fc = next(r for r in rep["prune_layers"] if r["op"] == "FULLY_CONNECTED")
    assert fc["sparsity"] == 1 - n / m and fc["pattern"] == f"nm:{n}:{m}"


def test_global_threshold_vs_per_layer_and_overrides():
    g = zoo(3)
    g.tensors["fc_w"].data *= 4         # a layer of larger weights: a raw global threshold spares it
    per_layer = prune(g.copy(), sparsity=0.6, scope="layer", **ONESHOT)[1]["prune_layers"]
    assert all(abs(r["sparsity"] - 0.6) < 0.01 for r in per_layer)
    for norm in ("none", "l2"):
        rep = prune(g.copy(), sparsity=0.6, scope="global", global_norm=norm, **ONESHOT)[1]
        assert abs(rep["prune_sparsity"] - 0.6) < 1e-3                       # one threshold, the total exact
        assert max(r["sparsity"] for r in rep["prune_layers"]) - min(r["sparsity"] for r in rep["prune_layers"]) > 0.1
    raw = {r["layer"]: r["sparsity"] for r in prune(g.copy(), sparsity=0.6, scope="global", global_norm="none",
                                                    **ONESHOT)[1]["prune_layers"]}
    assert raw.pop("fc") < 0.4 < min(raw.values())
    # a regex override keeps the first conv dense and pins the matmul; the rest share the global 0.6
    out, rep = prune(g.copy(), overrides={"^conv$": {"sparsity": 0.0}, "bmm": {"sparsity": 0.25}}, sparsity=0.6,
                     scope="global", **ONESHOT)
    assert np.array_equal(out.tensors["conv_w"].data, g.tensors["conv_w"].data)
    assert "sparsity" not in out.tensors["conv_w"].meta
    by = {r["layer"]: r for r in rep["prune_layers"]}
    assert "conv" not in by and by["bmm"]["sparsity"] == 0.25 and by["bmm"]["scope"] == "layer"
    pool = [by["dw"], by["fc"]]
    assert abs(1 - sum(r["nonzero"] for r in pool) / sum(r["params"] for r in pool) - 0.6) < 1e-3
    with pytest.raises(EdgecError, match="cannot differ per layer"):
        prune(g.copy(), overrides={"fc": {"epochs": 3}}, sparsity=0.5, **ONESHOT)


def test_nothing_prunable_or_sparsity_zero_leaves_the_graph_alone():
    b = Builder()
    x = b.input((1, 8))
    y = b.op("ADD", [x, b.rand("c", (1, 8))], (1, 8), "add")
    g = b.output(y)
    out, rep = prune(g.copy(), sparsity=0.9, **ONESHOT)
    assert structurally_equal(out, g) is None and rep["prune_layers"] == []
    g = zoo()
    out, _ = prune(g.copy(), overrides={".": {"sparsity": 0.0}}, sparsity=0.9, **ONESHOT)
    assert structurally_equal(out, g) is None


def test_bad_options_are_user_errors():
    g = zoo()
    for opts, msg in [({"sparsity": 1.0}, "must be in"), ({"sparsity": "x"}, "not a number"), ({}, "give a sparsity"),
                      ({"sparsity": 0.9, "granularity": "nm:2:4"}, "has sparsity 0.5"),
                      ({"sparsity": 0.5, "schedule": "cubic"}, "schedule"),
                      ({"sparsity": 0.5, "criterion": "random"}, "criterion"),
                      ({"sparsity": 0.5, "schedule": "gradual", "epochs": 0}, "epochs >= 1"),
                      ({"sparsity": 0.5, "schedule": "oneshot", "epochs": 1}, "training data")]:
        with pytest.raises(EdgecError, match=msg):
            prune(g.copy(), **{"schedule": "oneshot", "epochs": 0, **opts})


def test_schedule_values():
    assert polynomial_sparsity(0.0, 0.9, 0.0) == 0.0 and polynomial_sparsity(0.0, 0.9, 1.0) == 0.9
    assert polynomial_sparsity(0.0, 0.8, 0.5) == pytest.approx(0.8 - 0.8 * 0.125)
    assert polynomial_sparsity(0.2, 0.8, 2.0) == 0.8
    # updates at t0, t0 + dt, ... t0 + n dt only
    assert [gradual_progress(t, 10, 5, 4) for t in (9, 10, 12, 15, 30, 35)] == [None, 0.0, None, 0.25, 1.0, None]


def test_schedules_reach_the_target_along_their_curves(trained):
    data = {"x": TRAIN["x"][:200], "y": TRAIN["y"][:200]}
    s_f = 0.8
    _, rep = prune(trained.copy(), data, sparsity=s_f, schedule="gradual", epochs=3, batch_size=32)
    log = [e for e in rep["prune_masks"] if e["phase"] == "gradual"]
    steps = [e["step"] for e in log]
    dt, n = steps[1] - steps[0], len(steps) - 1
    for e in log:   # the logged sparsity is the cubic ramp, up to whole weights
        assert e["sparsity"] == pytest.approx(polynomial_sparsity(0.0, s_f, e["step"] / (n * dt)), abs=2e-3)
    assert log[-1]["sparsity"] == pytest.approx(s_f, abs=1e-3) and steps == sorted(steps)
    _, rep = prune(trained.copy(), data, sparsity=s_f, schedule="iterative", rounds=3, epochs=3, l1=1e-4,
                   group_lasso=1e-4)
    assert [e["sparsity"] for e in rep["prune_masks"]] == pytest.approx(
        [1 - (1 - s_f) ** (k / 3) for k in (1, 2, 3)], abs=2e-3)
    _, rep = prune(trained.copy(), data, sparsity=s_f, schedule="dsd", epochs=3)
    assert [e["phase"] for e in rep["prune_masks"]] == ["sparse", "re-dense", "re-sparse"]
    assert [e["sparsity"] for e in rep["prune_masks"]] == pytest.approx([s_f, 0, s_f], abs=2e-3)
    assert rep["prune_sparsity"] == pytest.approx(s_f, abs=2e-3)


def test_taylor_needs_data_and_ranks_by_w_times_grad(trained):
    with pytest.raises(EdgecError, match="training data"):
        prune(trained.copy(), sparsity=0.5, criterion="taylor", **ONESHOT)
    data = {"x": TRAIN["x"][:256], "y": TRAIN["y"][:256]}
    mag, _ = prune(trained.copy(), data, sparsity=0.5, **ONESHOT)
    tay, rep = prune(trained.copy(), data, sparsity=0.5, criterion="taylor", **ONESHOT)
    assert rep["prune_layers"][0]["criterion"] == "taylor" and rep["prune_sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert not np.array_equal(mag.tensors["fc1_w"].data == 0, tay.tensors["fc1_w"].data == 0)
    # the taylor mask keeps what matters to the loss: better than magnitude before any fine-tuning
    from edgec.train import accuracy, build_model
    assert accuracy(build_model(tay), VAL) >= accuracy(build_model(mag), VAL) - 0.02


def test_zeros_survive_fine_tuning_export_and_int8(trained):
    from edgec.backends.tflite import write_tflite
    from edgec.frontend.tflite import import_tflite
    from edgec.train import accuracy, build_model
    dense_acc = accuracy(build_model(trained), TEST)
    out, rep = prune(trained.copy(), TRAIN, sparsity=0.8, schedule="gradual", epochs=4, lr=1e-2, holdout=0.1)
    assert rep["prune_accuracy_on"] == "held-out"
    mask = out.tensors["fc1_w"].meta["prune_mask"]
    assert np.all(out.tensors["fc1_w"].data[~mask] == 0) and np.all(out.tensors["fc1_w"].data[mask] != 0)
    assert rep["prune_sparsity"] == pytest.approx(0.8, abs=1e-3)
    assert accuracy(build_model(out), TEST) >= dense_acc - 0.03
    assert rep["prune_accuracy_after"] >= rep["prune_accuracy_before"] - 0.03
    back = import_tflite(write_tflite(out))
    w = next(t for t in back.tensors.values() if t.is_const and t.shape == (32, 64)).data
    assert np.array_equal(w == 0, ~mask)
    calib = dataset_from({"x": TRAIN["x"][:64]})
    q, _ = Pipeline([Step("quantize", {"dtype": "int8"})]).run(out, calibration=calib,
                                                               observe=lambda g: observe(g, calib.xs))
    wq = next(q.tensors[op.inputs[1]].data for op in q.ops if op.type == "FULLY_CONNECTED"
              and q.tensors[op.inputs[1]].shape == (32, 64))
    assert wq.dtype == np.int8 and np.array_equal(wq == 0, ~mask)


def test_regularizers_and_the_step_hook(trained):
    from edgec.train import Prune, build_model, fit
    from edgec.train.fit import L1, GroupLasso

    def train(**kw):
        m = build_model(trained)
        fit(m, TRAIN, epochs=2, batch_size=64, lr=3e-3, seed=0, **kw)
        return m.variables["fc1_w"].numpy()

    plain = train()
    l1 = train(regularizers=[L1(1e-3, ("fc1_w",))])
    gl = train(regularizers=[GroupLasso(1e-2)])
    assert np.abs(l1).sum() < 0.8 * np.abs(plain).sum()
    norms = lambda w: np.sqrt((w ** 2).sum(1))  # noqa: E731
    assert norms(gl).sum() < 0.8 * norms(plain).sum()
    with pytest.raises(EdgecError, match="not a trainable"):
        train(regularizers=[L1(1.0, ("nope",))])
    # the mask is a variable: changing it mid-training takes effect at once, without retracing
    m = build_model(trained, {"fc1_w": Prune(np.ones((32, 64), np.float32))})
    seen = []
    half = (np.arange(64) < 32).astype(np.float32) * np.ones((32, 1), np.float32)

    def on_step(step):
        seen.append(step)
        if step == 3:
            m.constraints["fc1_w"][0].assign(half)
    fit(m, TRAIN, epochs=1, batch_size=300, lr=1e-3, seed=0, on_step=on_step)
    assert seen == [1, 2, 3, 4]
    assert np.all(m.weight("fc1_w").numpy()[:, 32:] == 0)


@pytest.fixture
def files(tmp_path):
    from edgec.backends.tflite import write_tflite
    rng = np.random.default_rng(1)
    (tmp_path / "m.tflite").write_bytes(write_tflite(small_cnn()))
    np.savez(tmp_path / "d.npz", x=rng.standard_normal((64, 8, 8, 1)).astype(np.float32), y=rng.integers(0, 10, 64))
    return tmp_path


def test_cli_prune_then_int8(files, capsys):
    d = str(files / "d.npz")
    args = ["compile", str(files / "m.tflite"), "-o", str(files / "o"), "--quantize", "int8", "--calibration", d,
            "--prune", "0.5", "--prune-granularity", "block:1x4", "--prune-schedule", "oneshot",
            "--train-data", d, "--epochs", "1", "--json"]
    assert main(args) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["recipe"][-2:] == ["prune_weights", "quantize"]
    p = next(p for p in rep["passes"] if p["name"] == "prune_weights")
    assert [r["pattern"] for r in p["prune_layers"]] == ["block:1x4"] * 3 and p["prune_epochs"] == 1
    from edgec.frontend.tflite import import_tflite
    g = import_tflite((files / "o" / "model.tflite").read_bytes())
    ws = [g.tensors[op.inputs[1]].data for op in g.ops if op.type in PRUNED_OPS]
    assert len(ws) == 3 and abs(sum((w == 0).sum() for w in ws) / sum(w.size for w in ws) - 0.5) < 0.01
    # without --json: the per-layer table
    assert main(args[:-1]) == 0
    assert "prune_weights (oneshot, 1 epochs)" in capsys.readouterr().out


@pytest.mark.parametrize("extra,msg", [
    (["--prune", "1.5"], "between 0 and 1"),
    (["--prune", "0.5", "--prune-granularity", "block:0x4"], "granularity"),
    (["--prune", "0.9", "--prune-granularity", "nm:2:4"], "removes 0.5"),
    (["--prune-schedule", "dsd"], "without --prune"),
    (["--prune", "0.5", "--prune-schedule", "cubic"], "prune-schedule"),
    (["--prune", "0.5"], "training data"),
    (["--prune-structured", "channels:2.5"], "prune-structured"),
    (["--prune-structured", "filters:0.5"], "prune-structured"),
])
def test_cli_prune_errors_exit_2_with_one_line(files, capsys, extra, msg):
    d = str(files / "d.npz")
    args = ["compile", str(files / "m.tflite"), "-o", str(files / "o")] + [d if a == "D" else a for a in extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_cli_prune_then_qat_keeps_the_zeros(files, capsys):
    # qat trains the pruned weights behind their masks, so the zeros reach the deployed int4 levels
    args = ["compile", str(files / "m.tflite"), "-o", str(files / "q"), "--prune", "0.5", "--quantize", "int4",
            "--calibration", str(files / "d.npz"), "--qat", "--train-data", str(files / "d.npz"), "--epochs", "1",
            "--json"]
    assert main(args) == 0, capsys.readouterr().err
    rep = json.loads(capsys.readouterr().out)
    assert rep["recipe"][-3:] == ["prune_weights", "qat", "quantize"]
    from edgec.frontend.tflite import import_tflite
    g = import_tflite((files / "q" / "model.tflite").read_bytes())
    ws = [g.tensors[op.inputs[1]].data for op in g.ops if op.type in PRUNED_OPS]
    assert sum((w == 0).sum() for w in ws) / sum(w.size for w in ws) >= 0.5


def test_structured_flag_plans_prune_channels_first():
    from edgec.api import prune_options, recipe_steps, with_pruning
    steps = with_pruning(recipe_steps(quantize="int8"), prune_options(0.5), "channels:0.5", epochs=2)
    names = [s.name for s in steps]
    assert names[-3:] == ["prune_channels", "prune_weights", "quantize"]
    assert steps[-3].options == {"what": "channels", "amount": 0.5}
    assert steps[-2].options == {"sparsity": 0.5, "epochs": 2}
    assert with_pruning(recipe_steps(), None, "layers:2")[-1].options == {"what": "layers", "amount": 2}


def test_recipes_and_flags_on_them():
    from edgec.api import prune_options, with_pruning
    from edgec.passes import load_recipe
    for name in ("prune", "prune-int8", "prune-2of4-int8"):
        steps = load_recipe(name)
        Pipeline(steps)                                   # every option is one the pass takes
        assert [s.name for s in steps].index("prune_weights") == len(steps) - (2 if "int8" in name else 1)
    steps = with_pruning(load_recipe("prune-int8"), prune_options(0.5, schedule="dsd"), epochs=3)
    assert next(s for s in steps if s.name == "prune_weights").options == {
        "sparsity": 0.5, "granularity": "weight", "schedule": "dsd", "epochs": 3}
    steps = with_pruning(load_recipe("prune-int8"), prune_options(granularity="nm:1:4"))
    assert next(s for s in steps if s.name == "prune_weights").options["sparsity"] == "auto"
