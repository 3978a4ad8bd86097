"""Loss-aware PTQ: GPTQ error feedback, bias correction, cross-layer equalization (and where it must
not apply), and the end-to-end quality of int4 on the digits model."""
from pathlib import Path

import numpy as np
import pytest

from edgec import quant_weights as qw
from edgec.calibrate import observe
from edgec.data import Dataset
from edgec.ir import interpret
from edgec.passes import Pipeline, Step
from graphs import Builder

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def correlated(n=2000, k=32, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((k, k)) * 0.5 + np.eye(k)
    return rng.standard_normal((n, k)) @ mix + 0.3


def test_gptq_lowers_layer_output_error():
    rng = np.random.default_rng(1)
    X = correlated()
    w = rng.standard_normal((16, 32)).astype(np.float32)
    H = 2 * X.T @ X / len(X)
    for bits, scheme in [(4, "uniform"), (2, "uniform"), (2, "ternary"), (3, "kmeans")]:
        rtn = qw.quantize_weight(w, 0, True, bits, scheme, "mse")
        opt = qw.quantize_weight(w, 0, True, bits, scheme, "mse", hessian=H)
        err = lambda q: np.sum(((q.dequantized(0) - w) @ X.T) ** 2)   # noqa: E731
        assert err(opt) < 0.9 * err(rtn), (bits, scheme)
        np.testing.assert_array_equal(opt.scale, rtn.scale)          # same grid, better rounding
        grid = set(opt.codebook.ravel().tolist()) if scheme == "kmeans" else \
            set(qw.levels(qw.scheme_bits(bits, scheme), scheme).astype(int).tolist())
        assert set(opt.levels.ravel().tolist()) <= grid


def test_gptq_per_row_hessians_for_depthwise():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((1, 3, 3, 4)).astype(np.float32)
    Xs = [correlated(500, 9, seed=s) for s in range(4)]
    H = np.stack([2 * X.T @ X / len(X) for X in Xs])
    rtn = qw.quantize_weight(w, 3, True, 3, "uniform", "mse")
    opt = qw.quantize_weight(w, 3, True, 3, "uniform", "mse", hessian=H)
    rows = lambda q: qw.to_rows(q.dequantized(3) - w, 3)   # noqa: E731
    e = lambda q: sum(np.sum((rows(q)[c] @ Xs[c].T) ** 2) for c in range(4))   # noqa: E731
    assert e(opt) < e(rtn)


def fc_pair(act="RELU", seed=0):
    b = Builder(seed)
    x = b.input((1, 12))
    y = b.fc(x, 16, act=act, name="fc1")
    y = b.fc(y, 6, name="fc2")
    return b.output(y)


def conv_dw(act="RELU", seed=0):
    b = Builder(seed)
    x = b.input((1, 6, 6, 3))
    y = b.conv(x, 8, act=act, name="c1")
    wt = b.rand("dw_w", (1, 3, 3, 8))
    bias = b.rand("dw_b", (8,), 0.1)
    y = b.op("DEPTHWISE_CONV_2D", [y, wt, bias], (1, 6, 6, 8), "dw", padding="SAME", stride_h=1, stride_w=1,
             depth_multiplier=1, fused_activation_function="NONE")
    return b.output(y)


def run_quant(g, xs, **opts):
    return Pipeline([Step("quantize", {"dtype": "int8", **opts})]).run(
        g.copy(), calibration=Dataset(xs), observe=lambda gg: observe(gg, xs), debug=True)


def test_bias_correction_removes_the_mean_output_error():
    g = fc_pair()
    rng = np.random.default_rng(3)
    xs = [(rng.standard_normal((200, 12)) + 1.0).astype(np.float32)]   # a non-zero input mean
    q, rep = run_quant(g, xs, weight_bits=2, loss_aware=False, bias_correction=True)
    assert rep[0]["bias_corrected_layers"] == 2
    p, _ = run_quant(g, xs, weight_bits=2, loss_aware=False, bias_correction=False)
    yf = interpret.run_batch(g, xs)[0]
    err = {}
    for label, m in (("bc", q), ("plain", p)):
        xq = m.tensors[m.inputs[0]].quant.quantize(xs[0], "int8")
        y = m.tensors[m.outputs[0]].quant.dequantize(interpret.run_batch(m, [xq])[0])
        err[label] = np.abs((y - yf).mean(axis=0)).mean()
    assert err["bc"] < 0.5 * err["plain"]


def test_loss_aware_beats_round_to_nearest_on_outputs():
    g = conv_dw()
    rng = np.random.default_rng(4)
    xs = [rng.standard_normal((40, 6, 6, 3)).astype(np.float32)]
    yf = interpret.run_batch(g, xs)[0]
    err = {}
    for la in (True, False):
        q, rep = run_quant(g, xs, weight_bits=3, loss_aware=la, bias_correction=la)
        assert rep[0]["loss_aware_layers"] == (2 if la else 0)
        xq = q.tensors[q.inputs[0]].quant.quantize(xs[0], "int8")
        y = q.tensors[q.outputs[0]].quant.dequantize(interpret.run_batch(q, [xq])[0])
        err[la] = np.mean((y - yf) ** 2)
    assert err[True] < err[False]


# -- cross-layer equalization ------------------------------------------------------------------------

def equalized(g):
    out, rep = Pipeline([Step("equalize_layers")]).run(g.copy(), debug=True)
    return out, rep[0]


@pytest.mark.parametrize("make", [fc_pair, conv_dw])
@pytest.mark.parametrize("act", ["RELU", "NONE"])
def test_cle_equalizes_ranges_and_keeps_outputs(make, act):
    g = make(act)
    out, rep = equalized(g)
    assert len(rep["pairs"]) == 1
    a, b = out.ops
    w1, w2 = out.tensors[a.inputs[1]].data, out.tensors[b.inputs[1]].data
    r1 = np.abs(w1.reshape(w1.shape[0], -1)).max(axis=1)
    r2 = np.abs(w2.T if b.type == "FULLY_CONNECTED" else w2.reshape(-1, w2.shape[-1])).reshape(len(r1), -1).max(axis=1) \
        if b.type == "FULLY_CONNECTED" else np.abs(w2.reshape(-1, w2.shape[-1])).max(axis=0)
    np.testing.assert_allclose(r1, r2, rtol=1e-4)
    xs = [np.random.default_rng(5).standard_normal((4,) + g.tensors[g.inputs[0]].shape[1:]).astype(np.float32)]
    np.testing.assert_allclose(interpret.run_batch(out, xs)[0], interpret.run_batch(g, xs)[0], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("act", ["RELU6", "RELU_N1_TO_1", "TANH"])
def test_cle_skips_pairs_whose_activation_does_not_commute_with_scaling(act):
    g = fc_pair(act)
    out, rep = equalized(g)
    assert rep["pairs"] == [] and len(rep["skipped"]) == 1
    for name in ("fc1_w", "fc1_b", "fc2_w"):
        np.testing.assert_array_equal(out.tensors[name].data, g.tensors[name].data)


def test_cle_skips_branches_outputs_and_flattening():
    b = Builder(0)
    x = b.input((1, 4, 4, 2))
    y = b.conv(x, 3, act="RELU", name="c1")
    f = b.reshape(y, (1, 48))
    z = b.fc(f, 5, name="fc")                  # conv -> reshape -> fc: not adjacent
    y2 = b.conv(y, 4, name="c2")               # c1's output has two readers now
    g = b.output(z, y2)
    out, rep = equalized(g)
    assert rep["pairs"] == []
    np.testing.assert_array_equal(out.tensors["c1_w"].data, g.tensors["c1_w"].data)


# -- quality on a trained model ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_accuracy(tmp_path_factory):
    from edgec import api
    root = tmp_path_factory.mktemp("lowbit")

    def acc(recipe, **extra):
        path = recipe
        if extra:
            from edgec.passes.manager import RECIPES_DIR
            text = (RECIPES_DIR / f"{recipe}.toml").read_text()
            text += "".join(f"{k} = {str(v).lower()}\n" for k, v in extra.items())
            path = root / f"{recipe}_{len(list(root.iterdir()))}.toml"
            path.write_text(text)
        rep = api.compile(EXAMPLES / "digits_cnn.keras", root / f"out{len(list(root.iterdir()))}",
                          recipe=str(path), calibration=EXAMPLES / "digits_calib.npz",
                          eval_data=EXAMPLES / "digits_test.npz")
        return rep["evaluation"]["accuracy"], rep["evaluation"]["float_accuracy"], rep
    return acc


def test_int4_loss_aware_is_at_least_rtn_and_near_float(digits_accuracy):
    la, fl, rep = digits_accuracy("int4")
    rtn, _, _ = digits_accuracy("int4", loss_aware=False, bias_correction=False)
    q = next(p for p in rep["passes"] if p["name"] == "quantize")
    assert q["loss_aware_layers"] == 4 and q["bias_corrected_layers"] == 4
    assert la >= rtn
    assert la >= fl - 0.010


def test_int2_loss_aware_recovers_most_of_the_rtn_drop(digits_accuracy):
    la, fl, _ = digits_accuracy("int2")
    rtn, _, _ = digits_accuracy("int2", loss_aware=False, bias_correction=False)
    assert la > rtn + 0.03 and la >= fl - 0.06
