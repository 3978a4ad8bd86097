"""Copies the repository's data folders (C kernels, runtimes, targets) into the package when a wheel
is built, so an installed edgec finds them as edgec/_data/ (see compiler/edgec/paths.py)."""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA = ("kernels", "runtimes", "targets")


class build_py_with_data(build_py):
    def run(self):
        super().run()
        root = Path(__file__).resolve().parent
        for name in DATA:
            src = root / name
            if src.is_dir():
                dest = Path(self.build_lib) / "edgec" / "_data" / name
                shutil.rmtree(dest, ignore_errors=True)
                shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "*.o"))


setup(cmdclass={"build_py": build_py_with_data})
