"""Per-group weight scales (group:N) and low-bit GATHER tables / BATCH_MATMUL operands in the quantize
pass: stored levels follow the group contract (v = q * m, |q| on the scheme's grid, multipliers per
group), grouping lowers the weight error, the graphs stay bit-exact in LiteRT and TFLM, and bad
combinations are one-line user errors."""
import numpy as np
import pytest

from edgec import api
from edgec import quant_weights as qw
from edgec.backends.c.pack_weights import weight_rows
from edgec.errors import EdgecError
from graphs import Builder
from opcheck import check_bit_exact
from test_quantize_lowbit import WEIGHT_OPS, allowed, calib, logits_cnn, quantized


def _check_groups(w, op_type, bits, scheme, n):
    rows = weight_rows(op_type, w.data)
    mult = w.meta["group_mult"]
    assert w.meta["group_size"] == n and mult.dtype == np.uint8
    assert mult.shape == (rows.shape[0], -(-rows.shape[1] // n))
    assert mult.min() >= 1 and int(mult.max()) <= qw.group_mult_max(bits, scheme)
    q = qw.group_levels(rows, mult, n)
    assert set(np.unique(q).tolist()) <= allowed(bits, scheme)


@pytest.mark.parametrize("bits,scheme,n", [(4, "uniform", 8), (3, "uniform", 5), (2, "uniform", 16),
                                           (2, "ternary", 4), (1, "binary", 7), (4, "uniform", 1000)])
def test_group_levels_follow_the_contract(bits, scheme, n):
    _, q, rep = quantized(logits_cnn(), weight_bits=max(bits, 2), weight_scheme=scheme, group_size=n)
    assert rep["group_scaled_layers"] == 3
    for op in q.ops:
        if op.type in WEIGHT_OPS:
            w = q.tensors[op.inputs[1]]
            assert w.quant.bits == bits and w.quant.scheme == scheme and w.quant.per_channel
            _check_groups(w, op.type, bits, scheme, n)
    x = calib(4, seed=9)[0]
    stats = check_bit_exact(q, inputs=[q.tensors[q.inputs[0]].quant.quantize(x, "int8")])
    assert stats["tflm"]["max_lsb"] == 0


def test_groups_lower_the_error_of_weights_whose_columns_differ():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((16, 96)) * np.repeat(rng.uniform(0.05, 2.0, 6), 16)[None, :]
    err = {}
    for n in (0, 64, 16):
        q = qw.quantize_weight(w, 0, True, 4, "uniform", "mse", group_size=n)
        err[n] = float(((q.dequantized(0) - w) ** 2).mean())
    assert err[16] < err[64] < err[0]
    assert err[16] < 0.5 * err[0]


def test_gptq_with_groups_keeps_the_group_grid():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((6, 40))
    x = rng.standard_normal((200, 40)) @ rng.standard_normal((40, 40))
    H = 2 * x.T @ x / len(x)
    plain = qw.quantize_weight(w, 0, True, 3, "uniform", "mse", group_size=8)
    tuned = qw.quantize_weight(w, 0, True, 3, "uniform", "mse", group_size=8, hessian=H)
    np.testing.assert_array_equal(plain.group_mult, tuned.group_mult)   # groups chosen before GPTQ
    qw.group_levels(tuned.levels, tuned.group_mult, 8)
    out = lambda q: ((x @ (q.dequantized(0) - w).T) ** 2).mean()  # noqa: E731
    assert out(tuned) < out(plain)


def test_gptq_keeps_pruned_weights_at_zero():
    rng = np.random.default_rng(2)
    w = rng.standard_normal((8, 32)) * (rng.random((8, 32)) > 0.5)
    x = rng.standard_normal((100, 32)) @ rng.standard_normal((32, 32))   # correlated inputs
    q = qw.quantize_weight(w, 0, True, 4, "uniform", "mse", hessian=2 * x.T @ x / 100, keep_zeros=True)
    assert np.all(q.levels[w == 0] == 0)
    q = qw.quantize_weight(w, 0, True, 4, "uniform", "mse", hessian=2 * x.T @ x / 100)
    assert np.any(q.levels[w == 0] != 0)   # without the flag GPTQ refills them


@pytest.mark.parametrize("opts,match", [
    (dict(group_size=8), "below 8 bits"),                                   # int8 weights
    (dict(group_size=8, weight_bits=4, weight_scheme="pow2"), "not 4-bit pow2"),
    (dict(group_size=8, weight_bits=4, weight_scheme="kmeans"), "kmeans"),
    (dict(group_size=-1, weight_bits=4), "group_size"),
    (dict(group_size="8", weight_bits=4), "group_size")])
def test_bad_group_options_are_user_errors(opts, match):
    with pytest.raises(EdgecError, match=match):
        quantized(logits_cnn(), **opts)


@pytest.mark.parametrize("text,want", [("tensor", {"per_channel": False, "group_size": 0}),
                                       ("channel", {"per_channel": True, "group_size": 0}),
                                       ("group:32", {"per_channel": True, "group_size": 32})])
def test_granularity_flag(text, want):
    assert api.parse_granularity(text) == want


@pytest.mark.parametrize("text", ["group", "group:0", "group:x", "row", "group:-4"])
def test_bad_granularity_flag(text):
    with pytest.raises(EdgecError, match="granularity"):
        api.parse_granularity(text)


# ------------------------------------------------------------------------------------------------
# GATHER tables and BATCH_MATMUL operands

def embedding_graph(vocab=23, dim=13, units=5, seed=0):
    b = Builder(seed)
    ids = "ids"
    b.g.add_tensor(__import__("edgec.ir", fromlist=["Tensor"]).Tensor(ids, (1, 6), "int32"))
    b.g.inputs.append(ids)
    table = b.const("table", b.rng.standard_normal((vocab, dim)) * np.linspace(0.1, 2.0, vocab)[:, None])
    e = b.op("GATHER", [table, ids], (1, 6, dim), "embed", axis=0)
    flat = b.reshape(e, [1, 6 * dim])
    rhs = b.rand("rhs", (6 * dim, 9))
    m = b.op("BATCH_MATMUL", [flat, rhs], (1, 9), "bmm")
    return b.output(b.fc(m, units, name="logits"))


def embedding_quantized(**opts):
    from edgec.calibrate import observe
    from edgec.data import Dataset
    from edgec.passes import Pipeline, Step
    g = embedding_graph()
    xs = [np.random.default_rng(0).integers(0, 23, (32, 6)).astype(np.int32)]
    out, rep = Pipeline([Step("quantize", {"dtype": "int8", **opts})]).run(
        g.copy(), calibration=Dataset(xs), observe=lambda gg: observe(gg, xs), debug=True)
    return g, out, rep[0], xs


@pytest.mark.parametrize("bits,scheme", [(4, "uniform"), (3, "uniform"), (2, "ternary"), (1, "binary")])
def test_gather_table_and_bmm_rhs_get_one_multiplier_per_row(bits, scheme):
    g, q, _, xs = embedding_quantized(weight_bits=max(bits, 2), weight_scheme=scheme)
    ops = {op.type: op for op in q.ops}
    table = q.tensors[ops["GATHER"].inputs[0]]
    rhs = q.tensors[ops["BATCH_MATMUL"].inputs[1]]
    for t, op_type, k in ((table, "GATHER", 13), (rhs, "BATCH_MATMUL", 78)):
        assert t.quant.scale.size == 1 and t.quant.bits == bits   # one scale: TFLite's kernels need it
        assert t.meta["group_size"] == k and t.meta["group_mult"].shape[1] == 1
        rows = t.data.reshape(23, 13) if op_type == "GATHER" else t.data.T
        assert set(np.unique(qw.group_levels(rows, t.meta["group_mult"], k)).tolist()) <= allowed(bits, scheme)
    # the GATHER output carries the table's parameters
    assert q.tensors[ops["GATHER"].outputs[0]].quant.same_as(table.quant.__class__(table.quant.scale, 0))
    check_bit_exact(q, inputs=[x[:4] for x in xs])


def test_gather_rows_beat_one_table_scale():
    err = {}
    for per_channel in (False, True):
        g, q, _, _ = embedding_quantized(weight_bits=4, per_channel=per_channel)
        t = q.tensors[next(op for op in q.ops if op.type == "GATHER").inputs[0]]
        err[per_channel] = float(((t.quant.dequantize(t.data) - g.tensors["table"].data) ** 2).mean())
        assert ("group_mult" in t.meta) == per_channel
    assert err[True] < 0.5 * err[False]


def test_int8_gather_and_bmm_are_unchanged():
    _, q, _, _ = embedding_quantized()
    for op in q.ops:
        if op.type in ("GATHER", "BATCH_MATMUL"):
            t = q.tensors[op.inputs[0 if op.type == "GATHER" else 1]]
            assert t.quant.bits == 8 and "group_mult" not in t.meta
