"""edgec profile: exact, repeatable instruction counts; flash and RAM from the ELF; estimates labelled;
outputs checked; budgets gate with exit code 3."""
import json
import subprocess

import numpy as np
import pytest

from edgec import api
from edgec.backends.tflite import write_tflite
from edgec.budgets import BudgetError, parse_latency_ms, parse_size
from edgec.cli import main
from graphs import small_cnn
from toolchain import need as require



def need(*tools):
    require(*tools, emulator=True)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp("prof")
    (d / "m.tflite").write_bytes(write_tflite(small_cnn()))
    rng = np.random.default_rng(0)
    np.savez(d / "c.npz", x=rng.standard_normal((20, 8, 8, 1)).astype(np.float32), y=rng.integers(0, 10, 20))
    return d


def compiled(model, tmp_path, target):
    out = tmp_path / target
    api.compile(str(model / "m.tflite"), out, quantize="int8", calibration=model / "c.npz", emit=("tflite", "c"),
                target=target)
    return out


def test_cortex_m4_profile_is_exact_repeatable_and_consistent(model, tmp_path):
    need("arm-none-eabi-gcc", "arm-none-eabi-size")
    out = compiled(model, tmp_path, "cortex-m4")
    a = api.profile(out, "cortex-m4", data=model / "c.npz")
    b = api.profile(out, "cortex-m4", data=model / "c.npz")
    ta, tb = a["totals"], b["totals"]
    assert ta["instructions"] == tb["instructions"] > 0
    layers = [r["instructions"] for r in a["layers"] if r["instructions"] is not None]
    assert [r["instructions"] for r in a["layers"]] == [r["instructions"] for r in b["layers"]]
    assert len(layers) == 4 and sum(layers) <= ta["instructions"]   # 5 ops; the reshape is an alias
    assert ta["latency_is_estimate"] is True and ta["cycles_est"] >= ta["instructions"] * 0.9
    assert ta["latency_ms"] == pytest.approx(ta["cycles_est"] / 168e6 * 1000, rel=1e-6)
    assert ta["energy_uj_est"] > 0
    assert a["profile"]["outputs_equal"] and a["profile"]["outputs_checked_against"] == "host C build"
    assert set(a["profile"]["estimated"]) == {"cycles_est", "latency_ms", "energy_uj_est"}
    # flash agrees with arm-none-eabi-size (text + data) within 2%; RAM covers arena + stack
    size = subprocess.run(["arm-none-eabi-size", str(out / "firmware.elf")], capture_output=True, text=True).stdout
    text, data = (int(v) for v in size.splitlines()[1].split()[:2])
    assert abs(ta["flash_bytes"] - (text + data)) <= 0.02 * (text + data)
    assert ta["ram_bytes"] >= ta["arena_bytes"] + a["profile"]["stack_bytes"] > ta["arena_bytes"]
    assert a["profile"]["stack_bytes"] > 0
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["totals"]["instructions"] == ta["instructions"] and on_disk["artifacts"]["elf"] == "firmware.elf"
    assert "cycles (est.)" in (out / "report.html").read_text()


def test_entropy_coded_weights_profile_without_the_one_time_decode(model, tmp_path):
    need("arm-none-eabi-gcc")
    plain = api.profile(compiled(model, tmp_path, "cortex-m4"), "cortex-m4", data=model / "c.npz")
    out = tmp_path / "coded"
    api.compile(str(model / "m.tflite"), out, quantize="int8", calibration=model / "c.npz", emit=("tflite", "c"),
                target="cortex-m4", entropy="init")
    coded = api.profile(out, "cortex-m4", data=model / "c.npz")
    assert json.loads((out / "report.json").read_text())["entropy"]["arrays_coded"] >= 1
    assert coded["profile"]["outputs_equal"]
    # model_init decoded the weights before the measured inference: only the ready check is added
    assert 0 <= coded["totals"]["instructions"] - plain["totals"]["instructions"] < 50


def test_cmsis_kernels_beat_ref_on_the_same_model(model, tmp_path):
    need("arm-none-eabi-gcc")
    ref = compiled(model, tmp_path, "cortex-m0plus")      # ref kernels only
    cm = compiled(model, tmp_path, "cortex-m4")
    n_ref = api.profile(ref, "cortex-m4", data=model / "c.npz")["totals"]["instructions"]
    n_cm = api.profile(cm, "cortex-m4", data=model / "c.npz")["totals"]["instructions"]
    assert n_cm < 0.8 * n_ref


def test_arm64_profile_checks_against_the_reference(model, tmp_path):
    need("aarch64-linux-gnu-gcc")
    out = compiled(model, tmp_path, "cortex-a53")
    rep = api.profile(out, "cortex-a53", data=model / "c.npz")
    assert rep["profile"]["outputs_equal"]     # against the host build (NEON files fall back to scalar C there)
    assert rep["profile"]["instruction_classes"].get("simd", 0) > 0       # the NEON kernels ran


def test_host_profile_is_measured(model, tmp_path):
    out = compiled(model, tmp_path, "host")
    rep = api.profile(out, "host", iters=50)
    assert rep["totals"]["latency_is_estimate"] is False and rep["totals"]["latency_ms"] > 0


def test_budgets_exit_3_naming_the_overshoot(model, tmp_path, capsys):
    need("arm-none-eabi-gcc")
    out = compiled(model, tmp_path, "cortex-m4")
    assert main(["profile", str(out), "--target", "cortex-m4", "--max-flash", "4K", "--max-latency", "1us"]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "flash" in err and "--max-flash" in err and "latency" in err
    assert main(["profile", str(out), "--target", "cortex-m4", "--max-ram", "1M"]) == 0


def test_target_memory_is_always_enforced(tmp_path, capsys):
    """A model whose arena exceeds the target's RAM (cortex-m0plus: 32 KB) fails, naming the target."""
    from graphs import Builder
    b = Builder()
    x = b.input((1, 64, 64, 3))
    g = b.output(b.conv(b.conv(x, 16, name="wide"), 2, name="narrow"))   # 64x64x16 int8 between: 64 KB
    (tmp_path / "w.tflite").write_bytes(write_tflite(g))
    np.savez(tmp_path / "c.npz", x=np.random.default_rng(0).standard_normal((4, 64, 64, 3)).astype(np.float32))
    code = main(["compile", str(tmp_path / "w.tflite"), "-o", str(tmp_path / "o"), "--quantize", "int8",
                 "--calibration", str(tmp_path / "c.npz"), "--emit", "tflite,c", "--target", "cortex-m0plus"])
    err = capsys.readouterr().err
    assert code == 3 and "cortex-m0plus RAM" in err


def test_compile_budget_on_weights(model, tmp_path, capsys):
    code = main(["compile", str(model / "m.tflite"), "-o", str(tmp_path / "o"), "--quantize", "int8",
                 "--calibration", str(model / "c.npz"), "--max-flash", "1K"])
    assert code == 3
    assert "--max-flash" in capsys.readouterr().err
    assert (tmp_path / "o" / "model.tflite").is_file()        # written, then the gate failed


def test_budget_parsing():
    assert parse_size("256K") == 262144 and parse_size("1M") == 1 << 20 and parse_size("64KB") == 65536
    assert parse_latency_ms("50ms") == 50 and parse_latency_ms("2s") == 2000 and parse_latency_ms("800us") == 0.8
    from edgec.errors import EdgecError
    with pytest.raises(EdgecError):
        parse_size("lots")
    assert issubclass(BudgetError, EdgecError) and BudgetError.exit_code == 3
