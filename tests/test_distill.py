"""Knowledge distillation: losses, derived students, the Keras export, training, edgec.distill.distill
end to end, and the `distill` recipe step's teacher signal."""
import json
import math

import numpy as np
import pytest

from edgec import api
from edgec.backends.tflite import write_tflite
from edgec.distill import distill
from edgec.errors import EdgecError
from edgec.ir import verify
from edgec.passes import PASSES, PassContext
from edgec.train import build_model, export, fit
from edgec.train import distill as kd
from edgec.train.export_keras import export_keras
from graphs import Builder
from train.digits import digits

TRAIN, VAL, TEST = digits()


def _teacher_graph(seed: int = 0):
    """conv 16 -> residual block (conv 16, conv 16, ADD relu) -> max pool -> fc 32 -> fc 10 -> softmax."""
    b = Builder(seed)
    x = b.input((1, 8, 8, 1))
    c1 = b.conv(x, 16, act="RELU", name="c1")
    c2 = b.conv(c1, 16, act="RELU", name="c2")
    c3 = b.conv(c2, 16, name="c3")
    y = b.op("ADD", [c1, c3], (1, 8, 8, 16), "join", fused_activation_function="RELU")
    y = b.op("MAX_POOL_2D", [y], (1, 4, 4, 16), "pool", padding="VALID", stride_h=2, stride_w=2,
             filter_height=2, filter_width=2)
    y = b.reshape(y, (1, 256), name="flat")
    y = b.fc(y, 32, act="RELU", name="fc1")
    y = b.fc(y, 10, name="logits")
    for name in list(b.g.tensors):
        t = b.g.tensors[name]
        if t.is_const and name.endswith("_w"):
            t.data = t.data * np.float32(math.sqrt(2.0 / np.prod(t.shape[1:])) / 0.5)
    return b.output(b.op("SOFTMAX", [y], (1, 10), "probs", beta=1.0))


@pytest.fixture(scope="module")
def teacher():
    m = build_model(_teacher_graph())
    fit(m, TRAIN, epochs=4, batch_size=32, lr=3e-3, seed=0, progress=False)
    g = export(m)
    assert kd.accuracy(g, [VAL["x"]], VAL["y"]) > 0.9
    return g


@pytest.fixture(scope="module")
def teacher_keras(teacher, tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher") / "teacher.keras"
    export_keras(teacher).save(path)
    return str(path)


@pytest.fixture(scope="module")
def teacher_tflite(teacher, tmp_path_factory):
    path = tmp_path_factory.mktemp("teacher") / "teacher.tflite"
    path.write_bytes(write_tflite(teacher))
    return str(path)


def _tf():
    import tensorflow as tf
    return tf


# ---------------------------------------------------------------------------------------- losses

def test_kd_loss_is_t_squared_kl_and_zero_on_the_teacher():
    rng = np.random.default_rng(0)
    zs, zt = rng.normal(size=(5, 4)).astype(np.float32) * 3, rng.normal(size=(5, 4)).astype(np.float32) * 3
    T = 3.0

    def sm(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)
    p, q = sm(zt / T), sm(zs / T)
    want = T * T * np.mean(np.sum(p * (np.log(p) - np.log(q)), -1))
    got = float(kd.kd_loss(zs, kd.soft_targets(zt[None], T), T))
    assert got == pytest.approx(want, rel=1e-5)
    assert float(kd.kd_loss(zt, kd.soft_targets(zt[None], T), T)) == pytest.approx(0.0, abs=1e-5)
    # an ensemble's soft targets are the mean of its members' softened distributions
    ens = kd.soft_targets(np.stack([zt, zs]), T).numpy()
    np.testing.assert_allclose(ens, (p + q) / 2, rtol=1e-5)


def test_logit_mse_ignores_per_sample_shifts_and_ce_ignores_unlabelled():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(3, 5)).astype(np.float32)
    assert float(kd.logit_mse(z + 7.0, z[None])) == pytest.approx(0.0, abs=1e-6)
    assert float(kd.logit_mse(z * 2, z[None])) > 0.1
    yd = np.eye(5, dtype=np.float32)[[0, 1, 2]]
    ce_all = float(kd.label_ce(z, yd, np.ones(3, np.float32)))
    ce_first = float(kd.label_ce(z[:1], yd[:1], np.ones(1, np.float32)))
    assert float(kd.label_ce(z, yd, np.array([1, 0, 0], np.float32))) == pytest.approx(ce_first, rel=1e-6)
    assert ce_all != pytest.approx(ce_first)
    assert float(kd.label_ce(z, yd, np.zeros(3, np.float32))) == 0.0


def test_hint_loss_is_scale_free():
    rng = np.random.default_rng(2)
    f, g = rng.normal(size=(2, 4, 4, 3)).astype(np.float32), rng.normal(size=(2, 4, 4, 3)).astype(np.float32)
    assert float(kd.hint_loss(f * 10, g * 10)) == pytest.approx(float(kd.hint_loss(f, g)), rel=1e-5)
    assert float(kd.hint_loss(g, g)) == 0.0


# ------------------------------------------------------------------------------------- students

def test_derive_width_and_depth(teacher):
    s = kd.derive_student(teacher, width=0.5, depth=1, seed=3)
    verify(s)
    types = [op.type for op in s.ops]
    assert "ADD" not in types and types.count("CONV_2D") == 1          # the residual block is gone
    conv = next(op for op in s.ops if op.type == "CONV_2D")
    assert s.tensors[conv.inputs[1]].shape == (8, 3, 3, 1)             # 16 -> 8 filters
    fc1 = next(op for op in s.ops if op.name == "fc1")
    assert s.tensors[fc1.inputs[1]].shape == (16, 128)                 # flattened 4x4x8, 32 -> 16 units
    assert s.tensors[s.outputs[0]].shape == (1, 10) and s.inputs == teacher.inputs
    assert kd.params(s) < kd.params(teacher) / 4
    assert not np.any(s.tensors[conv.inputs[2]].data)                  # re-initialised: zero biases
    assert s.tensors[conv.inputs[1]].data.std() > 0
    # width alone keeps the block, with all joined channels cut together
    w = kd.derive_student(teacher, width=0.5)
    join = next(op for op in w.ops if op.type == "ADD")
    assert w.tensors[join.outputs[0]].shape == (1, 8, 8, 8)
    out = build_model(w).predict([TRAIN["x"][:3].astype(np.float32)])[0]
    assert out.shape == (3, 10) and np.allclose(out.sum(1), 1, atol=1e-5)


def test_derive_refuses_what_it_cannot_do(teacher):
    with pytest.raises(EdgecError, match="only 1 residual block"):
        kd.derive_student(teacher, width=0.5, depth=2)
    for bad in ("width=0", "width=1.5", "depth=2", "width=1", "size=3", "width=half", "0.5"):
        with pytest.raises(EdgecError, match="derive"):
            kd.parse_derive(bad)
    assert kd.parse_derive("width=0.5,depth=-2") == {"width": 0.5, "depth": 2}
    b = Builder()                                   # nothing between the input and the class outputs
    x = b.input((1, 4))
    mlp = b.output(b.op("SOFTMAX", [b.fc(x, 3, name="fc")], (1, 3), "p", beta=1.0))
    with pytest.raises(EdgecError, match="no channel group"):
        kd.derive_student(mlp, width=0.5)


# ------------------------------------------------------------------------------------ keras export

def test_export_keras_matches_the_graph_and_loads_in_safe_mode(tmp_path):
    import keras
    b = Builder(4)
    x = b.input((1, 8, 8, 2))
    y = b.conv(x, 6, stride=2, act="RELU6", name="c")
    w = b.rand("dw_w", (1, 3, 3, 12))
    y = b.op("DEPTHWISE_CONV_2D", [y, w, b.rand("dw_b", (12,))], (1, 4, 4, 12), "dw", padding="SAME",
             stride_h=1, stride_w=1, depth_multiplier=2, fused_activation_function="RELU")
    y = b.op("MUL", [y, b.rand("scale", (12,))], (1, 4, 4, 12), "bn_mul")
    z = b.op("AVERAGE_POOL_2D", [y], (1, 4, 4, 12), "avg", padding="SAME", stride_h=1, stride_w=1,
             filter_height=3, filter_width=3)
    y = b.op("ADD", [y, z], (1, 4, 4, 12), "add", fused_activation_function="RELU")
    mean_axes = b.g.const("axes", np.array([1, 2], np.int32))
    y = b.op("MEAN", [y, mean_axes], (1, 12), "gap", keep_dims=False)
    g = b.output(b.op("SOFTMAX", [b.fc(y, 5, name="fc")], (1, 5), "p", beta=1.0))
    model = export_keras(g)                                             # checks itself against the IR
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.models.load_model(path, safe_mode=True)
    xs = np.random.default_rng(0).normal(size=(3, 8, 8, 2)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(again(xs)), build_model(g).predict([xs])[0], atol=1e-5)


def test_export_keras_names_an_op_it_cannot_write():
    b = Builder()
    x = b.input((1, 4))
    begin, end, strides = (b.g.const(n, np.array(v, np.int32)) for n, v in
                           (("b", [0, 0]), ("e", [1, 2]), ("s", [1, 1])))
    g = b.output(b.op("STRIDED_SLICE", [x, begin, end, strides], (1, 2), "slice"))
    with pytest.raises(EdgecError, match="STRIDED_SLICE"):
        export_keras(g)


# ------------------------------------------------------------------------------------- training

def _agreement(g, teacher, x):
    a = build_model(g).predict([x])[0].argmax(1)
    return float((a == build_model(teacher).predict([x])[0].argmax(1)).mean())


def test_kd_training_is_deterministic_and_learns_the_teacher(teacher):
    s = kd.derive_student(teacher, width=0.5, seed=0)
    data = kd.TrainSet([TRAIN["x"].astype(np.float32)], np.full(len(TRAIN["y"]), -1), 10)   # teacher labels only
    before = _agreement(s, teacher, VAL["x"])
    # T=1: a fresh student's logits are small, and matching a teacher softened at T=4 takes them longer to grow
    runs = [kd.train_students([s], kd.Teacher([teacher]), data, kd.Options(epochs=2, seed=5, temperature=1.0))
            for _ in range(2)]
    (a, ha), (b, hb) = runs
    assert ha["loss"] == hb["loss"] and ha["loss"][1] < ha["loss"][0]
    for name, t in a[0].tensors.items():
        if t.is_const:
            np.testing.assert_array_equal(t.data, b[0].tensors[name].data)
    assert _agreement(a[0], teacher, VAL["x"]) > before + 0.4


def test_mutual_hints_and_augmentation_train_end_to_end(teacher):
    s = kd.derive_student(teacher, width=0.5, seed=0)
    data = kd.TrainSet([TRAIN["x"][:400].astype(np.float32)], TRAIN["y"][:400], 10)
    hints = kd.hint_pairs(teacher, s, None)
    assert hints == [(kd.penultimate(teacher), kd.penultimate(s))]
    peers = [s, kd.reinitialize(s, 9)]
    opts = kd.Options(loss="hints", epochs=1, hints=hints, augment=("shift", "noise", "mixup"))
    trained, hist = kd.train_students(peers, kd.Teacher([teacher]), data, opts)
    assert len(trained) == 2 and np.isfinite(hist["loss"]).all()
    first = [next(t.tensors[op.inputs[1]].data for op in t.ops if op.type == "CONV_2D") for t in trained]
    assert not np.array_equal(first[0], first[1])


def test_training_refuses_bad_combinations(teacher):
    s = kd.derive_student(teacher, width=0.5)
    half = kd.TrainSet([TRAIN["x"][:64].astype(np.float32)], np.r_[TRAIN["y"][:32], np.full(32, -1)], 10)
    with pytest.raises(EdgecError, match="every training sample needs a label"):
        kd.train_students([s], None, half, kd.Options(loss="labels", epochs=1))
    with pytest.raises(EdgecError, match="needs a teacher"):
        kd.train_students([s], None, half, kd.Options(loss="kd", epochs=1))
    for bad, match in ((dict(loss="kl"), "loss"), (dict(temperature=0.0), "temperature"),
                       (dict(alpha=1.5), "alpha"), (dict(epochs=0), "epochs")):
        with pytest.raises(EdgecError, match=match):
            kd.Options(**bad).check()
    with pytest.raises(EdgecError, match="augment"):
        kd.parse_augment("noise,rotate")
    with pytest.raises(EdgecError, match="same H and W"):
        kd.hint_pairs(teacher, s, ["c1:fc1"])
    with pytest.raises(EdgecError, match="no activation tensor or op named"):
        kd.hint_pairs(teacher, s, ["c1:nothing"])


# ---------------------------------------------------------------------------------- edgec distill

def test_distill_writes_a_student_edgec_evaluates(teacher, teacher_keras, tmp_path):
    import keras
    out = tmp_path / "out"
    (out / "c").mkdir(parents=True)                  # an earlier compile's artifacts describe another model
    for stale in ("c/model.c", "report.html", "notes.txt"):
        (out / stale).write_text("old")
    r = distill(teacher_keras, out, TRAIN, derive="width=0.5,depth=-1", epochs=2, temperature=1.0, val_data=VAL, seed=1)
    assert sorted(p.name for p in out.iterdir()) == ["model.tflite", "notes.txt", "report.json", "student.keras"]
    saved = json.loads((out / "report.json").read_text())
    assert saved["model"] == teacher_keras and saved["recipe"] == ["distill"]
    d = saved["distill"]
    assert d["param_ratio"] < 0.25 and d["student_params"] == saved["totals"]["params"]
    assert d["labelled"] == len(TRAIN["y"]) and len(d["history"]) == 2
    # the report's accuracies are the deployed student's and the teacher's, as `edgec eval OUT` finds them
    ev = api.eval(out, VAL)
    t = saved["totals"]
    assert ev["accuracy"] == t["accuracy"] == pytest.approx(d["student_accuracy"][0], abs=1e-6)
    assert ev["float_accuracy"] == t["float_accuracy"] == pytest.approx(d["teacher_accuracy"][0], abs=1e-6)
    assert ev["accuracy"] > 0.25 and "top1_agreement" in ev          # 2 epochs; chance is 0.1
    # student.keras is the same model as model.tflite, and loads in safe mode
    k = keras.models.load_model(out / "student.keras", safe_mode=True)
    loaded = api.load(str(out / "student.keras"))
    xs = TEST["x"][:20].astype(np.float32)
    np.testing.assert_allclose(np.asarray(k(xs)), build_model(loaded.graph).predict([xs])[0], atol=1e-5)
    assert r["totals"]["tflite_bytes"] == (out / "model.tflite").stat().st_size


def test_distill_from_unlabelled_data_with_an_ensemble_and_an_assistant(teacher_tflite, tmp_path):
    r = distill([teacher_tflite, teacher_tflite], tmp_path / "out", {"x": TRAIN["x"][:300]},
                unlabeled={"x": TRAIN["x"][300:600]}, epochs=1, assistant=True, mutual=2, val_data=VAL)
    d = r["distill"]
    assert d["labelled"] == 0 and d["samples"] == 600 and d["unlabeled"] == 300
    assert d["assistant"]["params"] > d["student_params"] and 0.5 < d["assistant"]["width"] < 1
    assert len(d["student_accuracy"]) == 2 and d["ensemble_accuracy"] == d["teacher_accuracy"][0]
    assert d["student"] == "derived: width=0.5, depth=0"


def test_distill_user_errors(teacher_tflite, tmp_path):
    out = tmp_path / "out"
    cases = [
        (dict(student=teacher_tflite, derive="width=0.5"), "not both"),
        (dict(mutual=1), "mutual"),
        (dict(loss="labels", assistant=True), "assistant"),
        (dict(loss="labels", hints=["c1"]), "hints"),
        (dict(loss="labels", unlabeled={"x": TRAIN["x"][:10]}), "needs a label"),
        (dict(val_data={"x": VAL["x"]}), "needs labels"),
        (dict(train_data={"x": TRAIN["x"][:10], "y": TRAIN["y"][:10] + 10}), r"labels must be in \[0, 10\)"),
        (dict(train_data={"x": np.zeros((4, 9, 9, 1), np.float32)}), "shape"),
        (dict(train_data=None), "needs training data"),
        (dict(loss="hints", hints=["nothing"]), "nothing"),
    ]
    for kw, match in cases:
        kw = {"train_data": TRAIN, "epochs": 1, **kw}
        with pytest.raises(EdgecError, match=match):
            distill(teacher_tflite, out, **kw)
    assert not out.exists()


# ----------------------------------------------------------------------------- the distill step

def test_distill_step_gives_later_passes_the_teachers_signal(teacher):
    g = teacher.copy()
    ctx = PassContext(options={**PASSES["distill"].defaults, "alpha": 0.5})
    assert kd_signal(ctx, g) is None                                   # no distill step ran: no signal
    assert PASSES["distill"].run(g, ctx) is g and ctx.report["distill_loss"] == "kd"
    x, y = TRAIN["x"][:200].astype(np.float32), TRAIN["y"][:200]
    student = _pruned(teacher, 0.8)                 # the compressed model a later pass fine-tunes
    sig = kd_signal(ctx, student, x, y)
    assert sig.targets.shape == (200, 11) and np.array_equal(sig.labels, y)
    # the loss on the student's probabilities equals the loss on its logits
    env = build_model(student).forward([x[:16]], keep=True)
    logits = env[kd.logits_of(student)[0]]
    tz = build_model(teacher).forward([x[:16]], keep=True)[kd.logits_of(teacher)[0]]
    tf = _tf()
    want = 0.5 * kd.kd_loss(logits, kd.soft_targets(tz[None], 4.0), 4.0) + \
        0.5 * kd.label_ce(logits, tf.one_hot(y[:16], 10), tf.ones(16))
    got = sig.loss(tf.constant(sig.targets[:16]), env[student.outputs[0]])
    assert float(got) == pytest.approx(float(want), rel=1e-4)
    # and fit trains with it: the student comes to agree with the teacher
    m = build_model(student)
    before = _agreement(student, teacher, VAL["x"])
    fit(m, {"x": x, "y": sig.targets}, loss=sig.loss, epochs=3, batch_size=32, lr=3e-3, seed=0, progress=False)
    assert before < 0.9 and _agreement(export(m), teacher, VAL["x"]) > before + 0.05
    # without labels the teacher's top-1 stands in for them
    unl = kd_signal(ctx, student, x)
    assert (unl.targets[:, -1] == -1).all() and (unl.labels == build_model(teacher).predict([x])[0].argmax(1)).all()


def _pruned(g, fraction: float):
    """g with the smallest `fraction` of every weight matrix's entries set to zero."""
    g = g.copy()
    for op in g.ops:
        if op.type in ("CONV_2D", "FULLY_CONNECTED"):
            t = g.tensors[op.inputs[1]]
            t.data = np.where(np.abs(t.data) < np.quantile(np.abs(t.data), fraction), 0, t.data).astype(np.float32)
    return g


def kd_signal(ctx, graph, x=None, y=None):
    from edgec.passes.distill_step import teacher_signal
    return teacher_signal(ctx, graph, [TRAIN["x"][:8].astype(np.float32)] if x is None else [x], y)


def test_distill_step_refuses_a_quantized_model_and_bad_options(teacher):
    from edgec.ir.tensor import QuantParams
    g = teacher.copy()
    g.tensors[g.inputs[0]].quant = QuantParams(0.1, 0)
    with pytest.raises(EdgecError, match="before quantize"):
        PASSES["distill"].run(g, PassContext(options=dict(PASSES["distill"].defaults)))
    for bad, match in (({"loss": "hints"}, "kd or mse"), ({"alpha": 2}, "alpha"), ({"temperature": 0}, "temperature")):
        with pytest.raises(EdgecError, match=match):
            PASSES["distill"].run(teacher.copy(), PassContext(options={**PASSES["distill"].defaults, **bad}))


def test_cli_distill(teacher_tflite, tmp_path, capsys):
    from edgec.cli import main
    np.savez(tmp_path / "t.npz", **TRAIN)
    np.savez(tmp_path / "v.npz", **VAL)
    args = ["distill", str(teacher_tflite), "-o", str(tmp_path / "out"), "--train-data", str(tmp_path / "t.npz"),
            "--val-data", str(tmp_path / "v.npz"), "--derive", "width=0.5", "--epochs", "1", "--temperature", "1",
            "--json"]
    assert main(args) == 0, capsys.readouterr().err
    rep = json.loads(capsys.readouterr().out)
    assert (tmp_path / "out" / "student.keras").is_file() and (tmp_path / "out" / "model.tflite").is_file()
    assert rep["totals"]["params"] > 0
    assert main(args[:-1] + ["--loss", "softmax"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--loss" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("step,key", [
    (("prune_weights", {"sparsity": 0.5, "schedule": "oneshot", "epochs": 1}), "prune_target"),
    (("cluster_weights", {"clusters": 8, "epochs": 1}), "cluster_target"),
    (("factorize", {"rule": "energy", "energy": 0.9, "epochs": 1}), "finetune_target"),
    (("qat", {"epochs": 1, "activations": False}), "qat_target")])
def test_a_distill_step_in_a_pipeline_drives_later_fine_tuning(teacher, step, key):
    from edgec.data import Dataset
    from edgec.passes import Pipeline, Step
    x, y = TRAIN["x"][:200].astype(np.float32), TRAIN["y"][:200]
    steps = [Step("distill", {"temperature": 1.0}), Step(*step)]
    _, reports = Pipeline(steps).run(teacher.copy(), train_data=Dataset([x], y))
    assert reports[1][key] == "teacher"
    _, plain = Pipeline(steps[1:]).run(teacher.copy(), train_data=Dataset([x], y))
    assert plain[0].get(key) != "teacher"
