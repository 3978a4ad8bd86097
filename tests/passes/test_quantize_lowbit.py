"""Low-bit weights in the quantize pass: every scheme and width stores int8 level values exactly as the
IR contract says (bits, scheme, codebook), per-layer overrides apply, and the graphs stay bit-exact in
LiteRT and TFLM."""
import numpy as np
import pytest

from edgec import quant_weights as qw
from edgec.calibrate import observe
from edgec.data import Dataset
from edgec.errors import EdgecError
from edgec.passes import Pipeline, Step
from graphs import small_cnn
from opcheck import check_bit_exact

WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def calib(n=24, seed=0, shape=(8, 8, 1)):
    return [np.random.default_rng(seed).standard_normal((n,) + shape).astype(np.float32)]


def quantized(g=None, overrides=None, with_data=True, **opts):
    g = g or small_cnn()
    xs = calib(shape=g.tensors[g.inputs[0]].shape[1:])
    out, rep = Pipeline([Step("quantize", {"dtype": "int8", **opts}, overrides or {})]).run(
        g.copy(), calibration=Dataset(xs) if with_data else None, observe=lambda gg: observe(gg, xs), debug=True)
    return g, out, rep[0]


def logits_cnn():
    """small_cnn without its SOFTMAX: LiteRT's FULLY_CONNECTED rescales in double (a documented 1 LSB
    deviation, opcheck.LITERT_DEVIATIONS_LSB) and a softmax over coarse low-bit logits multiplies that
    LSB by several, which would say nothing about the weights."""
    g = small_cnn()
    sm = g.ops.pop()
    g.outputs = [sm.inputs[0]]
    g.prune_unused()
    return g


def weights(q):
    return {op.name: q.tensors[op.inputs[1]] for op in q.ops if op.type in WEIGHT_OPS}


def allowed(bits, scheme):
    return set(qw.levels(bits, scheme).astype(int).tolist())


CASES = [(4, "uniform"), (3, "uniform"), (2, "uniform"), (2, "ternary"), (1, "binary"),
         (4, "pow2"), (3, "pow2"), (2, "pow2"), (4, "kmeans"), (3, "kmeans"), (2, "kmeans")]


@pytest.mark.parametrize("bits,scheme", CASES)
def test_levels_and_params_follow_the_contract(bits, scheme):
    _, q, rep = quantized(weight_bits=max(bits, 2), weight_scheme=scheme)
    assert rep["low_bit_weights"] == 3 and rep["loss_aware_layers"] == 3
    for name, w in weights(q).items():
        assert w.dtype == "int8" and w.quant.bits == bits and w.quant.scheme == scheme
        assert np.all(w.quant.zero_point == 0)
        assert w.quant.per_channel and w.quant.axis == 0 and w.quant.scale.size == w.shape[0]  # FC too
        assert w.nbytes == (w.size * bits + 7) // 8
        vals = w.data.astype(int)
        if scheme == "kmeans":
            book = w.meta["codebook"]
            assert book.dtype == np.int8 and book.shape[0] == w.shape[0]
            for c in range(w.shape[0]):
                assert len(set(book[c].tolist())) <= 2 ** bits and np.all(np.diff(book[c].astype(int)) >= 0)
                assert set(vals[c].ravel().tolist()) <= set(book[c].tolist())
        else:
            assert set(vals.ravel().tolist()) <= allowed(bits, scheme)
        if scheme == "binary":
            assert 0 not in vals
        if scheme == "pow2":
            nz = np.abs(vals[vals != 0])
            assert np.all((nz & (nz - 1)) == 0)   # powers of two
    assert "codebook" not in next(iter(weights(q).values())).meta or scheme == "kmeans"


@pytest.mark.parametrize("opts", [dict(weight_bits=4), dict(weight_scheme="ternary"), dict(weight_scheme="binary"),
                                  dict(weight_bits=4, weight_scheme="pow2"), dict(weight_bits=3, weight_scheme="kmeans"),
                                  dict(weight_bits=2, rounding="stochastic", seed=3)])
def test_low_bit_graphs_are_bit_exact_across_runtimes(opts):
    g, q, _ = quantized(logits_cnn(), **opts)
    x = calib(4, seed=9)[0]
    xq = q.tensors[q.inputs[0]].quant.quantize(x, "int8")
    stats = check_bit_exact(q, inputs=[xq])
    assert stats["tflm"]["max_lsb"] == 0


def test_int16x8_with_int3_weights():
    # (3 bits: the TFLite writer stores 4-bit conv weights as INT4, which TFLM's int16x8 CONV_2D refuses)
    _, q, _ = quantized(logits_cnn(), dtype="int16x8", weight_bits=3)
    for op in q.ops:
        if op.type in WEIGHT_OPS:
            assert q.tensors[op.inputs[1]].quant.bits == 3 and q.tensors[op.inputs[2]].dtype == "int64"
    check_bit_exact(q, n=2)


def test_first_and_last_layer_overrides_keep_8_bits():
    _, q, _ = quantized(overrides={"conv1|logits": {"weight_bits": 8}}, weight_bits=4)
    w = weights(q)
    assert w["conv1"].quant.bits == 8 and np.abs(w["conv1"].data).max() > 7
    assert w["logits"].quant.bits == 8 and not w["logits"].quant.per_channel   # 8-bit FC: per tensor as before
    assert w["conv2"].quant.bits == 4 and np.abs(w["conv2"].data).max() <= 7


def test_override_scheme_per_layer():
    _, q, _ = quantized(overrides={"conv2": {"weight_scheme": "ternary"}}, weight_bits=3)
    w = weights(q)
    assert w["conv2"].quant.scheme == "ternary" and w["conv2"].quant.bits == 2
    assert w["conv1"].quant.scheme == "uniform" and w["conv1"].quant.bits == 3


def test_default_int8_is_untouched_by_the_new_options():
    _, a, rep = quantized()
    _, b, _ = quantized(weight_bits=8, weight_scheme="uniform", weight_scale="auto", loss_aware="auto")
    assert "low_bit_weights" not in rep
    for (n, wa), wb in zip(weights(a).items(), weights(b).values()):
        np.testing.assert_array_equal(wa.data, wb.data)
        assert wa.quant.bits == 8 and wa.quant.scheme == "uniform"


def test_without_calibration_samples_low_bit_falls_back_to_round_to_nearest():
    _, q, rep = quantized(with_data=False, weight_bits=4)
    assert rep["loss_aware_layers"] == 0 and rep["bias_corrected_layers"] == 0
    assert all(w.quant.bits == 4 for w in weights(q).values())


def test_stochastic_rounding_is_seeded():
    _, a, _ = quantized(weight_bits=3, rounding="stochastic", seed=1, loss_aware=False)
    _, b, _ = quantized(weight_bits=3, rounding="stochastic", seed=1, loss_aware=False)
    _, c, _ = quantized(weight_bits=3, rounding="stochastic", seed=2, loss_aware=False)
    wa, wb, wc = (weights(x)["conv2"].data for x in (a, b, c))
    np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(wa, wc)


@pytest.mark.parametrize("opts,match", [(dict(weight_bits=5), "weight_bits"), (dict(weight_scheme="lloyd"), "scheme"),
                                        (dict(rounding="up"), "rounding"), (dict(weight_scale="p99"), "weight_scale"),
                                        (dict(loss_aware="yes"), "loss_aware")])
def test_bad_weight_options_are_user_errors(opts, match):
    with pytest.raises(EdgecError, match=match):
        quantized(**opts)


def test_bad_override_option_is_a_user_error():
    with pytest.raises(EdgecError, match="weight_bits"):
        quantized(overrides={"conv1": {"weight_bits": 6}})


# -- the weight quantizers themselves ---------------------------------------------------------------

def test_grids():
    assert qw.levels(4, "uniform").tolist() == list(range(-7, 8))
    assert qw.levels(3, "uniform").tolist() == list(range(-3, 4))
    assert qw.levels(2, "uniform").tolist() == [-1, 0, 1]
    assert qw.levels(4, "pow2").tolist() == [-64, -32, -16, -8, -4, -2, -1, 0, 1, 2, 4, 8, 16, 32, 64]
    assert qw.levels(3, "pow2").tolist() == [-4, -2, -1, 0, 1, 2, 4]
    assert qw.levels(8, "pow2").max() == 64   # capped to what int8 holds


def test_mse_scale_beats_max_scale():
    w = np.random.default_rng(0).standard_t(3, (16, 64)).astype(np.float32)   # heavy tails
    err = {}
    for mode in ("max", "mse"):
        q = qw.quantize_weight(w, 0, True, 4, "uniform", mode)
        err[mode] = ((q.dequantized(0) - w) ** 2).sum(axis=1)
    assert np.all(err["mse"] <= err["max"] + 1e-9) and err["mse"].sum() < 0.95 * err["max"].sum()


def test_binary_scale_is_mean_abs_and_ternary_starts_from_twn():
    w = np.random.default_rng(1).standard_normal((4, 50)).astype(np.float32)
    q = qw.quantize_weight(w, 0, True, 1, "binary")
    np.testing.assert_allclose(q.scale, np.abs(w).mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(q.levels, np.where(w >= 0, 1, -1))
    t_max = qw.quantize_weight(w, 0, True, 2, "ternary", "max")     # the closed form alone
    a = np.abs(w)
    delta = 0.7 * a.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(t_max.scale, (a * (a > delta)).sum(1) / (a > delta).sum(1), rtol=1e-6)
    t_mse = qw.quantize_weight(w, 0, True, 2, "ternary", "mse")
    e = lambda t: ((t.dequantized(0) - w) ** 2).sum()   # noqa: E731
    assert e(t_mse) <= e(t_max) + 1e-9


def test_kmeans_codebook_per_tensor():
    w = np.random.default_rng(2).standard_normal((6, 3, 3, 4)).astype(np.float32)
    q = qw.quantize_weight(w, 0, False, 3, "kmeans")
    assert q.codebook.ndim == 1 and q.codebook.size <= 8 and np.all(np.diff(q.codebook.astype(int)) > 0)
    assert set(q.levels.ravel().tolist()) <= set(q.codebook.tolist())


def test_stochastic_rounding_is_unbiased():
    x = np.full(20000, 0.3)
    r = qw.round_to_grid(x[None], np.array([0.0, 1.0]), "stochastic", np.random.default_rng(0))
    assert abs(r.mean() - 0.3) < 0.02
