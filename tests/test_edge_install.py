"""The device install: `pip install edgecnn[edge]` into a fresh venv has no TensorFlow, and
`edgecnn scan` runs there on a real mosaic with a real int8 TFLite artifact."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What pip prints when it cannot reach an index (no network, no local mirror).
_OFFLINE = ("Could not find a version that satisfies", "No matching distribution found",
            "Failed to establish a new connection", "Temporary failure in name resolution",
            "Network is unreachable", "ProxyError", "Max retries exceeded")


def _run(cmd: list, timeout: int = 900, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)


@pytest.fixture(scope="module")
def edge_venv(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("edge")
    # Install from a clean copy of the sources: building in the repo would leave build/ behind.
    src = tmp / "src"
    shutil.copytree(ROOT / "edgecnn", src / "edgecnn", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    venv = tmp / "venv"
    r = _run([sys.executable, "-m", "venv", venv], timeout=300)
    assert r.returncode == 0, r.stderr
    py = venv / "bin" / "python"
    r = _run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", f"{src}[edge]"])
    if r.returncode != 0:
        if any(s in r.stderr for s in _OFFLINE):
            pytest.skip(f"pip cannot reach a package index for the edge install: {r.stderr.strip().splitlines()[-1]}")
        pytest.fail(f"pip install edgecnn[edge] failed:\n{r.stderr[-3000:]}")
    return venv


@pytest.mark.slow
def test_edge_install_has_no_tensorflow(edge_venv):
    code = (
        "import importlib.util, sys\n"
        "import edgecnn, edgecnn.runtime, edgecnn.scan, edgecnn.scan.cli, edgecnn.data.mosaic, edgecnn.cli\n"
        "import edgecnn.context, edgecnn.context.cli, edgecnn.context.fit\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
        "assert importlib.util.find_spec('tensorflow') is None, 'tensorflow is installed'\n"
        "import ai_edge_litert, onnxruntime, numpy, PIL\n"
        "from edgecnn.runtime import runtime_available\n"
        "print(runtime_available('litert'), runtime_available('onnxruntime'))\n"
    )
    r = _run([edge_venv / "bin" / "python", "-c", code], timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True"]


@pytest.mark.slow
def test_edge_install_scans_a_mosaic(edge_venv, scan_model, idc_data, tmp_path):
    edgecnn = edge_venv / "bin" / "edgecnn"
    r = _run([edgecnn, "data", "mosaic", idc_data / "14082", "--out", tmp_path / "m.png"], timeout=300)
    assert r.returncode == 0, r.stderr
    r = _run([edgecnn, "scan", tmp_path / "m.png", "--model", scan_model, "--threads", "2",
              "--out", tmp_path / "out", "--json", tmp_path / "scan.json"], timeout=300)
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "scan.json").read_text())["images"][0]
    assert rec["tissue_tiles"] == 478 and rec["ms_per_frame"] > 0
    assert (tmp_path / "out" / "m.overlay.png").stat().st_size > 0
    # The release model carries a context stage: the device install runs it (numpy only).
    release = ROOT / "exported" / "release" / "basic_cnn-int8-qat.tflite"
    r = _run([edgecnn, "scan", tmp_path / "m.png", "--model", release, "--out", tmp_path / "out2",
              "--json", tmp_path / "ctx.json"], timeout=300)
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "ctx.json").read_text())["images"][0]
    assert rec["context"] and rec["tissue_tiles"] == 478
