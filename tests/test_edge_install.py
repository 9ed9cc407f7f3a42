"""The device install: a wheel built from the sources, installed with `[edge]` into a fresh venv,
has no TensorFlow; `edgecnn scan` runs there on a real mosaic with a real int8 TFLite artifact,
and with no --model it finds the release int8 TFLite the wheel carries (no source tree needed)."""

from __future__ import annotations

import json
import os
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


RELEASE_TFLITE = "basic_cnn-int8-qat.tflite"
MAX_WHEEL_BYTES = 1_500_000  # the code (~0.3 MB) and the release int8 TFLite (~0.6 MB zipped); no ONNX, no Keras


def _pip(py: Path, *args) -> None:
    r = _run([py, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"])
    if r.returncode != 0:
        if any(s in r.stderr for s in _OFFLINE):
            pytest.skip(f"pip cannot reach a package index for the edge install: {r.stderr.strip().splitlines()[-1]}")
        pytest.fail(f"pip {args[0]} failed:\n{r.stderr[-3000:]}")


@pytest.fixture(scope="module")
def edge_wheel(tmp_path_factory) -> Path:
    """The wheel, built from a clean copy of what the sdist holds (building in the repo would leave build/ behind)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT / "edgecnn", src / "edgecnn", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "LICENSE"):
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, src / name)
    (src / "exported" / "release").mkdir(parents=True)
    for name in (RELEASE_TFLITE, RELEASE_TFLITE + ".json"):
        shutil.copy2(ROOT / "exported" / "release" / name, src / "exported" / "release" / name)
    _pip(Path(sys.executable), "wheel", "--no-deps", "--wheel-dir", tmp / "dist", src)
    (wheel,) = (tmp / "dist").glob("edgecnn-*.whl")
    return wheel


@pytest.fixture(scope="module")
def edge_venv(edge_wheel, tmp_path_factory) -> Path:
    venv = tmp_path_factory.mktemp("edge") / "venv"
    r = _run([sys.executable, "-m", "venv", venv], timeout=300)
    assert r.returncode == 0, r.stderr
    _pip(venv / "bin" / "python", "install", f"{edge_wheel}[edge]")
    return venv


def _outside_source_env(tmp: Path) -> dict[str, str]:
    """No release folder or device profile from the environment; caches in ``tmp``."""
    env = {k: v for k, v in os.environ.items() if k not in ("EDGECNN_RELEASE_DIR", "EDGECNN_DEVICE_PROFILE",
                                                            "PYTHONPATH")}
    return env | {"EDGECNN_CACHE": str(tmp / "cache")}


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


@pytest.mark.slow
def test_wheel_carries_only_the_release_int8_tflite(edge_wheel):
    import zipfile

    size = edge_wheel.stat().st_size
    print(f"{edge_wheel.name}: {size} bytes")
    assert size < MAX_WHEEL_BYTES, size
    names = zipfile.ZipFile(edge_wheel).namelist()
    assert sorted(n for n in names if n.startswith("edgecnn/_models/")) == [
        f"edgecnn/_models/{RELEASE_TFLITE}", f"edgecnn/_models/{RELEASE_TFLITE}.json"]
    assert not [n for n in names if n.endswith((".onnx", ".keras", ".h5", ".npz"))]


@pytest.mark.slow
def test_wheel_install_scans_with_its_release_model(edge_venv, tmp_path):
    """`edgecnn scan IMAGE` with no --model, from a folder outside the source tree: the wheel's model,
    its manifest's sha256 verified on load (scan verifies unless --no-verify)."""
    work = tmp_path / "elsewhere"
    work.mkdir()
    shutil.copy2(ROOT / "examples" / "field-14082.png", work / "field.png")
    r = _run([edge_venv / "bin" / "edgecnn", "scan", "field.png", "--threads", "2", "--out", "out",
              "--json", "scan.json"], cwd=work, env=_outside_source_env(tmp_path) | {"COLUMNS": "400"}, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((work / "scan.json").read_text())
    model = Path(doc["model"])
    print(f"default model: {model}")
    assert model.name == RELEASE_TFLITE and model.parent.name == "_models" and model.parent.parent.name == "edgecnn"
    assert edge_venv in model.parents and ROOT not in model.parents
    assert f"model {model}" in r.stdout
    rec = doc["images"][0]
    assert rec["tissue_tiles"] > 0 and rec["context"]  # the manifest's context stage came along
    assert (work / "out" / "field.overlay.png").stat().st_size > 0
