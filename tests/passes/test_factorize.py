"""factorize: SVD of FULLY_CONNECTED, Tucker-2 and CP of CONV_2D (compiler/edgec/passes/factorize.py)."""
import numpy as np
import pytest

from ccheck import check_c_exact
from edgec.backends.tflite import write_tflite
from edgec.calibrate import observe
from edgec.data import dataset_from
from edgec.errors import EdgecError
from edgec.ir import interpret, structurally_equal, verify
from edgec.ir import ops as opreg
from edgec.ir.ops.conv import out_size
from edgec.passes import Pipeline, Step, load_recipe
from edgec.passes.factorize import graph_macs, graph_params, parse_factorize
from edgec.run.litert import run_litert
from graphs import Builder


def run(g, train=None, overrides=None, **options):
    out, reports = Pipeline([Step("factorize", options, overrides or {})]).run(g.copy(), debug=True, train_data=train)
    return out, reports[0]


def rows(rep):
    return {r["name"]: r for r in rep["layers"]}


def inputs(g, n=4, seed=1):
    return [np.random.default_rng(seed).standard_normal((n,) + g.tensors[g.inputs[0]].shape[1:]).astype(np.float32)]


def assert_same(a, b, atol=1e-4):
    xs = inputs(a)
    for ya, yb in zip(interpret.run_batch(a, xs), interpret.run_batch(b, xs)):
        np.testing.assert_allclose(yb, ya, rtol=1e-4, atol=atol)


def with_spectrum(rng, out, inn, s):
    """A [out, in] matrix with singular values s."""
    u = np.linalg.qr(rng.standard_normal((out, out)))[0][:, :len(s)]
    v = np.linalg.qr(rng.standard_normal((inn, inn)))[0][:, :len(s)]
    return (u * s) @ v.T


def tucker_kernel(rng, o, kh, kw, i, r_in, r_out):
    """A conv kernel [O, kh, kw, I] of multilinear ranks (r_out, r_in) in the output and input modes."""
    core = rng.standard_normal((r_out, kh, kw, r_in))
    return np.einsum("rhws,or,is->ohwi", core, rng.standard_normal((o, r_out)), rng.standard_normal((i, r_in)))


def mlp(w1=None, act="RELU", seed=0):
    """x[1, 40] -> FC 48 (act) -> FC 10 -> softmax."""
    b = Builder(seed)
    x = b.input((1, 40))
    h = b.fc(x, 48, act=act, name="fc1")
    if w1 is not None:
        b.g.tensors["fc1_w"].data = np.asarray(w1, np.float32)
    y = b.fc(h, 10, name="logits")
    return b.output(b.op("SOFTMAX", [y], (1, 10), "probs", beta=1.0))


def conv_net(kernel=None, stride=1, padding="SAME", dilation=1, k=(3, 3), act="RELU6", seed=0):
    """x[1, 11, 10, 12] -> CONV_2D "conv" 16 (the given kernel and geometry, act) -> CONV_2D "proj" 1x1
    stride 2 -> 20."""
    b = Builder(seed)
    x = b.input((1, 11, 10, 12))
    w = b.const("conv_w", kernel if kernel is not None else b.rng.standard_normal((16, *k, 12)) * 0.3)
    kh, kw = b.g.tensors[w].shape[1:3]
    h, wd = (out_size(padding, n, kk, stride, dilation) for n, kk in ((11, kh), (10, kw)))
    y = b.op("CONV_2D", [x, w, b.rand("conv_b", (16,), 0.1)], (1, h, wd, 16), "conv", padding=padding,
             stride_h=stride, stride_w=stride, dilation_h_factor=dilation, dilation_w_factor=dilation,
             fused_activation_function=act)
    y = b.op("CONV_2D", [y, b.rand("proj_w", (20, 1, 1, 16)), b.rand("proj_b", (20,))],
             (1, -(-h // 2), -(-wd // 2), 20), "proj", padding="SAME", stride_h=2, stride_w=2)
    return b.output(y)


# ------------------------------------------------------------------------------------------------
# rank selection

@pytest.mark.parametrize("energy", [0.5, 0.9, 0.97, 1.0])
def test_energy_rule_keeps_the_smallest_rank_reaching_the_energy(energy):
    s = np.array([8, 6, 5, 3, 2, 1.5, 1, 0.5])
    g = mlp(with_spectrum(np.random.default_rng(0), 48, 40, s))
    _, rep = run(g, fc="svd", conv="none", energy=energy)
    share = np.cumsum(s ** 2) / np.sum(s ** 2)
    want = int(np.argmax(share >= energy - 1e-9)) + 1
    r = rows(rep)["fc1"]
    assert r["ranks"] == [want]
    assert r["energy_kept"] == pytest.approx(share[want - 1], abs=1e-5)


def test_explicit_ranks_svd_and_tucker_pair():
    _, rep = run(mlp(), fc="svd", conv="none", rule="rank", rank=5)
    assert rows(rep)["fc1"]["ranks"] == [5] and rows(rep)["logits"]["ranks"] == [5]
    _, rep = run(conv_net(), fc="none", rule="rank", rank=[3, 7])
    assert rows(rep)["conv"]["ranks"] == [3, 7]
    assert rows(rep)["proj"]["method"] == "svd" and rows(rep)["proj"]["ranks"] == [3]   # a 1x1 conv: one rank


@pytest.mark.parametrize("kind", ["params", "macs"])
def test_global_budget_is_met_and_shared_by_one_energy_threshold(kind):
    g = mlp()
    out, rep = run(g, fc="svd", conv="none", rule=kind, **{kind: 0.4})
    (budget,) = rep["budgets"]
    assert budget["met"] and budget["achieved"] <= 0.4 and budget["layers"] == 2
    rs = rows(rep)
    k = "params" if kind == "params" else "macs"
    assert sum(r[f"{k}_after"] for r in rs.values()) <= 0.4 * sum(r[f"{k}_before"] for r in rs.values())
    for name, r in rs.items():   # every layer keeps at least the shared threshold of its energy
        if r["status"] == "factorized":
            assert r["energy_kept"] >= budget["energy_threshold"] - 1e-6, name


def test_per_layer_budget_takes_the_largest_rank_within_each_layer():
    out, rep = run(mlp(), fc="svd", conv="none", rule="params", params=0.3, budget="layer")
    for name, (o, i) in {"fc1": (48, 40), "logits": (10, 48)}.items():
        r = rows(rep)[name]
        assert r["status"] == "factorized", name
        rank = r["ranks"][0]
        assert rank * (i + o) + o <= 0.3 * (o * i + o) < (rank + 1) * (i + o) + o, name


def test_an_unreachable_budget_takes_rank_one_and_says_so():
    _, rep = run(mlp(), fc="svd", conv="none", rule="params", params=0.001)
    assert rep["budgets"][0]["met"] is False
    assert all(r["ranks"] == [1] for r in rep["layers"])


def test_cp_takes_a_budget_per_layer():
    g = conv_net()
    _, rep = run(g, fc="none", conv="cp", rule="macs", macs=0.3, cp_iters=5, overrides={"proj": {"skip": True}})
    r = rows(rep)["conv"]
    assert "budgets" not in rep and r["macs_after"] <= 0.3 * r["macs_before"]
    rank = r["ranks"][0]
    _, bigger = run(g, fc="none", conv="cp", rule="rank", rank=rank + 1, cp_iters=1, overrides={"proj": {"skip": True}})
    assert rows(bigger)["conv"]["macs_after"] > 0.3 * r["macs_before"]


# ------------------------------------------------------------------------------------------------
# exactness: a weight of rank r kept at rank r computes the same function

def test_svd_at_the_weights_full_rank_is_exact():
    rng = np.random.default_rng(3)
    g = mlp(rng.standard_normal((48, 4)) @ rng.standard_normal((4, 40)) * 0.3)
    out, rep = run(g, fc="svd", conv="none", energy=1.0)
    assert rows(rep)["fc1"]["ranks"] == [4] and rows(rep)["fc1"]["status"] == "factorized"
    assert_same(g, out, atol=1e-5)
    out2, rep2 = run(g, fc="svd", conv="none", rule="rank", rank=4, overrides={"logits": {"skip": True}})
    assert rows(rep2)["logits"]["status"] == "skipped"
    assert_same(g, out2, atol=1e-5)


@pytest.mark.parametrize("stride,padding,dilation,k", [(1, "SAME", 1, (3, 3)), (2, "SAME", 1, (3, 3)),
                                                       (2, "VALID", 2, (3, 2)), (3, "SAME", 1, (5, 3))])
def test_tucker_at_the_kernels_multilinear_ranks_is_exact(stride, padding, dilation, k):
    rng = np.random.default_rng(4)
    g = conv_net(tucker_kernel(rng, 16, *k, 12, 3, 5) * 0.1, stride, padding, dilation, k)
    out, rep = run(g, fc="none", energy=1.0, hooi_iters=1)
    r = rows(rep)["conv"]
    assert r["ranks"] == [3, 5] and r["energy_kept"] == pytest.approx(1.0, abs=1e-6)
    assert r["ops"] == ["CONV_2D"] * 3
    assert_same(g, out, atol=1e-4)


def test_tucker_one_mode_at_full_rank_is_left_out():
    rng = np.random.default_rng(5)
    g = conv_net(tucker_kernel(rng, 16, 3, 3, 12, 12, 4) * 0.1)    # input mode full rank
    out, rep = run(g, fc="none", energy=1.0)
    r = rows(rep)["conv"]
    assert r["ranks"] == [12, 4] and r["ops"] == ["CONV_2D", "CONV_2D"]
    assert_same(g, out)


@pytest.mark.parametrize("stride,padding,k", [(2, "SAME", (3, 3)), (1, "VALID", (3, 2)), (2, "SAME", (1, 3))])
def test_cp_of_a_rank_r_kernel_is_exact(stride, padding, k):
    rng = np.random.default_rng(6)
    fa, fb, fc, fd = (rng.standard_normal((n, 3)) for n in (16, k[0], k[1], 12))
    g = conv_net(np.einsum("or,hr,wr,ir->ohwi", fa, fb, fc, fd) * 0.1, stride, padding, 1, k)
    out, rep = run(g, fc="none", conv="cp", rule="rank", rank=3, cp_iters=500, overrides={"proj": {"skip": True}})
    r = rows(rep)["conv"]
    assert r["status"] == "factorized" and r["energy_kept"] > 1 - 1e-6
    depthwise = [t for t in r["ops"] if t == "DEPTHWISE_CONV_2D"]
    assert len(depthwise) == sum(d > 1 for d in k)
    assert_same(g, out, atol=1e-3)


def test_cp_energy_rule_picks_the_smallest_rank_that_fits():
    rng = np.random.default_rng(7)
    fa, fb, fc, fd = (rng.standard_normal((n, 2)) for n in (16, 3, 3, 12))
    g = conv_net(np.einsum("or,hr,wr,ir->ohwi", fa, fb, fc, fd) * 0.1)
    _, rep = run(g, fc="none", conv="cp", energy=0.9999)
    assert rows(rep)["conv"]["ranks"] == [2]


# ------------------------------------------------------------------------------------------------
# what changes, and what must not

def _layer_ops(g, name):
    return [op for op in g.ops if op.name == name or op.name.startswith(name + "_f")]


@pytest.mark.parametrize("graph,options", [
    (lambda: mlp(), dict(fc="svd", conv="none", rule="rank", rank=6)),
    (lambda: conv_net(stride=2), dict(fc="none", rule="rank", rank=[4, 6])),
    (lambda: conv_net(k=(3, 3), dilation=2), dict(fc="none", conv="cp", rule="rank", rank=5, cp_iters=20)),
    (lambda: conv_net(k=(1, 5)), dict(fc="none", conv="cp", rule="rank", rank=4, cp_iters=20)),
], ids=["svd", "tucker", "cp", "cp-1xk"])
def test_reported_params_and_macs_are_the_graphs_and_drop(graph, options):
    g = graph()
    out, rep = run(g, **options)
    assert rep["factorized"] >= 1
    for name, r in rows(rep).items():
        ops = _layer_ops(out, name)
        params = sum(out.tensors[n].size for op in ops for _, n in opreg.float_constant_inputs(out, op))
        macs = sum(opreg.get(op.type).macs(op, [out.t(i) for i in op.inputs], [out.tensors[o] for o in op.outputs])
                   for op in ops)
        assert (params, macs) == (r["params_after"], r["macs_after"]), name
        if r["status"] == "factorized":
            assert r["params_after"] < r["params_before"] and r["macs_after"] < r["macs_before"], name
    assert rep["params_after"] == graph_params(out) < graph_params(g) == rep["params_before"]
    assert rep["macs_after"] == graph_macs(out) < graph_macs(g) == rep["macs_before"]


def test_layers_that_would_grow_are_left_alone():
    b = Builder(1)
    x = b.input((1, 10))
    g = b.output(b.fc(x, 6, act="RELU", name="small"))                   # rank 6 needs 96 > 60 weights
    out, rep = run(g, energy=0.999)
    assert rows(rep)["small"]["status"] == "kept: would not shrink"
    assert structurally_equal(out, g) is None
    out, rep = run(conv_net(), fc="none", rule="rank", rank=[12, 16])     # full rank in both modes
    assert rows(rep)["conv"]["status"] == "kept: would not shrink" and rep["factorized"] <= 1


def test_skip_override_and_methods_none_do_not_transform():
    g = conv_net()
    out, rep = run(g, fc="none", rule="rank", rank=2, overrides={"conv|proj": {"skip": True}})
    assert structurally_equal(out, g) is None and rep["factorized"] == 0
    assert {r["status"] for r in rep["layers"]} == {"skipped"}
    out, rep = run(g, fc="none", conv="none")
    assert structurally_equal(out, g) is None and rep["layers"] == []


def test_fused_activation_stays_on_the_last_factor():
    out, _ = run(mlp(act="RELU"), fc="svd", conv="none", rule="rank", rank=3)
    fc1 = _layer_ops(out, "fc1")
    assert [op.attrs["fused_activation_function"] for op in fc1] == ["NONE", "RELU"]
    assert fc1[0].inputs[2:] == [] or fc1[0].inputs[2] is None          # the first factor has no bias
    out, _ = run(conv_net(act="RELU6"), fc="none", rule="rank", rank=[3, 4])
    assert [op.attrs["fused_activation_function"] for op in _layer_ops(out, "conv")] == ["NONE", "NONE", "RELU6"]
    out, _ = run(conv_net(act="RELU6"), fc="none", conv="cp", rule="rank", rank=3, cp_iters=5)
    assert [op.attrs["fused_activation_function"] for op in _layer_ops(out, "conv")] == ["NONE"] * 3 + ["RELU6"]


# ------------------------------------------------------------------------------------------------
# deployment: TFLite in LiteRT, int8 C bit-exact with the reference

def _mixed(seed=0):
    """conv 3x3 (Tucker) -> conv 3x3 stride 2 (CP) -> reshape -> FC (SVD) -> FC."""
    b = Builder(seed)
    x = b.input((1, 8, 8, 6))
    y = b.conv(x, 12, act="RELU", name="conv_a")
    y = b.conv(y, 10, stride=2, act="RELU6", name="conv_b")
    y = b.reshape(y, (1, 160))
    y = b.fc(y, 32, act="RELU", name="fc")
    return b.output(b.fc(y, 10, name="logits"))


def _factorize_mixed():
    g = _mixed()
    steps = [Step("factorize", dict(fc="svd", rule="rank", rank=4), {"conv_b": {"conv": "cp", "rank": 6},
                                                                      "conv_a": {"rank": [3, 5]}})]
    out, rep = Pipeline(steps).run(g.copy(), debug=True)
    assert rows(rep[0])["conv_b"]["method"] == "cp" and rep[0]["factorized"] == 4
    return g, out


def test_factorized_graph_verifies_and_runs_in_litert():
    g, out = _factorize_mixed()
    verify(out)
    xs = inputs(out, n=3)
    got = run_litert(write_tflite(out), xs)[0]
    np.testing.assert_allclose(got, interpret.run_batch(out, xs)[0], rtol=1e-4, atol=1e-4)


def test_int8_factorized_model_is_bit_exact_in_c():
    g, out = _factorize_mixed()
    xs = inputs(out, n=64, seed=2)
    q, _ = Pipeline([Step("quantize", {"dtype": "int8"})]).run(
        out, calibration=dataset_from({"x": xs[0]}), observe=lambda gg: observe(gg, xs))
    assert any(op.type == "DEPTHWISE_CONV_2D" for op in q.ops)
    check_c_exact(q, n=30, seed=3)


@pytest.mark.parametrize("recipe", ["factorize-svd", "factorize-tucker"])
def test_recipes_run_end_to_end(recipe):
    g = _mixed()
    x = inputs(g, n=32)[0]
    q, rep = Pipeline(load_recipe(recipe)).run(g.copy(), calibration=dataset_from({"x": x}),
                                               observe=lambda gg: observe(gg, [x]), debug=True)
    f = next(r for r in rep if r["name"] == "factorize")
    assert f["factorized"] >= 1 and f["fine_tuned"] is False
    assert all(q.tensors[op.inputs[1]].dtype == "int8" for op in q.ops if op.type in ("CONV_2D", "FULLY_CONNECTED"))


# ------------------------------------------------------------------------------------------------
# fine-tuning

def _xent(g, x, y):
    p = interpret.run_batch(g, [x])[0]
    return float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))


def test_fine_tuning_keeps_the_best_held_out_epoch():
    g = mlp(seed=2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 40)).astype(np.float32)
    y = interpret.run_batch(g, [x])[0].argmax(1)              # labels the original model gets right
    out, rep = run(g, train=dataset_from({"x": x, "y": y}), fc="svd", conv="none", rule="rank", rank=2,
                   epochs=3, lr=3e-3)
    plain, _ = run(g, fc="svd", conv="none", rule="rank", rank=2)
    assert rep["fine_tuned"] and rep["finetune_target"] == "labels" and rep["finetune_epochs"] == 3
    held = np.arange(300) % 10 == 9
    assert _xent(out, x[held], y[held]) <= _xent(plain, x[held], y[held]) + 1e-4
    assert rep["finetune_heldout_accuracy_after"] > rep["finetune_heldout_accuracy_before"]
    assert structurally_equal(out, plain, check_data=False) is None   # same structure, trained weights
    _, rep = run(g, train=dataset_from({"x": x}), fc="svd", conv="none", rule="rank", rank=2, epochs=1)
    assert rep["finetune_target"] == "distill"


# ------------------------------------------------------------------------------------------------
# options

@pytest.mark.parametrize("options,says", [
    (dict(fc="qr"), "fc must be"), (dict(conv="svd"), "conv must be"), (dict(rule="size"), "rule must be"),
    (dict(energy=0), "energy must be"), (dict(energy=1.5), "energy must be"),
    (dict(rule="params", params=2), "params must be"), (dict(rule="rank", rank=0), "rank must be"),
    (dict(rule="rank", rank=[1, 2, 3]), "rank must be"), (dict(budget="model"), "budget must be"),
    (dict(epochs=-1), "epochs must be"), (dict(lr=0), "lr must be"), (dict(skip="yes"), "skip must be"),
])
def test_bad_options_are_one_line_errors(options, says):
    with pytest.raises(EdgecError, match=says) as e:
        run(mlp(), **options)
    assert "\n" not in str(e.value) and str(e.value).startswith("factorize")


def test_option_errors_name_the_layer_or_the_override():
    with pytest.raises(EdgecError, match="override for logits.*energy"):
        run(mlp(), overrides={"logits": {"energy": 3}})
    with pytest.raises(EdgecError, match="fc1: rank .r_in, r_out. is for convolutions"):
        run(mlp(), fc="svd", conv="none", rule="rank", rank=[2, 3])
    q, _ = Pipeline([Step("quantize", {"dtype": "int8"})]).run(
        mlp(), calibration=dataset_from({"x": inputs(mlp(), 16)[0]}), observe=lambda gg: observe(gg, inputs(gg, 16)))
    with pytest.raises(EdgecError, match="FULLY_CONNECTED fc1 .*before quantize"):
        run(q)


@pytest.mark.parametrize("text,want", [
    ("svd:0.9", dict(fc="svd", conv="none", rule="energy", energy=0.9)),
    ("svd:rank=16", dict(fc="svd", conv="none", rule="rank", rank=16)),
    ("svd:params=0.5", dict(fc="svd", conv="none", rule="params", params=0.5)),
    ("tucker:0.5", dict(fc="none", conv="tucker", rule="energy", energy=0.5)),
    ("tucker:rank=8x16", dict(fc="none", conv="tucker", rule="rank", rank=[8, 16])),
    ("tucker:macs=0.6:layer", dict(fc="none", conv="tucker", rule="macs", macs=0.6, budget="layer")),
    ("cp:rank=8", dict(fc="none", conv="cp", rule="rank", rank=8)),
    ("svd+tucker:params=0.4", dict(fc="svd", conv="tucker", rule="params", params=0.4)),
    ("svd", dict(fc="svd", conv="none")),
])
def test_parse_factorize(text, want):
    assert parse_factorize(text) == want
    Pipeline([Step("factorize", want)])                        # valid pass options


@pytest.mark.parametrize("text,says", [
    ("qr:0.9", "unknown method 'qr'"), ("tucker+cp:0.5", "one of tucker and cp"), ("svd:size=3", "unknown rule"),
    ("svd:energy=abc", "needs a number"), ("svd:1.5", "energy must be"), ("svd:rank=0", "rank must be"),
    ("svd:0.9:layer", "only a params/macs budget takes a scope"), ("svd:params=0.5:model", "takes a scope"),
])
def test_parse_factorize_errors(text, says):
    with pytest.raises(EdgecError, match=says) as e:
        parse_factorize(text)
    assert str(e.value).startswith(f"--factorize {text!r}") and "\n" not in str(e.value)
