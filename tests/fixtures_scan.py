"""Session fixtures for the scan tests: a real tissue mosaic and the runtime tests' tiny real
artifacts (tests/fixtures_runtime.py: basic_cnn fitted on real patches, converted by the real
TFLite converter), laid out as a release folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# 8863 is the mosaic patient with border patches (50x35, 41x50), so the edge cases are in it.
MOSAIC_PATIENT = "8863"


@pytest.fixture(scope="session")
def mosaic(idc_data):
    from edgecnn.data.mosaic import build_mosaic

    return build_mosaic(idc_data / MOSAIC_PATIENT)


@pytest.fixture(scope="session")
def scan_model(rt_artifacts) -> Path:
    """The int8 TFLite (int8 I/O), the kind of artifact the release model is."""
    return rt_artifacts["tflite_int8"]


@pytest.fixture(scope="session")
def scan_backend(scan_model):
    from edgecnn.runtime import load

    backend = load(scan_model, threads=2)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def release_dir(tmp_path_factory, rt_artifacts) -> Path:
    """A release folder like exported/release: an fp32 ONNX and the int8 TFLite, both with manifests."""
    from edgecnn.manifest import manifest_path

    out = tmp_path_factory.mktemp("release")
    for key in ("onnx_fp32", "tflite_int8"):
        src = rt_artifacts[key]
        shutil.copy2(src, out / src.name)
        shutil.copy2(manifest_path(src), manifest_path(out / src.name))
    return out
