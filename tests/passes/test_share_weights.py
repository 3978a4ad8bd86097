"""share_weights: tying same-shaped weights within a distance bound (stored once by TFLite and C), and
HashedNets hashing of FULLY_CONNECTED weights at the tensor, row and block levels -- the hash itself, the
trained buckets, the int8 levels the quantize pass stores, the C kernel that stores only the buckets
(bit-exact with the reference and TFLM), its fallback when a weight is not exactly hashed -- and the
--share flags."""
import subprocess

import numpy as np
import pytest

from ccheck import check_c_exact
from edgec.api import recipe_steps, with_share
from edgec.backends.c.emit import emit_c
from edgec.backends.tflite import write_tflite
from edgec.calibrate import observe
from edgec.cli import main
from edgec.data import dataset_from
from edgec.errors import EdgecError
from edgec.passes import Pipeline, Step
from edgec.passes.share_weights import parse_share, relative_distance
from edgec.weight_hashing import HashSpec, fmix32
from edgec.paths import data_dir
from graphs import Builder, small_cnn
from toolchain import need

RNG = np.random.default_rng(0)
X = RNG.standard_normal((60, 8, 8, 1)).astype(np.float32)
DATA = dataset_from({"x": X, "y": RNG.integers(0, 10, 60)})
FIT = dataset_from({"x": X[:48], "y": RNG.integers(0, 10, 48)})     # < 50 samples: no held-out, last epoch kept


def share(g, data=None, **opts):
    out, rep = Pipeline([Step("share_weights", {"epochs": 0, **opts})]).run(g.copy(), train_data=data)
    return out, rep[0]


def quantize(g, x=X):
    q, _ = Pipeline([Step("quantize", {})]).run(g.copy(), calibration=dataset_from({"x": x}),
                                               observe=lambda t: observe(t, [x[:16]]))
    return q


# ------------------------------------------------------------------------------------------- tie

def stack(noise: float, seed: int = 0):
    """x [1, 16] -> fc a (16x16, relu) -> fc b (16x16, relu; a's weights + noise) -> fc out (10x16)."""
    b = Builder(seed)
    x = b.input((1, 16))
    y = b.fc(x, 16, "RELU", name="a")
    wa = b.g.tensors["a_w"].data
    step = np.float32(noise * np.linalg.norm(wa) / 16)      # relative distance about `noise`
    wb = b.const("b_w", wa + b.rng.standard_normal(wa.shape).astype(np.float32) * step)
    y = b.op("FULLY_CONNECTED", [y, wb, b.rand("b_b", (16,), 0.1)], (1, 16), "b", fused_activation_function="RELU")
    y = b.fc(y, 10, name="out")
    return b.output(y)


def test_tie_within_bound_shares_one_tensor_stored_once():
    g = stack(0.01)
    d = relative_distance(g.tensors["a_w"].data, g.tensors["b_w"].data)
    assert 0.005 < d < 0.02
    out, rep = share(g, mode="tie", bound=0.02)
    a, b = (next(op for op in out.ops if op.name == n) for n in ("a", "b"))
    assert a.inputs[1] == b.inputs[1] and rep["tied_groups"] == [["a", "b"]] and rep["params_shared_away"] == 256
    np.testing.assert_allclose(out.tensors[a.inputs[1]].data, (g.tensors["a_w"].data + g.tensors["b_w"].data) / 2,
                               rtol=1e-6)
    assert a.inputs[2] != b.inputs[2]                              # biases stay per layer
    x = RNG.standard_normal((40, 16)).astype(np.float32)
    q, q0 = quantize(out, x), quantize(g, x)
    assert len(write_tflite(q0)) - len(write_tflite(q)) >= 256     # one int8 buffer fewer
    p, p0 = emit_c(q), emit_c(q0)
    assert sum(p0.weight_bytes.values()) - sum(p.weight_bytes.values()) == 256
    assert p.files["model.c"].count(b"static const int8_t") == p0.files["model.c"].count(b"static const int8_t") - 1
    check_c_exact(q, n=100, inputs=[x[:, None, :].reshape(40, 16)])


def test_tie_over_bound_or_other_shape_is_not_tied():
    g = stack(0.05)
    out, rep = share(g, mode="tie", bound=0.02)
    assert rep["tied_groups"] == []
    row = next(r for r in rep["share_layers"] if r["layer"] == "b")
    assert row["status"] == "kept: over the bound" and row["nearest"] == "a" and row["distance"] > 0.02
    assert next(r for r in rep["share_layers"] if r["layer"] == "out")["status"] == "kept"   # 10x16: no partner
    for n in ("a_w", "b_w"):
        np.testing.assert_array_equal(out.tensors[n].data, g.tensors[n].data)


def test_tied_fine_tuning_keeps_one_tensor():
    g = stack(0.01)
    x = RNG.standard_normal((48, 16)).astype(np.float32)
    out, rep = share(g, dataset_from({"x": x, "y": RNG.integers(0, 10, 48)}), mode="tie", bound=0.02, epochs=1,
                     lr=1e-2)
    a, b = (next(op for op in out.ops if op.name == n) for n in ("a", "b"))
    assert a.inputs[1] == b.inputs[1] and rep["share_fine_tuned"]
    tied = (g.tensors["a_w"].data + g.tensors["b_w"].data) / 2
    assert not np.allclose(out.tensors[a.inputs[1]].data, tied)    # trained, still one tensor


# ------------------------------------------------------------------------------------------ hash

def test_hash_function_and_bucket_counts():
    assert int(fmix32(1)) == 0x514E28B7 and int(fmix32(0)) == 0           # murmur3's fmix32
    assert HashSpec.for_budget((10, 30), 4).buckets == 75
    assert HashSpec.for_budget((10, 30), 4, "row").buckets == 80
    assert HashSpec.for_budget((10, 30), 4, "block", 4).buckets == 80     # 80 blocks / 4 = 20 blocks of 4
    for level in ("tensor", "row", "block"):
        spec = HashSpec.for_budget((10, 30), 4, level, 4, seed=5)
        idx, sign = spec.index((10, 30))
        assert idx.min() >= 0 and idx.max() < spec.buckets and set(np.unique(sign)) == {-1, 1}
        if level == "row":      # row o only reads its own buckets
            assert np.all(idx // (spec.buckets // 10) == np.arange(10)[:, None])
        b = RNG.integers(-127, 128, spec.buckets)
        w = spec.expand(b, (10, 30))
        used = np.unique(idx)
        np.testing.assert_array_equal(spec.collect(w)[used], b[used])
        w[3, 7] += 1
        assert spec.collect(w) is None
    other = HashSpec.for_budget((10, 30), 4, seed=6).index((10, 30))[0]
    assert (other != HashSpec.for_budget((10, 30), 4, seed=5).index((10, 30))[0]).mean() > 0.5   # seeded


@pytest.mark.parametrize("level", ["tensor", "row", "block"])
def test_hashed_fc_deploys_as_buckets_bit_exact(level):
    g = small_cnn()
    out, rep = share(g, FIT, mode="hash", ratio=4.0, level=level, block=4, epochs=1, lr=1e-2)
    row = next(r for r in rep["share_layers"] if r["layer"] == "logits")
    spec = HashSpec.from_dict(out.tensors["logits_w"].meta["hash"])
    assert row["status"] == "hashed" and row["stored_params"] == spec.buckets <= 1920 // 4 + 16
    w = out.tensors["logits_w"]
    s = float(w.meta["qat_scale"][0])
    lv = w.meta["qat_levels"].astype(np.int64)
    idx, sign = spec.index(w.shape)
    b = np.zeros(spec.buckets, np.int64)
    b[idx] = lv * sign
    np.testing.assert_array_equal(lv, b[idx] * sign)                    # sign * bucket level
    np.testing.assert_array_equal(w.data, (lv * s).astype(np.float32))  # trained forward == levels x scale
    untrained, _ = share(g, mode="hash", ratio=4.0, level=level, block=4)
    assert not np.array_equal(untrained.tensors["logits_w"].data, w.data)   # the buckets were trained
    q = quantize(out)
    wq = q.tensors[next(op for op in q.ops if op.name == "logits").inputs[1]]
    np.testing.assert_array_equal(wq.data, lv)
    p = emit_c(q)
    assert p.kernels.get("ec_fully_connected_s8h") == "ref"
    assert p.weight_bytes["logits"] == spec.buckets + 4 * 10           # the buckets and the int32 bias
    check_c_exact(q, n=100)


def test_weight_not_exactly_hashed_falls_back_to_dense():
    out, _ = share(small_cnn(), mode="hash", ratio=4.0)
    q = quantize(out)
    wq = q.tensors[next(op for op in q.ops if op.name == "logits").inputs[1]]
    wq.data = wq.data.copy()
    wq.data[0, 0] = -wq.data[0, 0] if wq.data[0, 0] else 1
    p = emit_c(q)
    assert "ec_fully_connected_s8h" not in p.kernels and p.weight_bytes["logits"] == 1920 + 40
    check_c_exact(q, n=50)


@pytest.mark.parametrize("cc,flags", [("gcc", []), ("clang", []),
                                      ("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb"])])
def test_hashed_kernel_compiles_warning_free(cc, flags, tmp_path):
    need(cc)
    root = data_dir("kernels")
    r = subprocess.run([cc, "-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", *flags, f"-I{root / 'include'}", "-c",
                        str(root / "ref" / "ec_fully_connected_s8h.c")], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_hashed_model_runs_on_emulated_cortex_m4(tmp_path):
    """The profiler checks the emulated Cortex-M4's outputs against the host build (32-bit ARM: the hash's
    uint32 wrap-around and 64-bit product must agree)."""
    from edgec import api
    need("arm-none-eabi-gcc", emulator=True)
    (tmp_path / "m.tflite").write_bytes(write_tflite(small_cnn()))
    rep = api.compile(tmp_path / "m.tflite", tmp_path / "o", quantize="int8", calibration={"x": X},
                      emit=("tflite", "c"), target="cortex-m4", share="hash:4x:block3", epochs=0)
    assert rep["c_kernels"].get("ec_fully_connected_s8h")
    prof = api.profile(tmp_path / "o", "cortex-m4", data={"x": X[:1]})
    assert prof["profile"]["outputs_equal"] and prof["totals"]["instructions"] > 0


def test_hash_skips_pruned_small_and_non_fc_weights():
    g = small_cnn()
    g.tensors["logits_w"].meta["prune_mask"] = np.ones((10, 192), bool)
    out, rep = share(g, mode="hash", ratio=4.0)
    assert [r["status"] for r in rep["share_layers"]] == ["kept: already pruned or quantized"]   # FC only
    np.testing.assert_array_equal(out.tensors["logits_w"].data, g.tensors["logits_w"].data)
    assert "weight_hash" not in out.tensors[out.ops[-2].outputs[0]].meta


# ------------------------------------------------------------------------------------------ flags

def test_parse_share_and_pipeline_position():
    assert parse_share("tie:0.02") == {"mode": "tie", "bound": 0.02}
    assert parse_share("hash:8x") == {"mode": "hash", "ratio": 8.0}
    assert parse_share("hash:4x:block8") == {"mode": "hash", "ratio": 4.0, "level": "block", "block": 8}
    assert parse_share("HASH:2.5x:row") == {"mode": "hash", "ratio": 2.5, "level": "row", "block": 1}
    base = recipe_steps("deep-compression")
    names = [s.name for s in with_share(base, "tie:0.1")]
    assert names.index("share_weights") == names.index("prune_weights") - 1
    names = [s.name for s in with_share(base, "hash:8x", epochs=2)]
    assert names.index("prune_weights") < names.index("share_weights") < names.index("cluster_weights")


@pytest.mark.parametrize("flags,msg", [
    (["--share", "tie"], "--share 'tie'"),
    (["--share", "tie:-1"], "relative distance > 0"),
    (["--share", "hash:1x"], "R > 1"),
    (["--share", "hash:8x:diagonal"], "diagonal"),
    (["--share", "hash:8x", "--quantize", "int8", "--qat"], "drop --qat"),
])
def test_cli_bad_share_flags(tmp_path, capsys, flags, msg):
    (tmp_path / "m.tflite").write_bytes(write_tflite(small_cnn()))
    assert main(["compile", str(tmp_path / "m.tflite"), "-o", str(tmp_path / "o"), *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert msg in err and len(err.splitlines()) == 1


def test_parse_share_errors_name_the_option():
    with pytest.raises(EdgecError, match="--share 'prune:3'"):
        parse_share("prune:3")
