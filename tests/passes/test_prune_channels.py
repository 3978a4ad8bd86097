"""prune_channels: channel groups (residual ADDs, concatenations, depthwise chains, flatten -> FC,
global pooling, unfolded batch norm), the exactness of the cut (zeroing what is removed gives the
pruned graph's outputs), graph outputs kept, refusals, TFLite + LiteRT on the result, attention
heads (sliced, and on an axis as Keras' MultiHeadAttention converts), residual blocks/layers, and the
training paths (Taylor, fine-tuning, group lasso)."""
import numpy as np
import pytest

from edgec.backends.tflite import write_tflite
from edgec.errors import EdgecError
from edgec.ir import QuantParams, interpret, verify
from edgec.passes import Pipeline, Step
from edgec.profile.report import layer_rows
from edgec.passes.prune_channels import (attention_blocks, channel_groups, choose, cut_channels, cut_heads,
                                         head_axis_blocks, l1_importance, remove_block, removable_blocks)
from graphs import Builder, small_cnn


# ------------------------------------------------------------------------------------------ graphs

def residual():
    """stem conv -> [conv relu -> conv] + stem (ADD relu) -> global average pool -> reshape -> fc."""
    b = Builder(1)
    x = b.input((1, 8, 8, 3))
    s = b.conv(x, 8, act="RELU", name="stem")
    y = b.conv(s, 6, act="RELU", name="inner")
    y = b.conv(y, 8, name="outer")
    a = b.op("ADD", [s, y], (1, 8, 8, 8), "join", fused_activation_function="RELU")
    p = b.op("AVERAGE_POOL_2D", [a], (1, 1, 1, 8), "pool", padding="VALID", filter_height=8, filter_width=8,
             stride_h=8, stride_w=8, fused_activation_function="NONE")
    y = b.reshape(p, (1, 8))
    return b.output(b.fc(y, 5, name="head"))


def concat():
    """two convs concatenated on channels, a conv on top, MEAN over H, W, fc."""
    b = Builder(2)
    x = b.input((1, 6, 6, 2))
    l = b.conv(x, 4, act="RELU", name="left")
    r = b.conv(x, 6, act="RELU6", name="right")
    c = b.op("CONCATENATION", [l, r], (1, 6, 6, 10), "cat", axis=3)
    y = b.conv(c, 5, act="RELU", name="top")
    axes = b.g.const("axes", np.array([1, 2], np.int32))
    m = b.op("MEAN", [y, axes], (1, 5), "gap", keep_dims=False)
    return b.output(b.fc(m, 3, name="head"))


def depthwise_chain(mult=1):
    """conv -> MUL/ADD batch norm -> depthwise -> RELU -> depthwise (multiplier `mult`) -> 1x1 conv,
    with an FC reading the flattened NHWC map directly (no RESHAPE)."""
    b = Builder(3)
    x = b.input((1, 5, 5, 2))
    y = b.conv(x, 6, name="expand")
    y = b.op("MUL", [y, b.rand("bn_scale", (6,))], (1, 5, 5, 6), "bn_mul")
    y = b.op("ADD", [y, b.rand("bn_shift", (6,), 0.1)], (1, 5, 5, 6), "bn_add")
    y = b.op("DEPTHWISE_CONV_2D", [y, b.rand("dw1_w", (1, 3, 3, 6)), b.rand("dw1_b", (6,), 0.1)], (1, 5, 5, 6),
             "dw1", padding="SAME", stride_h=1, stride_w=1, depth_multiplier=1)
    y = b.op("RELU", [y], (1, 5, 5, 6), "relu")
    y = b.op("DEPTHWISE_CONV_2D", [y, b.rand("dw2_w", (1, 3, 3, 6 * mult)), b.rand("dw2_b", (6 * mult,), 0.1)],
             (1, 3, 3, 6 * mult), "dw2", padding="SAME", stride_h=2, stride_w=2, depth_multiplier=mult)
    y = b.conv(y, 4, k=1, act="RELU", name="project")
    w, bias = b.rand("fc_w", (3, 3 * 3 * 4)), b.rand("fc_b", (3,), 0.1)
    return b.output(b.op("FULLY_CONNECTED", [y, w, bias], (1, 3), "head", fused_activation_function="NONE"))


def attention(heads=2, d=4, t=4):
    """x [1, T, D] -> Q/K/V projections -> per-head slices, BATCH_MATMULs, scale, SOFTMAX ->
    concatenated heads -> output projection + x -> MEAN over T -> classifier."""
    b = Builder(4)
    dm = heads * d
    x = b.input((1, t, dm))

    def proj(name):
        return b.op("FULLY_CONNECTED", [x, b.rand(name + "_w", (dm, dm)), b.rand(name + "_b", (dm,), 0.1)],
                    (1, t, dm), name, fused_activation_function="NONE", keep_num_dims=True)

    q, k, v = proj("q"), proj("k"), proj("v")
    outs = []
    for h in range(heads):
        def piece(src):
            begin = b.g.const("begin", np.array([0, 0, h * d], np.int32))
            end = b.g.const("end", np.array([1, t, (h + 1) * d], np.int32))
            one = b.g.const("strides", np.array([1, 1, 1], np.int32))
            return b.op("STRIDED_SLICE", [src, begin, end, one], (1, t, d), f"{src}_h{h}")
        s = b.op("BATCH_MATMUL", [piece(q), piece(k)], (1, t, t), f"scores{h}", adj_y=True)
        s = b.op("MUL", [s, b.const("scale", np.float32(d ** -0.5).reshape(1))], (1, t, t), f"scaled{h}")
        p = b.op("SOFTMAX", [s], (1, t, t), f"attn{h}", beta=1.0)
        outs.append(b.op("BATCH_MATMUL", [p, piece(v)], (1, t, d), f"head{h}"))
    c = b.op("CONCATENATION", outs, (1, t, dm), "heads", axis=2)
    o = b.op("FULLY_CONNECTED", [c, b.rand("o_w", (dm, dm)), b.rand("o_b", (dm,), 0.1)], (1, t, dm), "o",
             fused_activation_function="NONE", keep_num_dims=True)
    r = b.op("ADD", [x, o], (1, t, dm), "residual")
    m = b.op("MEAN", [r, b.g.const("axis", np.array([1], np.int32))], (1, dm), "pool", keep_dims=False)
    return b.output(b.fc(m, 3, name="cls"))


# ----------------------------------------------------------------------------------------- helpers

def inputs(g, n=3, seed=5):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((n,) + g.tensors[g.inputs[0]].shape[1:]).astype(np.float32)]


def outputs(g, xs):
    return interpret.run_batch(g, xs)


def half(g, cg, scope="layer"):
    return choose([gr.units for gr in cg.groups], cg.count, l1_importance(g, cg), [1.0] * len(cg.groups), 0.5,
                  scope, 1)


def zeroed(g, cg, removed):
    """g with every removed channel's filters, biases and per-channel constants set to zero along
    the output channel (the cut's own slicing, inverted), so those channels carry exact zeros."""
    z = g.copy()
    comp = cg.comp
    for op in z.ops:
        out = op.outputs[0]
        if out not in comp:
            continue
        drop = (comp[out] >= 0) & removed[np.maximum(comp[out], 0)]
        if not drop.any():
            continue
        axes = {"CONV_2D": {1: 0, 2: 0}, "DEPTHWISE_CONV_2D": {1: 3, 2: 0}, "FULLY_CONNECTED": {1: 0, 2: 0}}
        targets = axes.get(op.type, {k: -1 for k, i in enumerate(op.inputs)
                                     if op.type in ("ADD", "SUB") and i is not None and z.tensors[i].is_const
                                     and z.tensors[i].shape[-1] == len(drop)})
        for k, axis in targets.items():
            t = z.tensors[op.inputs[k]]
            data = t.data.copy()
            idx = [slice(None)] * data.ndim
            idx[axis] = np.flatnonzero(drop)
            data[tuple(idx)] = 0
            op.inputs[k] = z.const(t.name + "_z", data)
    return z


def assert_exact_cut(g, removed=None, scope="layer"):
    cg = channel_groups(g)
    removed = half(g, cg, scope) if removed is None else removed
    assert removed.any()
    out = cut_channels(g, cg, removed)
    xs = inputs(g)
    for a, b in zip(outputs(zeroed(g, cg, removed), xs), outputs(out, xs)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    return cg, out


def widths(g):
    return {op.name: g.tensors[op.outputs[0]].shape[-1] for op in g.ops}


def run(g, **options):
    out, reports = Pipeline([Step("prune_channels", options)]).run(g.copy(), debug=True)
    return out, reports[0]


# --------------------------------------------------------------------------------- channel groups

def test_small_cnn_groups_and_flatten_to_fc_columns():
    g = small_cnn()
    cg = channel_groups(g)
    assert [(gr.name, len(gr.units)) for gr in cg.groups] == [("conv1", 8), ("conv2", 12)]
    assert cg.refused == [{"group": "logits", "channels": 10, "reason": "SOFTMAX probs is not followed"}]
    cg, out = assert_exact_cut(g)
    assert widths(out)["conv2"] == 6 and out.tensors[out.ops[3].inputs[1]].shape == (10, 4 * 4 * 6)
    # the FC keeps the strided columns j with j % 12 a kept channel of conv2
    kept = np.flatnonzero(~half(g, cg)[cg.comp["conv2"]])
    cols = np.flatnonzero(np.isin(np.arange(192) % 12, kept))
    np.testing.assert_array_equal(out.tensors[out.ops[3].inputs[1]].data, g.tensors["logits_w"].data[:, cols])


def test_residual_add_ties_both_producers():
    g = residual()
    cg = channel_groups(g)
    names = {gr.name: gr.producers for gr in cg.groups}
    assert names == {"stem": ["stem", "outer"], "inner": ["inner"]}
    _, out = assert_exact_cut(g)
    w = widths(out)
    assert w["stem"] == w["outer"] == w["join"] == 4 and w["inner"] == 3
    assert out.tensors[out.ops[-2].outputs[0]].shape == (1, 4)       # the reshape follows


def test_concat_maps_output_channels_to_each_input():
    g = concat()
    cg = channel_groups(g)
    assert [(gr.name, len(gr.units)) for gr in cg.groups] == [("left", 4), ("right", 6), ("top", 5)]
    _, out = assert_exact_cut(g)
    w = widths(out)
    assert (w["left"], w["right"], w["cat"], w["top"]) == (2, 3, 5, 2)
    assert out.tensors[out.ops[3].inputs[1]].shape == (2, 3, 3, 5)  # top reads the narrower concat


@pytest.mark.parametrize("mult", [1, 2])
def test_depthwise_chain_follows_its_input_and_slices_batchnorm(mult):
    g = depthwise_chain(mult)
    cg = channel_groups(g)
    by = {gr.name: gr.producers for gr in cg.groups}
    assert by["expand"] == ["expand", "dw1", "dw2"] and "project" in by
    _, out = assert_exact_cut(g)
    w = widths(out)
    assert w["expand"] == w["bn_add"] == w["dw1"] == 3 and w["dw2"] == 3 * mult and w["project"] == 2
    assert out.tensors[next(o for o in out.ops if o.name == "head").inputs[1]].shape == (3, 3 * 3 * 2)


def test_global_ranking_and_per_layer_override():
    g = residual()
    assert_exact_cut(g, scope="global")
    out, rep = run(g, amount=0.5, scope="global")
    assert rep["removed"] == 7                                      # half of 8 + 6 channels
    out, rep = run(g, amount=0.5)
    assert rep["channels"]["inner"] == [6, 3] and rep["channels"]["stem"] == [8, 4]
    steps = [Step("prune_channels", {"amount": 0.5}, {"^inner$": {"amount": 0.0}})]
    out, reps = Pipeline(steps).run(g.copy(), debug=True)
    assert reps[0]["channels"]["inner"] == [6, 6] and reps[0]["channels"]["stem"] == [8, 4]


def test_macs_target_is_met_and_reported():
    g = depthwise_chain()
    out, rep = run(g, amount=0.4, measure="macs")
    assert rep["macs_after"] <= 0.6 * rep["macs_before"]
    assert rep["params_after"] < rep["params_before"] and rep["bytes_after"] < rep["bytes_before"]
    assert rep["macs_after"] == sum(r["macs"] for r in layer_rows(out))
    less, rep_less = run(g, amount=0.2, measure="macs")
    assert 0.6 * rep["macs_before"] < rep_less["macs_after"] <= 0.8 * rep["macs_before"]
    verify(out)


def test_graph_outputs_are_never_pruned():
    b = Builder(6)
    x = b.input((1, 6, 6, 2))
    y = b.conv(x, 6, act="RELU", name="seen")
    z = b.conv(y, 4, act="RELU", name="hidden")
    g = b.output(b.conv(z, 3, name="last"), y)
    cg = channel_groups(g)
    assert [gr.name for gr in cg.groups] == ["hidden"]
    assert {r["group"]: r["reason"] for r in cg.refused} == {"seen": "graph output", "last": "graph output"}
    out, _ = run(g, amount=0.5)
    assert widths(out) == {"seen": 6, "hidden": 2, "last": 3}


def test_unfollowed_reshape_leaves_the_group_whole_and_reports_it():
    b = Builder(7)
    x = b.input((1, 4, 4, 2))
    y = b.conv(x, 8, act="RELU", name="split_me")
    y = b.reshape(y, (1, 4, 4, 2, 4))                 # splits the channel axis
    y = b.reshape(y, (1, 128))
    z = b.conv(x, 6, act="RELU", name="fine")
    z = b.reshape(z, (1, 96))
    c = b.op("CONCATENATION", [y, z], (1, 224), "cat", axis=1)
    g = b.output(b.fc(c, 3, name="head"))
    cg = channel_groups(g)
    assert [gr.name for gr in cg.groups] == ["fine"]
    assert cg.refused[0]["group"] == "split_me" and "changes the channel axis (8 -> 4)" in cg.refused[0]["reason"]
    out, rep = run(g, amount=0.5)
    assert widths(out)["split_me"] == 8 and widths(out)["fine"] == 3 and rep["refused"] == cg.refused
    xs = inputs(g)
    assert outputs(out, xs)[0].shape == (3, 3)


def test_mean_compensation_makes_cutting_constant_channels_exact():
    """Channels whose filter is zero but whose bias is not carry a constant: replaced by their mean
    in the consumers' biases, cutting them changes nothing (a 1x1 consumer has no border effects)."""
    b = Builder(10)
    x = b.input((1, 5, 5, 2))
    w = b.rng.standard_normal((6, 3, 3, 2)).astype(np.float32)
    w[[1, 4]] = 0.0
    y = b.op("CONV_2D", [x, b.const("c1_w", w), b.const("c1_b", [0.1, 0.7, 0.2, 0.3, 1.5, 0.1])], (1, 5, 5, 6),
             "c1", padding="SAME", stride_h=1, stride_w=1, fused_activation_function="RELU")
    y = b.conv(y, 4, k=1, act="RELU", name="c2")
    g = b.output(b.conv(y, 3, k=1, name="c3"))
    xs = inputs(g, 8)
    only = {"^c2$": {"amount": 0.0}}
    outs = {}
    for comp in (True, False):
        steps = [Step("prune_channels", {"amount": 0.34, "compensate": comp}, only)]
        out, (rep,) = Pipeline(steps).run(g.copy(), calibration=xs, debug=True)
        assert rep["channels"]["c1"] == [6, 4] and rep["compensated"] is comp
        outs[comp] = outputs(out, xs)[0]
    want = outputs(g, xs)[0]
    np.testing.assert_allclose(outs[True], want, rtol=1e-5, atol=1e-5)
    assert np.abs(outs[False] - want).max() > 0.1


def test_pruned_graph_runs_in_litert_like_the_interpreter():
    from edgec.run.litert import run_litert
    for g in (residual(), concat(), depthwise_chain(2)):
        out, _ = run(g, amount=0.5)
        model = write_tflite(out)
        x = inputs(g, 1)[0]
        np.testing.assert_allclose(run_litert(model, [x])[0], interpret.run(out, [x])[0], rtol=1e-4, atol=1e-5)
        assert len(model) < len(write_tflite(g))


def test_prune_then_quantize_in_one_pipeline():
    """Pruning composes with quantization: the pruned graph quantizes to int8 and LiteRT runs it."""
    from edgec.calibrate import observe
    from edgec.data import Dataset
    from edgec.run.litert import run_litert
    g = residual()
    xs = inputs(g, 20)
    steps = [Step("prune_channels", {"amount": 0.5}), Step("quantize", {"dtype": "int8"})]
    q, reps = Pipeline(steps).run(g.copy(), calibration=Dataset(xs), observe=lambda h: observe(h, xs), debug=True)
    assert reps[0]["channels"]["stem"] == [8, 4] and q.tensors[q.inputs[0]].dtype == "int8"
    x = q.tensors[q.inputs[0]].quant.quantize(xs[0][:1], "int8")
    np.testing.assert_array_equal(run_litert(write_tflite(q), [x])[0], interpret.run(q, [x])[0])


# --------------------------------------------------------------------------------------- refusals

def one_line(exc):
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("prune_channels")
    return msg


@pytest.mark.parametrize("options, words", [
    ({"amount": 1.5}, "fraction of channels"),
    ({"amount": 0.4, "measure": "macs", "what": "heads"}, "no attention heads"),
    ({"what": "filters"}, "what 'filters'"),
    ({"what": "layers", "amount": 0.5}, "integer >= 1"),
    ({"importance": "l2"}, "importance 'l2'"),
    ({"importance": "taylor"}, "taylor importance needs training data"),
    ({"epochs": 2}, "fine-tuning needs training data"),
    ({"lasso": 1e-3, "epochs": 0}, "lasso trains before the cut"),
    ({"amount": 0.99, "measure": "macs"}, "cannot remove 99% of the MACs"),
    ({"schedule": "gradual", "epochs": 0}, "the gradual schedule trains before the cut"),
    ({"schedule": "smooth"}, "schedule 'smooth'"),
    ({"what": "layers", "amount": 1, "schedule": "gradual"}, "layers are removed one-shot"),
])
def test_bad_options_are_one_line_errors(options, words):
    with pytest.raises(EdgecError) as e:
        run(small_cnn(), **options)
    assert words in one_line(e)


def test_quantized_graph_and_graph_without_groups_are_refused():
    g = small_cnn()
    g.tensors["conv1_w"].quant = QuantParams(0.1, 0)
    with pytest.raises(EdgecError) as e:
        run(g)
    assert "before quantize" in one_line(e)
    b = Builder()
    x = b.input((1, 4))
    g = b.output(b.fc(x, 3, name="only"))
    with pytest.raises(EdgecError) as e:
        run(g)
    assert "no prunable channel group" in one_line(e) and "graph output" in str(e.value)


# --------------------------------------------------------------------------------- heads, layers

def test_attention_heads_are_recognized_and_removed_exactly():
    g = attention(heads=3)
    blocks = attention_blocks(g)
    assert len(blocks) == 1 and blocks[0].projections == ["q", "k", "v"] and len(blocks[0].heads) == 3
    out, rep = run(g, what="heads", amount=0.34)
    assert rep["groups"] == [{"name": "heads", "heads_before": 3, "heads_after": 2}]
    assert widths(out)["q"] == widths(out)["v"] == 8 and widths(out)["heads"] == 8
    assert sum(o.type == "SOFTMAX" for o in out.ops) == 2 and rep["macs_after"] < rep["macs_before"]
    # exactness: a head whose value rows are zero contributes exact zeros, as if it were removed
    cg = channel_groups(g, frozenset(b.output for b in blocks))
    removed = np.array([False, True, False])
    z = g.copy()
    for name in ("v_w", "v_b"):
        z.tensors[name].data = z.tensors[name].data.copy()
        z.tensors[name].data[4:8] = 0
    cut = cut_heads(g, blocks, cg, removed)
    xs = inputs(g)
    np.testing.assert_allclose(outputs(cut, xs)[0], outputs(z, xs)[0], rtol=1e-5, atol=1e-5)
    from edgec.run.litert import run_litert
    np.testing.assert_allclose(run_litert(write_tflite(cut), [xs[0][:1]])[0], interpret.run(cut, [xs[0][:1]])[0],
                               rtol=1e-4, atol=1e-5)


def test_heads_refused_when_the_heads_output_cannot_narrow():
    g = attention()
    res = next(o for o in g.ops if o.name == "residual")
    res.inputs[1] = "heads"                         # no output projection: heads join the residual stream
    g.remove_dead_ops()
    with pytest.raises(EdgecError) as e:
        run(g, what="heads", amount=0.5)
    assert "attention block heads cannot be narrowed (graph input)" in one_line(e)
    g = attention()
    g.outputs.append("q")                            # a projection read outside the heads
    with pytest.raises(EdgecError) as e:
        run(g, what="heads", amount=0.5)
    assert "no attention heads recognized" in one_line(e)


def test_residual_block_and_same_shape_layers_are_removable():
    g = residual()
    cands = removable_blocks(g)
    assert [(c.kind, c.name, c.skip) for c in cands] == [("residual block", "join", "stem")]
    out = remove_block(g, cands[0])
    assert [o.type for o in out.ops] == ["CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED"]
    xs = inputs(g)   # the join's RELU is idempotent after the stem's fused RELU: the branch is dropped exactly
    z = g.copy()
    for name in ("outer_w", "outer_b"):
        z.tensors[name].data = np.zeros_like(z.tensors[name].data)
    np.testing.assert_allclose(outputs(out, xs)[0], outputs(z, xs)[0], rtol=1e-5, atol=1e-6)
    kinds = [(c.kind, c.name) for c in removable_blocks(depthwise_chain())]
    assert kinds == [("layer", "dw1")]


def test_residual_join_activation_is_kept_when_the_skip_is_not_activated():
    b = Builder(8)
    x = b.input((1, 4, 4, 3))
    s = b.conv(x, 4, name="stem")                        # no activation: relu(stem + 0) != stem
    y = b.conv(b.conv(s, 4, act="RELU", name="a"), 4, name="c")
    a = b.op("ADD", [y, s], (1, 4, 4, 4), "join", fused_activation_function="RELU6")
    g = b.output(b.conv(a, 2, name="out"))
    cands = removable_blocks(g)
    assert [(c.kind, c.name) for c in cands] == [("layer", "a"), ("layer", "c"), ("residual block", "join")]
    out = remove_block(g, cands[2])
    assert [o.type for o in out.ops] == ["CONV_2D", "RELU6", "CONV_2D"]


# ------------------------------------------------------------------------------- trained paths

@pytest.fixture(scope="module")
def digits_model():
    """A digits CNN trained briefly through the IR trainer, and its training / test data."""
    import os
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "train"))
    from digits import digits, digits_cnn
    from edgec.data import dataset_from
    from edgec.train import build_model, export, fit
    train, _, test = digits()
    m = build_model(digits_cnn())
    fit(m, train, epochs=3, batch_size=64, lr=1e-2, seed=0)
    return export(m), dataset_from(train), dataset_from(test)


def test_taylor_ranks_a_dead_filter_lowest_where_l1_keeps_it(digits_model):
    g, train, _ = digits_model
    g = g.copy()
    w, b = g.tensors["c1_w"].data.copy(), g.tensors["c1_b"].data.copy()
    w[3] *= 10.0                       # the largest filter by far ...
    b[3] = -1e3                        # ... whose ReLU output is always 0: no effect on the loss
    g.tensors["c1_w"].data, g.tensors["c1_b"].data = w, b
    only = {"^conv2$": {"amount": 0.0}}
    steps = [Step("prune_channels", {"amount": 0.125, "epochs": 0, "importance": imp}, only) for imp in ("l1", "taylor")]
    (l1, _), (taylor, _) = (Pipeline([s]).run(g.copy(), train_data=train) for s in steps)
    kept = {k: g_.tensors["c1_b"].data for k, g_ in (("l1", l1), ("taylor", taylor))}
    assert -1e3 in kept["l1"] and -1e3 not in kept["taylor"]


def test_lasso_then_cut_then_finetune(digits_model):
    from edgec.train import accuracy, build_model
    g, train, test = digits_model
    base = accuracy(build_model(g), test)
    _, (plain,) = Pipeline([Step("prune_channels", {"amount": 0.5, "epochs": 0})]).run(g.copy())
    opts = {"amount": 0.5, "epochs": 3, "lasso": 3e-2, "lr": 1e-2, "batch_size": 64}
    out, (rep,) = Pipeline([Step("prune_channels", opts)]).run(g.copy(), train_data=train, debug=True)
    assert rep["channels"] == {"conv1": [8, 4], "conv2": [16, 8], "logits": [10, 10]}
    # group lasso shrinks whole filters: the half that is cut holds less of the filters' norm
    assert rep["removed_norm_share"] < 0.9 * plain["removed_norm_share"], (rep, plain)
    assert len(rep["lasso_loss"]) == 3 and rep["finetune_epochs"] == 3
    assert rep["quality_after"] >= rep["quality_pruned"]
    assert accuracy(build_model(out), test) > base - 0.04


def test_gradual_schedule_fades_the_chosen_channels_to_exact_zero(digits_model):
    from edgec.passes import PassContext
    from edgec.passes.prune_channels import _data, _decay_channels, _train
    g, train, _ = digits_model
    cg = channel_groups(g)
    removed = half(g, cg)
    decay = _decay_channels(g, cg, removed)
    assert set(decay) == {"c1_w", "c1_b", "c2_w", "c2_b"} and len(decay["c2_w"][1]) == 8
    ctx = PassContext(options={"distill": False}, train_data=train.head(300))
    opts = {"batch_size": 64, "lr": 3e-3, "seed": 0, "lasso": 0.0}
    faded, hist = _train(g, _data(g, ctx), opts, 1, ctx, decay=decay)
    for name, (axis, idx) in decay.items():
        data = np.moveaxis(faded.tensors[name].data, axis, 0)
        assert not data[idx].any() and data[np.setdiff1d(np.arange(len(data)), idx)].any()
    xs = [train.xs[0][:5]]
    np.testing.assert_allclose(outputs(cut_channels(faded, cg, removed), xs)[0], outputs(faded, xs)[0],
                               rtol=1e-5, atol=1e-6)


def test_distill_trains_on_the_unpruned_models_outputs_and_validates_on_labels(digits_model):
    from edgec.passes import PassContext
    from edgec.passes.prune_channels import _data
    g, train, _ = digits_model
    d = _data(g, PassContext(options={"distill": True}, train_data=train.head(100)))
    assert d.train.y.dtype == np.float32 and d.train.y.shape == (90, 10)
    np.testing.assert_allclose(d.train.y.sum(axis=1), 1.0, rtol=1e-5)
    assert d.val.y.dtype.kind == "i" and d.labels_given


def test_layers_drop_the_block_that_costs_least():
    """Two same-shape layers: an identity 1x1 conv on ReLU outputs (free to drop) and a random one;
    the unpruned model's own outputs are the targets (no labels)."""
    from edgec.data import dataset_from
    b = Builder(9)
    x = b.input((1, 4, 4, 3))
    y = b.conv(x, 4, act="RELU", name="stem")
    eye = b.const("eye", np.eye(4, dtype=np.float32).reshape(4, 1, 1, 4))
    y = b.op("CONV_2D", [y, eye, b.const("zero", np.zeros(4))], (1, 4, 4, 4), "identity", padding="SAME",
             stride_h=1, stride_w=1, fused_activation_function="RELU")
    y = b.conv(y, 4, act="RELU", name="mixer")
    g = b.output(b.fc(b.reshape(y, (1, 64)), 3, name="head"))
    xs = np.random.default_rng(0).standard_normal((60, 4, 4, 3)).astype(np.float32)
    out, (rep,) = Pipeline([Step("prune_channels", {"what": "layers", "amount": 1, "epochs": 0})]).run(
        g.copy(), train_data=dataset_from({"x": xs}), debug=True)
    assert [r["name"] for r in rep["ranking"]] == ["identity", "mixer"] and rep["ranking"][0]["quality_without"] == 0
    assert rep["blocks"] == [{"kind": "layer", "name": "identity", "quality_without": 0.0}]
    assert [o.name for o in out.ops if o.type == "CONV_2D"] == ["stem", "mixer"]
    with pytest.raises(EdgecError) as e:
        run(g, what="layers", amount=3, epochs=0)
    assert "3 requested, the model has 2" in one_line(e)


# ------------------------------------------------------------------- heads on an axis (Keras MHA)

def keras_attention(heads=4, key_dim=4, value_dim=None, t=8, dm=16, proj="fc", bias_add=True, seed=0):
    """What TF's converter makes of x [1, T, D] -> keras MultiHeadAttention(x, x) -> average over T ->
    Dense: Q/K/V projections (FULLY_CONNECTED, or BATCH_MATMUL with a constant rhs) RESHAPEd into
    [1, T, heads, size] (+ a per-head bias ADD of [heads, size], or the bias in the FULLY_CONNECTED),
    TRANSPOSEd to [1, heads, T, size] (keys [1, heads, size, T]), scores, scale, SOFTMAX, context,
    TRANSPOSEd back and RESHAPEd into [1, T, heads * size] for the output projection."""
    vd = value_dim or key_dim
    b = Builder(seed)
    x = b.input((1, t, dm))

    def project(name, size, perm):
        c = heads * size
        fc_bias = [] if bias_add else [b.rand(name + "_fc_b", (c,), 0.2)]
        if proj == "fc":
            y = b.op("FULLY_CONNECTED", [x, b.rand(name + "_w", (c, dm))] + fc_bias, (1, t, c), name,
                     fused_activation_function="NONE", keep_num_dims=True)
        else:
            y = b.op("BATCH_MATMUL", [x, b.rand(name + "_w", (dm, c))], (1, t, c), name)
        y = b.reshape(y, (1, t, heads, size), name + "_split")
        if bias_add:
            y = b.op("ADD", [y, b.rand(name + "_b", (heads, size), 0.2)], (1, t, heads, size), name + "_bias")
        shape = tuple((1, t, heads, size)[p] for p in perm)
        return b.op("TRANSPOSE", [y, b.g.const("perm", np.array(perm, np.int32))], shape, name + "_heads")

    q = project("query", key_dim, [0, 2, 1, 3])
    k = project("key", key_dim, [0, 2, 3, 1])
    s = b.op("BATCH_MATMUL", [q, k], (1, heads, t, t), "scores")
    s = b.op("MUL", [s, b.const("scale", np.float32(key_dim ** -0.5))], (1, heads, t, t), "scaled")
    p = b.op("SOFTMAX", [s], (1, heads, t, t), "attn", beta=1.0)
    v = project("value", vd, [0, 2, 1, 3])
    a = b.op("BATCH_MATMUL", [p, v], (1, heads, t, vd), "context")
    a = b.op("TRANSPOSE", [a, b.g.const("perm", np.array([0, 2, 1, 3], np.int32))], (1, t, heads, vd), "context_t")
    a = b.reshape(a, (1, t, heads * vd), "merge")
    o = b.op("FULLY_CONNECTED", [a, b.rand("out_w", (dm, heads * vd)), b.rand("out_b", (dm,), 0.1)], (1, t, dm),
             "attention_output", fused_activation_function="NONE", keep_num_dims=True)
    m = b.op("MEAN", [o, b.g.const("axis", np.array([1], np.int32))], (1, dm), "pool", keep_dims=False)
    return b.output(b.fc(m, 5, name="cls"))


def _head_blocks(g):
    blocks = head_axis_blocks(g)
    return blocks, channel_groups(g, frozenset(b.output for b in blocks))


def _zero_heads(g, heads, count, parts=("query", "key", "value", "out")):
    """g with the given heads' projection rows (and per-head biases) of `parts` and, with "out", their
    output-projection columns set to zero."""
    z = g.copy()
    readers = {op.inputs[1]: op for op in z.ops if len(op.inputs) > 1}
    for name, t in z.tensors.items():
        if name.split("_")[0] not in parts or not t.is_const or t.dtype != "float32":
            continue
        data = t.data.copy()
        if name.endswith("_b") and data.ndim == 2:           # a per-head bias [heads, size]
            data[list(heads)] = 0
        elif name.endswith(("_w", "_fc_b")):
            # output columns of a BATCH_MATMUL rhs and of the output projection, else rows
            axis = 1 if name == "out_w" or readers.get(name) and readers[name].type == "BATCH_MATMUL" else 0
            size = data.shape[axis] // count
            idx = np.concatenate([np.arange(h * size, (h + 1) * size) for h in heads])
            np.moveaxis(data, axis, 0)[idx] = 0
        t.data = data
    return z


def _heads_kept(out, g, op_name, weight, size, axis):
    """The heads of g whose slices of `weight` (`size` entries along `axis`) op_name of the pruned
    graph still holds."""
    new = np.moveaxis(out.tensors[next(o for o in out.ops if o.name == op_name).inputs[1]].data, axis, 0)
    old = np.moveaxis(g.tensors[weight].data, axis, 0)
    have = [new[k * size:(k + 1) * size] for k in range(len(new) // size)]
    return [h for h in range(len(old) // size) if any(np.array_equal(old[h * size:(h + 1) * size], x) for x in have)]


@pytest.mark.parametrize("kw", [{}, {"value_dim": 3}, {"proj": "bmm"}, {"bias_add": False, "heads": 3}])
def test_head_axis_attention_is_recognized_and_cut_exactly(kw):
    g = keras_attention(**kw)
    heads = kw.get("heads", 4)
    assert attention_blocks(g) == []
    blocks, cg = _head_blocks(g)
    assert len(blocks) == 1
    b = blocks[0]
    assert (b.name, b.output, b.count, sorted(b.projections)) == ("merge", "merge", heads, ["key", "query", "value"])
    assert b.axes["query_heads"] == 1 and b.axes["key_heads"] == 1 and b.axes["context_t"] == 2
    removed = np.zeros(heads, bool)
    removed[[1, heads - 1]] = True
    cut = cut_heads(g, blocks, cg, removed)          # verify()s the result
    xs = inputs(g, 4)
    want = outputs(cut, xs)[0]
    gone = np.flatnonzero(removed)
    # the removed heads' output-projection columns at zero give the pruned graph's outputs exactly,
    # whatever their Q/K/V; so do zero value rows and biases (the heads then output exact zeros)
    for parts in (("query", "key", "value", "out"), ("out",), ("value",)):
        np.testing.assert_allclose(outputs(_zero_heads(g, gone, heads, parts), xs)[0], want, rtol=1e-5, atol=1e-6)
    assert np.abs(outputs(g, xs)[0] - want).max() > 1e-3
    kept = heads - 2
    vd = kw.get("value_dim", 4)
    assert cut.tensors["scores"].shape == (1, kept, 8, 8) and cut.tensors["merge"].shape == (1, 8, kept * vd)
    assert cut.tensors["key_heads"].shape == (1, kept, 4, 8)
    # per head: Q and K rows of 16 weights and a bias each (key_dim 4), V rows (value_dim) likewise,
    # its output-projection columns; MACs of those, of its scores, scale, context and bias ADDs
    from edgec.passes.prune_channels import _stats
    before, after = _stats(g), _stats(cut)
    assert before["params"] - after["params"] == 2 * (2 * 4 * 17 + vd * 17 + 16 * vd)
    adds = 8 * (4 + 4 + vd) if kw.get("bias_add", True) else 0
    per_head = 2 * 8 * 16 * 4 + 8 * 8 * 4 + 8 * 8 + 8 * 8 * vd + 2 * 8 * 16 * vd + adds
    assert before["macs"] - after["macs"] == 2 * per_head
    from edgec.run.litert import run_litert
    np.testing.assert_allclose(run_litert(write_tflite(cut), [xs[0]])[0], want, rtol=1e-4, atol=1e-5)


def test_heads_pass_on_head_axis_attention_reports_and_ranks_by_l1():
    g = keras_attention()
    for h, scale in ((0, 0.05), (2, 0.1)):          # heads 0 and 2 carry the smallest weights
        for name in ("query_w", "key_w", "value_w"):
            g.tensors[name].data[h * 4:(h + 1) * 4] *= scale
        g.tensors["out_w"].data[:, h * 4:(h + 1) * 4] *= scale
    out, rep = run(g, what="heads", amount=0.5)
    assert rep["groups"] == [{"name": "merge", "heads_before": 4, "heads_after": 2}] and not rep["compensated"]
    assert rep["params_after"] < rep["params_before"] and rep["macs_after"] < 0.6 * rep["macs_before"]
    assert _heads_kept(out, g, "attention_output", "out_w", 4, 1) == [1, 3]
    out, rep = run(g, what="heads", amount=0.3, measure="macs")
    assert rep["groups"][0]["heads_after"] == 2 and rep["macs_after"] <= 0.7 * rep["macs_before"]


def test_head_axis_mean_compensation_folds_removed_heads_into_the_output_bias():
    """With data, a removed head's mean output (over the samples) goes into the output projection's
    bias: exactly the graph with its output columns zeroed and W[:, head] @ mean added to the bias."""
    from edgec.data import dataset_from
    from edgec.passes.prune_channels import activation_means
    g = keras_attention(value_dim=3)
    xs = np.random.default_rng(2).standard_normal((40, 8, 16)).astype(np.float32)
    out, (rep,) = Pipeline([Step("prune_channels", {"what": "heads", "amount": 0.5, "epochs": 0})]).run(
        g.copy(), train_data=dataset_from({"x": xs}), debug=True)
    assert rep["compensated"]
    removed = ~np.isin(np.arange(4), _heads_kept(out, g, "attention_output", "out_w", 3, 1))
    gone = np.flatnonzero(removed)
    assert len(gone) == 2
    mean = activation_means(g, [xs[:32]], {"merge"})["merge"].reshape(-1, 12).mean(axis=0)
    z = _zero_heads(g, gone, 4, ("out",))
    cols = np.concatenate([np.arange(h * 3, (h + 1) * 3) for h in gone])
    folded = g.tensors["out_b"].data + g.tensors["out_w"].data[:, cols] @ mean[cols]
    z.tensors["out_b"].data = folded.astype(np.float32)
    np.testing.assert_allclose(outputs(out, [xs[32:]])[0], outputs(z, [xs[32:]])[0], rtol=1e-5, atol=1e-5)
    # on the samples it was taken from, the mean is the best constant: closer than dropping the heads
    blocks, cg = _head_blocks(g)
    plain = cut_heads(g, blocks, cg, removed)
    err = [np.abs(outputs(m, [xs[:32]])[0] - outputs(g, [xs[:32]])[0]).mean() for m in (out, plain)]
    assert err[0] < err[1], err


def test_head_axis_refused_when_a_head_tensor_leaves_or_heads_mix():
    g = keras_attention()
    g.outputs.append("attn")                   # the attention weights are a model output
    assert head_axis_blocks(g) == []
    with pytest.raises(EdgecError) as e:
        run(g, what="heads", amount=0.5)
    assert "no attention heads recognized" in one_line(e)
    g = keras_attention()                      # merging [1, heads, T, size] without the transpose back
    merge = next(o for o in g.ops if o.name == "merge")
    merge.inputs[0] = "context"
    g.remove_dead_ops()
    assert head_axis_blocks(verify(g)) == []
    g = keras_attention()                      # softmax over the heads (a side output)
    from edgec.ir import Op, Tensor
    from edgec.ir.ops import default_attrs
    at = next(k for k, o in enumerate(g.ops) if o.name == "scaled") + 1
    g.add_tensor(Tensor("scaled_t", (1, 8, 8, 4)))
    g.add_tensor(Tensor("attn_t", (1, 8, 8, 4)))
    g.ops[at:at] = [Op("TRANSPOSE", ["scaled", g.const("perm", np.array([0, 2, 3, 1], np.int32))], ["scaled_t"],
                       {}, name="heads_last"),
                    Op("SOFTMAX", ["scaled_t"], ["attn_t"], default_attrs("SOFTMAX", beta=1.0), name="over_heads")]
    g.outputs.append("attn_t")
    assert head_axis_blocks(verify(g)) == []
    g = keras_attention()                      # the heads' output feeds the graph output directly
    g.outputs = ["merge"]
    g.remove_dead_ops()
    with pytest.raises(EdgecError) as e:
        run(g, what="heads", amount=0.5)
    assert "attention block merge cannot be narrowed (graph output)" in one_line(e)


def test_head_axis_taylor_removes_the_head_the_output_ignores():
    """A head whose output columns are zero does not matter (Taylor score 0) though its weights are
    the largest (L1 would keep it)."""
    from edgec.data import dataset_from
    g = keras_attention()
    for name in ("query_w", "key_w", "value_w"):
        g.tensors[name].data[4:8] *= 20
    g.tensors["out_w"].data[:, 4:8] = 0
    xs = np.random.default_rng(4).standard_normal((64, 8, 16)).astype(np.float32)
    data = dataset_from({"x": xs})
    kept = {}
    for imp in ("l1", "taylor"):
        out, (rep,) = Pipeline([Step("prune_channels", {"what": "heads", "amount": 0.25, "epochs": 0,
                                                        "importance": imp})]).run(g.copy(), train_data=data)
        kept[imp] = _heads_kept(out, g, "query", "query_w", 4, 0)
    assert 1 in kept["l1"] and len(kept["taylor"]) == 3 and 1 not in kept["taylor"]


def test_head_axis_gradual_fades_the_heads_to_zero_then_cuts_exactly():
    from edgec.data import dataset_from
    from edgec.passes import PassContext
    from edgec.passes.prune_channels import _data, _decay_heads, _train
    g = keras_attention(value_dim=3)
    blocks, cg = _head_blocks(g)
    removed = np.array([False, True, True, False])
    decay = _decay_heads(g, blocks, removed)
    assert {n: (a, i.tolist()) for n, (a, i) in decay.items()} == {
        "query_w": (0, list(range(4, 12))), "key_w": (0, list(range(4, 12))), "value_w": (0, list(range(3, 9))),
        "query_b": (0, [1, 2]), "key_b": (0, [1, 2]), "value_b": (0, [1, 2])}
    xs = np.random.default_rng(6).standard_normal((100, 8, 16)).astype(np.float32)
    ctx = PassContext(options={"distill": False}, train_data=dataset_from({"x": xs}))
    opts = {"batch_size": 32, "lr": 3e-3, "seed": 0, "lasso": 0.0}
    faded, _ = _train(g, _data(g, ctx), opts, 1, ctx, decay=decay)
    for name, (axis, idx) in decay.items():
        assert not np.moveaxis(faded.tensors[name].data, axis, 0)[idx].any()
    np.testing.assert_allclose(outputs(cut_heads(faded, blocks, cg, removed), [xs[:5]])[0],
                               outputs(faded, [xs[:5]])[0], rtol=1e-5, atol=1e-6)


def test_keras_multi_head_attention_heads_pruned_and_run_in_litert():
    """The real thing: keras MultiHeadAttention converted by TF's TFLite converter (from_keras_model:
    per-head bias ADDs kept), imported; half the heads cut exactly, LiteRT runs the result."""
    import keras
    import tensorflow as tf
    from edgec.frontend.tflite import import_tflite
    from edgec.run.litert import run_litert
    keras.utils.set_random_seed(1)
    x = keras.Input((8, 16))
    mha = keras.layers.MultiHeadAttention(num_heads=4, key_dim=4, value_dim=3)
    model = keras.Model(x, keras.layers.Dense(5)(keras.layers.GlobalAveragePooling1D()(mha(x, x))))
    rng = np.random.default_rng(1)
    for w in mha.weights:
        if "bias" in w.path:
            w.assign(rng.normal(0.0, 0.2, w.shape).astype(np.float32))
    import contextlib
    import io
    with contextlib.redirect_stdout(io.StringIO()):
        g = import_tflite(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    assert {"TRANSPOSE", "ADD"} <= {o.type for o in g.ops}
    blocks, cg = _head_blocks(g)
    assert len(blocks) == 1 and blocks[0].count == 4 and len(blocks[0].projections) == 3
    out, rep = run(g, what="heads", amount=0.5)
    assert rep["groups"][0]["heads_after"] == 2 and rep["params_after"] < rep["params_before"]
    xs = inputs(g, 4)
    np.testing.assert_allclose(run_litert(write_tflite(out), xs)[0], outputs(out, xs)[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(outputs(g, xs)[0], model.predict(xs[0], verbose=0), rtol=1e-4, atol=1e-5)
