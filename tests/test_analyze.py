"""edgec analyze --sensitivity prune: per-layer curves (terminal, JSON, SVG), the allocation of per-layer
sparsities for a global target, and the recipe it writes, compiled back to that target."""
import json

import numpy as np
import pytest

from edgec.analyze import allocate
from edgec.cli import main
from edgec.errors import EdgecError
from edgec.passes import load_recipe
from train.digits import digits, digits_mlp

TRAIN, VAL, TEST = digits()
SWEEP = "0,0.25,0.5,0.75,0.9"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from edgec.backends.tflite import write_tflite
    from edgec.train import build_model, export, fit
    d = tmp_path_factory.mktemp("analyze")
    m = build_model(digits_mlp(seed=1))
    fit(m, TRAIN, epochs=4, batch_size=32, lr=1e-2, seed=0)
    (d / "m.tflite").write_bytes(write_tflite(export(m)))
    np.savez(d / "test.npz", **TEST)
    np.savez(d / "train.npz", x=TRAIN["x"][:300], y=TRAIN["y"][:300])
    np.savez(d / "unlabelled.npz", x=TEST["x"][:100])
    return d


def test_curves_table_json_svg_and_a_recipe_that_meets_the_target(files, capsys):
    out = files / "sens"
    args = ["analyze", str(files / "m.tflite"), "--data", str(files / "test.npz"), "--sensitivity", "prune",
            "--target-sparsity", "0.7", "--sparsities", SWEEP, "-o", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "accuracy when one layer is pruned" in text and "prune_recipe.toml" in text
    res = json.loads((out / "sensitivity.json").read_text())
    assert res["sparsities"] == [0, 0.25, 0.5, 0.75, 0.9] and res["metric"] == "accuracy"
    assert [r["params"] for r in res["layers"]] == [2048, 320]
    for r in res["layers"]:
        assert r["curve"][0] == res["baseline"] and len(r["curve"]) == 5
    assert res["layers"][0]["curve"][-1] < res["baseline"] - 0.02      # 90% of fc1, untuned, costs accuracy
    svg = (out / "sensitivity.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == 2 and svg.count("<circle") == 2
    alloc = res["allocation"]
    assert alloc["achieved"] >= 0.7 and alloc["achieved"] < 0.7005
    # the recipe, compiled back: each layer at its allocated sparsity, the whole at the target
    steps = load_recipe(str(out / "prune_recipe.toml"))
    prune = next(s for s in steps if s.name == "prune_weights")
    assert prune.options["scope"] == "layer" and len(prune.overrides) == 2
    assert main(["compile", str(files / "m.tflite"), "-o", str(files / "o"), "--recipe", str(out / "prune_recipe.toml"),
                 "--train-data", str(files / "train.npz"), "--epochs", "1", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    p = next(p for p in rep["passes"] if p["name"] == "prune_weights")
    assert 1 - p["prune_nonzero"] / p["prune_params"] >= 0.7 - 1e-3
    for r in p["prune_layers"]:
        assert r["sparsity"] == pytest.approx(alloc["layers"][r["layer"]], abs=1 / r["params"])   # whole weights


def test_without_labels_the_metric_is_agreement_and_without_out_nothing_is_written(files, capsys):
    assert main(["analyze", str(files / "m.tflite"), "--data", str(files / "unlabelled.npz"), "--sparsities", "0.5,0.9",
                 "--prune-granularity", "nm:2:4", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["metric"] == "top1_agreement" and res["baseline"] == 1.0 and res["sparsities"] == [0.0, 0.5]
    assert "files" not in res


def test_allocation_prunes_the_robust_layer_first():
    res = {"baseline": 0.9, "granularity": "weight", "sparsities": [0.0, 0.5, 0.9],
           "layers": [{"layer": "robust", "params": 1000, "curve": [0.9, 0.9, 0.89]},
                      {"layer": "fragile", "params": 1000, "curve": [0.9, 0.6, 0.1]},
                      # non-monotone and non-convex: made monotone, then its hull is used
                      {"layer": "odd", "params": 1000, "curve": [0.9, 0.5, 0.8]}]}
    a = allocate(res, 0.3)
    assert a["layers"] == {"robust": 0.9, "fragile": 0.0, "odd": 0.0} and a["achieved"] == pytest.approx(0.3)
    a = allocate(res, 0.5)
    assert a["layers"]["robust"] == 0.9 and a["layers"]["fragile"] == 0.0
    assert a["layers"]["odd"] == pytest.approx(0.6) and a["achieved"] == pytest.approx(0.5)
    assert a["estimated_drop"] == pytest.approx(0.01 + 0.4 * 0.6 / 0.9, abs=1e-6)
    with pytest.raises(EdgecError, match="must be in"):
        allocate(res, 0.95)


@pytest.mark.parametrize("extra,msg", [(["--target-sparsity", "0.99"], "must be in (0, 0.9]"),
                                       (["--target-sparsity", "1.5"], "between 0 and 1"),
                                       (["--prune-granularity", "block:x"], "granularity"),
                                       (["--sparsities", "0,a"], "--sparsities"),
                                       (["--sparsities", "0,1.2"], "sparsities must be in")])
def test_bad_arguments_exit_2_with_one_line(files, capsys, extra, msg):
    assert main(["analyze", str(files / "m.tflite"), "--data", str(files / "test.npz"), "--sparsities", SWEEP]
                + extra) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1
