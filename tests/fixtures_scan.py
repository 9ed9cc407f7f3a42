"""Session fixtures for the scan tests: a real tissue mosaic and the runtime tests' tiny real
artifacts (tests/fixtures_runtime.py: basic_cnn fitted on real patches, converted by the real
TFLite converter), laid out as a release folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
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


@pytest.fixture(scope="session")
def patient_mosaic(idc_data):
    """``patient_mosaic("10253")``: that patient's rebuilt region (cached for the session)."""
    from edgecnn.data.mosaic import build_mosaic

    cache: dict = {}

    def get(patient: str):
        if patient not in cache:
            cache[patient] = build_mosaic(idc_data / patient)
        return cache[patient]

    return get


def densest_window(m, h: int = 1080, w: int = 1920):
    """The (h, w) window of a mosaic on the patch grid holding the most patches: a real full-HD field of view."""
    has = (m.label_mask[::50, ::50] >= 0).astype(np.int32)
    rows, cols = min(h // 50, has.shape[0]), min(w // 50, has.shape[1])
    integral = np.pad(has.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    counts = (integral[rows:, cols:] - integral[:-rows, cols:] - integral[rows:, :-cols] + integral[:-rows, :-cols])
    r, c = np.unravel_index(np.argmax(counts), counts.shape)
    return np.ascontiguousarray(m.image[50 * r:50 * r + h, 50 * c:50 * c + w])


def field_of_view(image, i: int, size=(360, 480), step: int = 50):
    """The i-th frame of a slide moving under the objective: a window stepping right and down."""
    h, w = size
    y = (i * step // 2) % max(1, image.shape[0] - h)
    x = (i * step) % max(1, image.shape[1] - w)
    return image[y:y + h, x:x + w].copy()


@pytest.fixture(scope="session")
def make_video(tmp_path_factory, mosaic):
    """``make_video(name, frames=None, n=8, fourcc="FFV1")`` → (path, frames): a real-tissue video
    written with cv2.VideoWriter (FFV1 is lossless, so decoded frames equal the ones written)."""
    cv2 = pytest.importorskip("cv2")
    folder = tmp_path_factory.mktemp("videos")

    def make(name: str, frames=None, n: int = 8, fourcc: str = "FFV1", fps: float = 10.0):
        frames = frames if frames is not None else [field_of_view(mosaic.image, i) for i in range(n)]
        h, w = frames[0].shape[:2]
        path = folder / name
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
        assert writer.isOpened(), f"OpenCV cannot write {fourcc} here"
        for f in frames:
            writer.write(np.ascontiguousarray(f[..., ::-1]))
        writer.release()
        return path, frames

    return make


def video_frames(path):
    """Every frame of a video file as RGB (OpenCV), to check what a sink wrote."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, a = cap.read()
        if not ok:
            break
        out.append(a[..., ::-1])
    cap.release()
    return out
