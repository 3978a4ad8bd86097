"""The wheel carries what edgec reads at run time: kernels/, runtimes/, targets/ (as edgec/_data) and
the recipes, so `pip install .` works from any directory."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_the_data_folders(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                        "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    names = set(zipfile.ZipFile(next(tmp_path.glob("edgec-*.whl"))).namelist())
    for folder in ("kernels", "runtimes", "targets"):
        for f in (ROOT / folder).rglob("*"):
            if f.is_file() and "__pycache__" not in f.parts:
                assert f"edgec/_data/{f.relative_to(ROOT).as_posix()}" in names, f
    assert {f"edgec/recipes/{p.name}" for p in (ROOT / "compiler/edgec/recipes").glob("*.toml")} <= names
