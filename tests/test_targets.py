"""Targets are data: every file loads, inheritance merges, and the CLI lists them."""
import json

import pytest

from edgec.cli import main
from edgec.errors import EdgecError
from edgec.targets import list_targets, load_target

EXPECTED = {"cortex-m0plus", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55", "cortex-a53", "cortex-a76", "host"}


def test_all_targets_load_with_their_facts():
    ts = {t.name: t for t in list_targets()}
    assert EXPECTED <= set(ts)
    for name, t in ts.items():
        assert t.kernels[-1] == "ref", name
        if not t.is_host:
            assert t.clock_hz and t.cycles and t.emulator, name
            assert t.memory_bytes("ram"), name
    m4 = ts["cortex-m4"]
    assert m4.clock_hz == 168_000_000 and m4.memory_bytes("flash") == 1 << 20
    assert m4.memory_bytes("ram") == 192 * 1024 and m4.kernels[0] == "cmsis"
    assert m4.toolchain["cc"] == "arm-none-eabi-gcc"     # inherited from cortex-m.toml
    assert ts["cortex-m7"].memory_bytes("ram") >= 320 * 1024
    assert ts["cortex-a76"].kernels[0] == "neon"


def test_inheritance_deep_merges(tmp_path):
    (tmp_path / "base.toml").write_text('kernels = ["ref"]\n[toolchain]\ncc = "x-gcc"\ncflags = ["-O2"]\n')
    (tmp_path / "child.toml").write_text('name = "child"\ninherits = "base"\nisa = "armv7e-m"\n'
                                         '[toolchain]\ncflags = ["-O3"]\n')
    t = load_target("child", tmp_path)
    assert t.toolchain == {"cc": "x-gcc", "cflags": ["-O3"]} and t.kernels == ("ref",)
    (tmp_path / "loop.toml").write_text('name = "loop"\ninherits = "loop"\nisa = "x"\n')
    with pytest.raises(EdgecError, match="cycle"):
        load_target("loop", tmp_path)


def test_unknown_target_lists_known_ones():
    with pytest.raises(EdgecError, match="cortex-m4"):
        load_target("cortex-z9")


def test_targets_command(capsys):
    assert main(["targets", "--json"]) == 0
    names = {t["name"] for t in json.loads(capsys.readouterr().out)}
    assert EXPECTED <= names
    assert main(["targets"]) == 0
    assert "cortex-m7" in capsys.readouterr().out
