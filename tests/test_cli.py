"""The CLI contract: bad input exits 2 with one line, outputs are atomic and deterministic, and a
.tflite model compiles with TensorFlow unimportable."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from edgec.backends.tflite import write_tflite
from edgec.cli import main
from graphs import small_cnn


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    (d / "model.tflite").write_bytes(write_tflite(small_cnn()))
    rng = np.random.default_rng(0)
    np.savez(d / "calib.npz", x=rng.standard_normal((30, 8, 8, 1)).astype(np.float32),
             y=rng.integers(0, 10, 30))
    np.savez(d / "wrong.npz", x=rng.standard_normal((30, 8, 8)).astype(np.float32))
    return d


def run_cli(args, capsys):
    code = main([str(a) for a in args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def compile_args(files, out, *extra):
    return ["compile", files / "model.tflite", "-o", out, "--quantize", "int8", "--calibration",
            files / "calib.npz", *extra]


def test_compile_writes_model_and_report(files, tmp_path, capsys):
    code, out, err = run_cli(compile_args(files, tmp_path / "out"), capsys)
    assert code == 0, err
    rep = json.loads((tmp_path / "out" / "report.json").read_text())
    assert rep["recipe"][-1] == "quantize"
    assert rep["totals"]["tflite_bytes"] == (tmp_path / "out" / "model.tflite").stat().st_size
    assert rep["totals"]["weight_bytes"] < rep["totals"]["float_bytes"] / 3
    assert rep["totals"]["accuracy"] is not None   # calibration data has y
    assert len(rep["layers"]) == len(rep["passes"]) or rep["layers"]
    assert "model.tflite" in out


def test_compile_twice_is_byte_identical(files, tmp_path, capsys):
    for name in ("a", "b"):
        assert run_cli(compile_args(files, tmp_path / name), capsys)[0] == 0
    assert (tmp_path / "a/model.tflite").read_bytes() == (tmp_path / "b/model.tflite").read_bytes()
    strip = lambda p: {k: v for k, v in json.loads(p.read_text()).items() if k != "timings"}  # noqa: E731
    ra, rb = strip(tmp_path / "a/report.json"), strip(tmp_path / "b/report.json")
    for r in (ra, rb):
        for p in r["passes"]:
            p.pop("seconds")
    assert ra == rb


def test_eval_json(files, tmp_path, capsys):
    assert run_cli(compile_args(files, tmp_path / "out"), capsys)[0] == 0
    code, out, err = run_cli(["eval", tmp_path / "out", "--data", files / "calib.npz", "--json"], capsys)
    assert code == 0, err
    res = json.loads(out)
    assert 0 <= res["accuracy"] <= 1 and res["output_rmse"] < 0.05


def test_inspect_json(files, capsys):
    code, out, _ = run_cli(["inspect", files / "model.tflite", "--json"], capsys)
    assert code == 0
    res = json.loads(out)
    assert [r["op"] for r in res["layers"]][:2] == ["CONV_2D", "CONV_2D"] and res["macs"] > 0


def bad_files(d, real: bytes):
    flipped = bytearray(real)
    for k in range(0, len(flipped), 97):
        flipped[k] ^= 0xFF
    cases = {
        "empty.tflite": b"",
        "truncated.tflite": real[: len(real) // 3],
        "flipped.tflite": bytes(flipped),
        "random.bin": np.random.default_rng(1).bytes(4096),
        "text.keras": b"this is not a keras model\n",
        "text.h5": b"nor this\n",
    }
    for name, data in cases.items():
        (d / name).write_bytes(data)
    return list(cases)


@pytest.mark.parametrize("case", ["missing", "empty.tflite", "truncated.tflite", "flipped.tflite",
                                  "random.bin", "text.keras", "text.h5", "wrong-shape", "bad-option",
                                  "missing-calibration", "unknown-recipe", "corrupt-npz"])
def test_bad_input_exits_2_with_one_line(case, files, tmp_path, capsys):
    bad_files(tmp_path, (files / "model.tflite").read_bytes())
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04garbage")
    model = files / "model.tflite"
    args = {
        "missing": ["inspect", tmp_path / "nope.tflite"],
        "wrong-shape": ["compile", model, "-o", tmp_path / "o", "--quantize", "int8", "--calibration", files / "wrong.npz"],
        "bad-option": ["compile", model, "-o", tmp_path / "o", "--quantize", "int9"],
        "missing-calibration": ["compile", model, "-o", tmp_path / "o", "--quantize", "int8"],
        "unknown-recipe": ["compile", model, "-o", tmp_path / "o", "--recipe", "no-such-recipe"],
        "corrupt-npz": ["compile", model, "-o", tmp_path / "o", "--quantize", "int8", "--calibration", tmp_path / "corrupt.npz"],
    }.get(case, ["compile", tmp_path / case, "-o", tmp_path / "o"])
    code, out, err = run_cli(args, capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgec: error:"), err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_failed_compile_leaves_existing_out_untouched(files, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli(compile_args(files, out), capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    code, _, _ = run_cli(["compile", files / "model.tflite", "-o", out, "--quantize", "int8",
                          "--calibration", files / "wrong.npz"], capsys)
    assert code == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]   # no temporaries left behind


def test_unsupported_op_names_op_and_place(tmp_path, capsys):
    from edgec.tflite_schema import schema
    m = schema.ModelT.InitFromPackedBuf(bytearray(write_tflite(small_cnn())), 0)
    m.operatorCodes[0].builtinCode = m.operatorCodes[0].deprecatedBuiltinCode = schema.BuiltinOperator.LSTM
    import flatbuffers
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    (tmp_path / "lstm.tflite").write_bytes(bytes(b.Output()))
    code, _, err = run_cli(["inspect", tmp_path / "lstm.tflite"], capsys)
    assert code == 2 and "unsupported op LSTM at operator 0" in err and "CONV_2D" in err


def test_tflite_compiles_with_tensorflow_and_keras_unimportable(files, tmp_path):
    code = (
        "import sys\n"
        "for m in ('tensorflow', 'keras', 'tf_keras'): sys.modules[m] = None\n"
        "from edgec.cli import main\n"
        f"rc = main(['compile', {str(files / 'model.tflite')!r}, '-o', {str(tmp_path / 'o')!r}, '--quantize', 'int8',"
        f" '--calibration', {str(files / 'calib.npz')!r}])\n"
        "assert sys.modules['tensorflow'] is None\n"
        "sys.exit(rc)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": os.path.dirname(__file__)})
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "model.tflite").is_file()


def test_eval_per_layer_reports_error_of_each_quantized_tensor(files, tmp_path, capsys):
    assert run_cli(compile_args(files, tmp_path / "out"), capsys)[0] == 0
    code, out, err = run_cli(["eval", tmp_path / "out", "--data", files / "calib.npz", "--per-layer", "--json"], capsys)
    assert code == 0, err
    rows = json.loads(out)["layers"]
    acts = [r for r in rows if r["kind"] == "activation"]
    weights = [r for r in rows if r["kind"].startswith("weight")]
    assert len(acts) >= 4 and len(weights) == 3          # conv, conv, fc weights
    assert all(r["snr_db"] > 20 for r in rows)            # int8 keeps every tensor far above the noise
    code, out, _ = run_cli(["eval", tmp_path / "out", "--data", files / "calib.npz", "--per-layer"], capsys)
    assert code == 0 and "SNR dB" in out


def test_low_bit_flags_reach_the_quantize_pass(files, tmp_path, capsys):
    base = ["compile", files / "model.tflite", "--calibration", files / "calib.npz", "--quantize", "int4", "--json"]
    code, out, err = run_cli(base + ["-o", tmp_path / "a"], capsys)
    assert code == 0, err
    q = [p for p in json.loads(out)["passes"] if p["name"] == "quantize"][0]
    assert q["loss_aware_layers"] > 0
    code, out, err = run_cli(base + ["-o", tmp_path / "b", "--no-loss-aware", "--scheme", "kmeans",
                                     "--granularity", "tensor"], capsys)
    assert code == 0, err
    q = [p for p in json.loads(out)["passes"] if p["name"] == "quantize"][0]
    assert q.get("loss_aware_layers", 0) == 0
    from edgec.frontend.tflite import load_tflite
    g = load_tflite(str(tmp_path / "b" / "model.tflite"))
    w = [g.tensors[op.inputs[1]] for op in g.ops if op.type == "CONV_2D"]
    assert all(t.quant.scale.size == 1 and len(np.unique(t.data)) <= 16 for t in w)
    code, _, err = run_cli(["compile", files / "model.tflite", "-o", tmp_path / "c", "--scheme", "pow2"], capsys)
    assert code == 2 and "nothing is quantized" in err


def test_group_granularity_flag(files, tmp_path, capsys):
    base = ["compile", files / "model.tflite", "--calibration", files / "calib.npz", "--quantize", "int4", "--json"]
    code, out, err = run_cli(base + ["-o", tmp_path / "g", "--granularity", "group:8"], capsys)
    assert code == 0, err
    q = [p for p in json.loads(out)["passes"] if p["name"] == "quantize"][0]
    assert q["group_scaled_layers"] > 0
    for bad, says in (("group:0", "granularity"), ("layer", "granularity")):
        code, _, err = run_cli(base + ["-o", tmp_path / "x", "--granularity", bad], capsys)
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1
    code, _, err = run_cli(["compile", files / "model.tflite", "--calibration", files / "calib.npz", "-o",
                            tmp_path / "y", "--quantize", "int8", "--granularity", "group:8"], capsys)
    assert code == 2 and "below 8 bits" in err


def test_factorize_flag(files, tmp_path, capsys):
    code, out, err = run_cli(compile_args(files, tmp_path / "f", "--factorize", "tucker:rank=2x2", "--json"), capsys)
    assert code == 0, err
    rep = json.loads(out)
    assert rep["recipe"].index("factorize") < rep["recipe"].index("quantize")
    code, _, err = run_cli(compile_args(files, tmp_path / "g", "--factorize", "svd:lots"), capsys)
    assert code == 2 and "factorize" in err and len(err.strip().splitlines()) == 1


def test_entropy_flag_codes_the_c_weights(files, tmp_path, capsys):
    code, out, err = run_cli(compile_args(files, tmp_path / "plain", "--emit", "tflite,c", "--json"), capsys)
    assert code == 0, err
    plain = json.loads(out)
    code, out, err = run_cli(compile_args(files, tmp_path / "e", "--emit", "tflite,c", "--entropy", "init",
                                          "--json"), capsys)
    assert code == 0, err
    rep = json.loads(out)
    assert rep["entropy"]["mode"] == "init"
    assert rep["totals"]["weight_bytes"] <= plain["totals"]["weight_bytes"]
    assert rep["totals"]["accuracy"] == plain["totals"]["accuracy"]        # the C artifact still evaluates the same
    code, _, err = run_cli(compile_args(files, tmp_path / "x", "--entropy", "layer"), capsys)
    assert code == 2 and "--emit c" in err
