"""report.html is self-contained and renders its plots in headless Chromium."""
import re
import shutil
import subprocess

import numpy as np
import pytest

from edgec.backends.tflite import write_tflite
from edgec.cli import main
from graphs import small_cnn
from toolchain import need

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic"]


def chromium():
    need("chromium")
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def report_html(tmp_path_factory):
    d = tmp_path_factory.mktemp("html")
    (d / "m.tflite").write_bytes(write_tflite(small_cnn()))
    rng = np.random.default_rng(0)
    np.savez(d / "c.npz", x=rng.standard_normal((20, 8, 8, 1)).astype(np.float32), y=rng.integers(0, 10, 20))
    assert main(["compile", str(d / "m.tflite"), "-o", str(d / "out"), "--quantize", "int8", "--calibration",
                 str(d / "c.npz"), "--emit", "tflite,c"]) == 0
    return d / "out" / "report.html"


def test_html_is_self_contained(report_html):
    text = report_html.read_text()
    assert "<script" not in text and not re.search(r'(src|href)="(https?:)?//', text)
    for chart in ("layer-cost", "layer-size", "arena-timeline", "pass-size"):
        assert f'id="{chart}"' in text


def test_html_renders_plots_in_chromium(report_html, tmp_path):
    exe = chromium()
    r = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
                        report_html.as_uri()], capture_output=True, text=True, timeout=120)
    dom = r.stdout
    assert "edgec report" in dom, r.stderr[-500:]
    assert len(re.findall(r'<rect class="bar"', dom)) >= 2 * 6       # cost and size bars, one per layer
    assert len(re.findall(r'<rect class="buf"', dom)) >= 2           # arena buffers
    png = tmp_path / "shot.png"
    subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", f"--screenshot={png}",
                    "--window-size=1000,1600", report_html.as_uri()], capture_output=True, timeout=120)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000     # a page with drawings, not blank
