"""Real mobile models (tests/zoo.py): float .tflite MobileNet-style detectors, classifiers and
landmark nets compile to int8 and run in LiteRT bit-exactly with the numpy reference (and TFLM), and
models with an op outside the registry are refused with one line naming it."""
import os

import numpy as np
import pytest

import zoo
from edgec import api
from edgec.cli import main
from edgec.frontend.tflite import load_tflite
from edgec.run.litert import run_litert
from opcheck import check_bit_exact


# The ops each model must keep, float and int8: if a Keras / converter change makes a model lose
# its variety (e.g. nearest upsampling turning into TILE), the test says so.
OPS = {
    "mobilenet_v2_ssd": {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "RESHAPE", "CONCATENATION", "LOGISTIC"},
    "mobilenet_v3_small": {"CONV_2D", "DEPTHWISE_CONV_2D", "HARD_SWISH", "MEAN", "MUL", "ADD", "RESHAPE",
                           "SOFTMAX"},
    "landmark": {"CONV_2D", "DEPTHWISE_CONV_2D", "PRELU", "LEAKY_RELU", "PAD", "ADD", "SPACE_TO_DEPTH",
                 "DEPTH_TO_SPACE", "MAX_POOL_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "TANH",
                 "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR", "TRANSPOSE_CONV", "CONCATENATION",
                 "STRIDED_SLICE", "LOGISTIC", "RESHAPE"},
}
REAL = list(OPS)
# LiteRT's (and TFLM's) kernels for these take float32 / int8 / uint8 but not int16
# ops with no int16 kernel in LiteRT or in TFLM (TFLM's RESIZE_BILINEAR takes float32 and int8 only)
NO_INT16_KERNEL = {"HARD_SWISH", "PRELU", "DEPTH_TO_SPACE", "SPACE_TO_DEPTH", "RESIZE_BILINEAR"}


# -- building and caching ----------------------------------------------------------------------
def _cache_dir(tmp_path_factory):
    """One directory for the whole run, shared by xdist workers (their basetemps are siblings)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent
    d = base / "zoo-cache"
    d.mkdir(exist_ok=True)
    return d


def _lock(path):
    """An exclusive lock file, so two xdist workers do not build the same model twice."""
    import fcntl
    f = open(path, "w")
    fcntl.flock(f, fcntl.LOCK_EX)
    return f


@pytest.fixture(scope="session")
def zoo_models(tmp_path_factory):
    d = _cache_dir(tmp_path_factory)
    cache = {}

    def get(name):
        if name not in cache:
            path, calib = d / f"{name}.tflite", d / f"{name}.calib.npy"
            with _lock(d / f"{name}.lock"):
                if not path.exists():
                    data, x = zoo.ZOO[name]()
                    np.save(calib, x)
                    tmp = path.with_suffix(".part")
                    tmp.write_bytes(data)
                    os.replace(tmp, path)
            cache[name] = (path, np.load(calib))
        return cache[name]
    return get


@pytest.fixture(scope="session")
def compiled(zoo_models, tmp_path_factory):
    """name, dtype -> (out dir, report): each compile runs once per worker."""
    cache = {}

    def get(name, dtype="int8"):
        if (name, dtype) not in cache:
            path, x = zoo_models(name)
            out = tmp_path_factory.mktemp(f"{name}-{dtype}")
            calib = {"x": x} if dtype != "float16" else None
            report = api.compile(path, out, quantize=dtype, calibration=calib)
            cache[(name, dtype)] = (out, report)
        return cache[(name, dtype)]
    return get


def _ops(g) -> set[str]:
    return {op.type for op in g.ops}


def _quantize(x, t):
    return t.quant.quantize(x, t.dtype)


def _dequantize(q, t):
    return t.quant.dequantize(q) if t.quant is not None else q.astype(np.float32)


def _corr(a, b) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    a, b = a - a.mean(), b - b.mean()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))


# -- the float models ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", REAL)
def test_float_model_has_its_op_variety(name, zoo_models):
    path, x = zoo_models(name)
    ops = zoo.op_types(path.read_bytes())
    assert OPS[name] <= set(ops), f"{name} lost ops: {sorted(OPS[name] - set(ops))} (has {ops})"
    g = load_tflite(str(path))
    assert OPS[name] <= _ops(g)
    assert x.dtype == np.float32 and x.shape[1:] == g.tensors[g.inputs[0]].shape[1:]


# -- int8 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", REAL)
def test_int8_compiles_fully_integer(name, compiled):
    out, report = compiled(name)
    g = load_tflite(str(out / "model.tflite"))
    q = [p for p in report["passes"] if p["name"] == "quantize"][0]
    assert q["fallback_ops"] == [], f"{name}: ops left in float: {q['fallback_ops']}"
    assert OPS[name] <= _ops(g), f"{name}: int8 model lost {sorted(OPS[name] - _ops(g))}"
    assert "DEQUANTIZE" not in _ops(g), f"{name}: the int8 model has a float island"
    for op in g.ops:   # QUANTIZE only as int8 -> int8 requantization (CONCATENATION inputs)
        if op.type == "QUANTIZE":
            assert g.tensors[op.inputs[0]].dtype == "int8", f"QUANTIZE of a float tensor {op.inputs[0]}"
    for tname in g.inputs + g.outputs:
        assert g.tensors[tname].dtype == "int8", (tname, g.tensors[tname].dtype)
    for op in g.ops:
        for o in op.outputs:
            assert g.tensors[o].dtype in ("int8", "int32"), f"{op.type} {o}: {g.tensors[o].dtype}"


@pytest.mark.parametrize("name", REAL)
def test_int8_bit_exact_reference_litert_tflm(name, compiled):
    """numpy reference == LiteRT BUILTIN_REF == TFLM, bit for bit."""
    out, _ = compiled(name)
    check_bit_exact(load_tflite(str(out / "model.tflite")), n=2)


@pytest.mark.parametrize("name", REAL)
def test_int8_tracks_float_and_runs_in_default_litert(name, zoo_models, compiled):
    """On calibration-like data the int8 model's dequantized outputs follow the float model's,
    in LiteRT's reference kernels and its default (XNNPACK) kernels alike."""
    path, x = zoo_models(name)
    out, _ = compiled(name)
    model = (out / "model.tflite").read_bytes()
    g = load_tflite(str(out / "model.tflite"))
    x = x[:4]
    want = run_litert(path.read_bytes(), [x], reference=False)
    xq = [_quantize(x, g.tensors[g.inputs[0]])]
    check_bit_exact(g, inputs=xq)      # on real inputs too, not only random integers
    got_ref = run_litert(model, xq)
    got_xnn = run_litert(model, xq, reference=False)
    for k, (w, a, b) in enumerate(zip(want, got_ref, got_xnn)):
        t = g.tensors[g.outputs[k]]
        assert a.shape == b.shape == w.shape
        fr, fx = _dequantize(a, t), _dequantize(b, t)
        c = _corr(fr, w)
        assert c > 0.9, f"{name} output {k}: int8 vs float correlation {c:.3f}"
        assert _corr(fx, fr) > 0.98, f"{name} output {k}: XNNPACK vs reference {_corr(fx, fr):.3f}"
        err = np.abs(fr - w).max() / max(np.abs(w).max(), 1e-6)
        assert err < 0.1, f"{name} output {k}: max error {err:.3f} of the float range"
    if name == "mobilenet_v3_small":
        top1 = np.argmax(_dequantize(got_ref[0], g.tensors[g.outputs[0]]), -1)
        agree = np.mean(top1 == np.argmax(want[0], -1))
        assert agree >= 0.75, f"top-1 agreement {agree:.2f}"


# -- other precisions ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", REAL)
def test_int16x8_bit_exact_and_tracks_float(name, compiled, zoo_models):
    """int16 activations, int8 weights: bit-exact in LiteRT and TFLM; ops TFLite has no int16 kernel
    for stay float between DEQUANTIZE and QUANTIZE."""
    path, x = zoo_models(name)
    out, report = compiled(name, "int16x8")
    g = load_tflite(str(out / "model.tflite"))
    assert g.tensors[g.inputs[0]].dtype == "int16"
    q = [p for p in report["passes"] if p["name"] == "quantize"][0]
    assert {f.split(":")[0] for f in q["fallback_ops"]} <= NO_INT16_KERNEL, q["fallback_ops"]
    check_bit_exact(g, n=2)
    x = x[:2]
    want = run_litert(path.read_bytes(), [x], reference=False)
    got = run_litert((out / "model.tflite").read_bytes(), [_quantize(x, g.tensors[g.inputs[0]])])
    for k, (w, o) in enumerate(zip(want, got)):
        c = _corr(_dequantize(o, g.tensors[g.outputs[k]]), w)
        assert c > 0.98, f"{name} int16x8 output {k}: correlation {c:.4f}"


def test_float16_mobilenet_v2_ssd(compiled, zoo_models):
    path, x = zoo_models("mobilenet_v2_ssd")
    out, report = compiled("mobilenet_v2_ssd", "float16")
    model = (out / "model.tflite").read_bytes()
    assert len(model) < 0.6 * path.stat().st_size
    g = load_tflite(str(out / "model.tflite"))
    assert "DEQUANTIZE" in _ops(g) and any(t.dtype == "float16" for t in g.tensors.values())
    check_bit_exact(g, n=1, tflm=False)
    want = run_litert(path.read_bytes(), [x[:2]], reference=False)
    got = run_litert(model, [x[:2]], reference=False)
    for w, o in zip(want, got):
        np.testing.assert_allclose(o, w, atol=2e-2 * np.abs(w).max(), rtol=0)


# -- models edgec refuses ----------------------------------------------------------------------------
def _refused(path, x, tmp_path, capsys):
    np.savez(tmp_path / "calib.npz", x=x)
    code = main(["compile", str(path), "-o", str(tmp_path / "out"), "--quantize", "int8",
                 "--calibration", str(tmp_path / "calib.npz")])
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgec: error:"), err
    assert "Traceback" not in err and not (tmp_path / "out").exists()
    return lines[0]


@pytest.mark.parametrize("name, op", [("with_cumsum", "CUMSUM"), ("with_lstm", "WHILE")])
def test_op_outside_registry_is_refused(name, op, zoo_models, tmp_path, capsys):
    path, x = zoo_models(name)
    assert op in zoo.op_types(path.read_bytes())
    line = _refused(path, x, tmp_path, capsys)
    assert f"unsupported op {op} at operator" in line, line


def test_custom_op_is_refused(zoo_models, tmp_path, capsys):
    path, x = zoo_models("landmark")
    data, k = zoo.with_custom_op(path.read_bytes(), "LOGISTIC")
    assert f"CUSTOM:{zoo.CUSTOM_CODE}" in zoo.op_types(data)
    (tmp_path / "custom.tflite").write_bytes(data)
    line = _refused(tmp_path / "custom.tflite", x, tmp_path, capsys)
    assert "custom" in line and zoo.CUSTOM_CODE in line and f"at operator {k}" in line, line


# -- Keras MultiHeadAttention ------------------------------------------------------------------------
MHA_OPS = {"FULLY_CONNECTED", "RESHAPE", "TRANSPOSE", "BATCH_MATMUL", "MUL", "SOFTMAX", "MEAN"}


@pytest.fixture(scope="module")
def mha_model(tmp_path_factory):
    """tokens [1, 8, 16] -> keras MultiHeadAttention (4 heads, key_dim 4, self-attention) -> average
    over tokens -> Dense(5), seeded, with non-zero biases (as trained; the frozen conversion folds the
    per-head bias ADDs into the projections); imported through edgec's Keras frontend. Returns (keras
    model, float .tflite path, imported graph, calibration x)."""
    import keras
    from edgec.frontend import load_model
    keras.utils.set_random_seed(3)
    x = keras.Input((8, 16))
    mha = keras.layers.MultiHeadAttention(num_heads=4, key_dim=4, name="mha")
    y = keras.layers.Dense(5, name="cls")(keras.layers.GlobalAveragePooling1D()(mha(x, x)))
    model = keras.Model(x, y)
    rng = np.random.default_rng(3)
    for w in mha.weights:
        if "bias" in w.path:
            w.assign(rng.normal(0.0, 0.2, w.shape).astype(np.float32))
    loaded = load_model(model)
    path = tmp_path_factory.mktemp("mha") / "mha.tflite"
    path.write_bytes(loaded.tflite)
    return model, path, loaded.graph, rng.uniform(-1.0, 1.0, (64, 8, 16)).astype(np.float32)


def test_mha_imports_through_the_keras_frontend(mha_model):
    from edgec.ir.interpret import run_batch
    model, _, g, x = mha_model
    assert MHA_OPS <= _ops(g), sorted(MHA_OPS - _ops(g))
    assert sum(op.type == "TRANSPOSE" for op in g.ops) == 4
    np.testing.assert_allclose(run_batch(g, [x[:8]])[0], model.predict(x[:8], verbose=0), rtol=1e-4, atol=1e-5)


def _mha_int8(mha_model, tmp_path, **options):
    """Compiles the MHA model to int8 (.tflite and C); checks it is integer end to end and bit-exact:
    reference == TFLM == C (LiteRT within its documented FULLY_CONNECTED deviation); returns the
    graph, its report and its correlation with the float Keras model on calibration-like data."""
    from ccheck import check_c_exact
    model, path, _, x = mha_model
    report = api.compile(path, tmp_path / "out", quantize="int8", calibration={"x": x}, emit=("tflite", "c"),
                         **options)
    q = [p for p in report["passes"] if p["name"] == "quantize"][0]
    assert q["fallback_ops"] == []
    g = load_tflite(str(tmp_path / "out" / "model.tflite"))
    assert {g.tensors[o].dtype for op in g.ops for o in op.outputs} == {"int8"}
    xq = [_quantize(x[:16], g.tensors[g.inputs[0]])]
    stats = check_bit_exact(g, inputs=xq)
    assert stats["tflm"]["values_differing"] == 0
    check_bit_exact(g, n=20, seed=1)
    check_c_exact(g, n=100)
    check_c_exact(g, inputs=xq)
    got = _dequantize(run_litert((tmp_path / "out" / "model.tflite").read_bytes(), xq)[0], g.tensors[g.outputs[0]])
    return g, report, _corr(got, model.predict(x[:16], verbose=0))


def test_mha_int8_bit_exact_reference_tflm_c(mha_model, tmp_path):
    g, report, corr = _mha_int8(mha_model, tmp_path)
    assert MHA_OPS <= _ops(g)
    assert corr > 0.98, f"int8 vs float correlation {corr:.3f}"


def test_mha_heads_pruned_then_int8(mha_model, tmp_path):
    """Half the heads go (prune_channels heads, l1, no data beyond calibration), then int8: the
    attention tensors carry 2 heads, MACs and params drop, still bit-exact in TFLM and C."""
    g, report, corr = _mha_int8(mha_model, tmp_path, prune_structured="heads:0.5")
    prune = [p for p in report["passes"] if p["name"] == "prune_channels"][0]
    assert prune["groups"] == [{"name": "mha_1/attention_output_1/Reshape", "heads_before": 4, "heads_after": 2}]
    assert prune["macs_after"] < 0.55 * prune["macs_before"] and prune["params_after"] < 0.6 * prune["params_before"]
    assert {g.tensors[op.outputs[0]].shape[1] for op in g.ops if op.type == "BATCH_MATMUL"} == {2}
    assert corr > 0.5, f"pruned int8 vs float correlation {corr:.3f}"
