"""Fuzzing the readers of files a device or a lab gets from elsewhere: each mutated input ends in
the reader's own clear error (naming the file) or a counted skip, never another exception.

About 900 cases here (``FUZZ_EXAMPLES`` per reader, nine readers); ``EDGECNN_FUZZ_EXAMPLES=10000
pytest tests/test_fuzz_readers.py`` (or ``make fuzz``) runs many more, and
``--hypothesis-show-statistics`` shows how deep the cases got (read to the end, which error).
"""

from __future__ import annotations

import functools
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

FUZZ_EXAMPLES = int(os.environ.get("EDGECNN_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
RELEASE = Path(__file__).resolve().parents[1] / "exported" / "release"

json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
                           | st.text(max_size=12),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=10)


def mutate(doc: dict, data) -> dict:
    """Delete, replace or add keys at the top level and one level down."""
    out = json.loads(json.dumps(doc))
    for _ in range(data.draw(st.integers(1, 4))):
        target = out
        nested = [k for k, v in out.items() if isinstance(v, dict)]
        if nested and data.draw(st.booleans()):
            target = out[data.draw(st.sampled_from(nested))]
        keys = list(target) or ["x"]
        key = data.draw(st.sampled_from(keys + ["new"]))
        action = data.draw(st.sampled_from(["delete", "replace"]))
        if action == "delete":
            target.pop(key, None)
        else:
            target[key] = data.draw(json_values)
    return out


@FUZZ
@given(data=st.data())
def test_manifest(tmp_path_factory, data):
    from edgecnn.manifest import ArtifactError, manifest_path
    from edgecnn.runtime import load

    folder = tmp_path_factory.mktemp("m")
    art = folder / "basic_cnn-int8-qat.tflite"
    art.write_bytes((RELEASE / art.name).read_bytes())
    doc = json.loads(manifest_path(RELEASE / art.name).read_text())
    manifest_path(art).write_text(json.dumps(mutate(doc, data)))
    try:
        load(art).close()
    except (ArtifactError, ValueError, FileNotFoundError) as e:
        assert art.name in str(e), e


@FUZZ
@given(data=st.data())
def test_context_stage(data):
    from edgecnn.context import ContextError, stage_from_dict
    from edgecnn.context.load import stage_of_manifest

    doc = json.loads((RELEASE / "basic_cnn-int8-qat.tflite.json").read_text())["context"]
    try:
        stage = stage_from_dict(mutate(doc, data), "m.json")
        stage.field_probs(np.random.default_rng(0).random((5, 7)))
    except ContextError as e:
        assert "m.json" in str(e) or "coefficients" in str(e) or "stride" in str(e), e
    try:
        stage_of_manifest({"context": data.draw(json_values)}, "m.json")
    except ContextError as e:
        assert "m.json" in str(e), e


@FUZZ
@given(data=st.data())
def test_split(tmp_path_factory, data):
    from edgecnn.data.layout import DataError
    from edgecnn.data.split import Split

    doc = json.loads((RELEASE / "split.json").read_text())
    doc = {k: (v[:5] if isinstance(v, list) else v) for k, v in doc.items()}
    path = tmp_path_factory.mktemp("s") / "split.json"
    path.write_text(json.dumps(mutate(doc, data)))
    try:
        Split.load(path)
    except DataError as e:
        assert "split" in str(e), e


@FUZZ
@given(data=st.data())
def test_device_profile(tmp_path_factory, data):
    from edgecnn.scan.tune import load_profile, machine_key

    doc = {"version": 1, "machine": machine_key(),
           "choice": {"artifact": "basic_cnn-int8-qat.tflite", "runtime": "litert", "threads": 2, "batch_size": 256}}
    path = tmp_path_factory.mktemp("p") / "profile.json"
    path.write_text(json.dumps(mutate(doc, data)))
    prof = load_profile(path)   # a damaged profile is ignored with a log line: None, never an exception
    assert prof is None or isinstance(prof, dict)


def _png_bytes() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    rgb = (np.random.default_rng(0).random((50, 50, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


PNG = _png_bytes()
png_mutations = st.one_of(
    st.integers(0, len(PNG)).map(lambda n: PNG[:n]),                                   # truncated
    st.lists(st.tuples(st.integers(0, len(PNG) - 1), st.integers(0, 255)), min_size=1, max_size=8)
    .map(lambda flips: bytes(b if i not in dict(flips) else dict(flips)[i] for i, b in enumerate(PNG))),
    st.binary(max_size=200),
)


@FUZZ
@given(blob=png_mutations)
def test_patch_decoder(blob):
    from edgecnn.data.decode import decode_patch

    d = decode_patch(blob)
    assert (d.image is None) == (d.reason is not None or d.dropped)
    if d.image is not None:
        assert d.image.shape == (50, 50, 3) and d.image.dtype == np.uint8


@FUZZ
@given(blob=png_mutations)
def test_frame_reader(tmp_path_factory, blob):
    from edgecnn.scan.image import ImageError, read_image

    path = tmp_path_factory.mktemp("f") / "frame.png"
    path.write_bytes(blob)
    try:
        a = read_image(path)
        assert a.ndim == 3 and a.shape[2] == 3
    except ImageError as e:
        assert "frame.png" in str(e), e


# --- slides, videos, data zips ------------------------------------------------------------------
# Byte-level mutations of a real small file of each kind: truncated, a few bytes overwritten, or a
# run of bytes overwritten near the start (where the headers and directories are).

def byte_mutations(blob: bytes, head: int = 4096) -> st.SearchStrategy[bytes]:
    def overwrite(edits) -> bytes:
        b = bytearray(blob)
        for i, v in edits:
            b[i % len(b)] = v
        return bytes(b)

    def splice(args) -> bytes:
        at, junk = args
        return blob[:at] + junk + blob[at + len(junk):]

    n = len(blob)
    return st.one_of(
        st.integers(0, n).map(lambda k: blob[:k]),                                                # truncated
        st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, 255)), min_size=1, max_size=12).map(overwrite),
        st.lists(st.tuples(st.integers(0, min(head, n) - 1), st.integers(0, 255)), min_size=1, max_size=6)
        .map(overwrite),                                                                         # in the headers
        st.tuples(st.integers(0, n - 1), st.binary(min_size=1, max_size=64)).map(splice),
    )


ROOT = Path(__file__).resolve().parents[1]


def _field(h: int, w: int) -> np.ndarray:
    from PIL import Image

    with Image.open(ROOT / "examples" / "field-14082.png") as im:
        return np.asarray(im.convert("RGB"))[300:300 + h, 600:600 + w].copy()


@functools.cache
def _pyramid_tif() -> bytes:
    """A 420×300 crop of the example field as a tiled (128 px) pyramidal TIFF at 4 µm/px, ~100 KB.
    (Cached functions, not fixtures: hypothesis prints a failing case's arguments.)"""
    import tempfile

    from edgecnn.scan.bigimage import write_pyramid

    with tempfile.TemporaryDirectory() as d:
        return write_pyramid(_field(300, 420), Path(d) / "s.tif", mpp=4.0, tile=128).read_bytes()


@FUZZ
@given(data=st.data())
def test_tiled_pyramidal_tiff(tmp_path_factory, data):
    """A tiled pyramidal TIFF (OpenSlide's generic-tiff, or tifffile when OpenSlide declines it),
    opened and read band by band as a slide scan does."""
    pytest.importorskip("tifffile")
    pytest.importorskip("openslide")
    from edgecnn.scan.image import ImageError
    from edgecnn.scan.slide import SlideError, open_slide

    path = tmp_path_factory.mktemp("t") / "slide.tif"
    path.write_bytes(data.draw(byte_mutations(_pyramid_tif())))
    try:
        reader = open_slide(path, mpp=data.draw(st.sampled_from([None, 4.0])))
        try:
            for _, band in reader.bands(100):
                assert band.ndim == 3 and band.shape[2] == 3 and band.dtype == np.uint8
        finally:
            reader.close()
        event(f"read to the end by {reader.kind}")       # --hypothesis-show-statistics
    except (SlideError, ImageError) as e:
        event(f"{type(e).__name__}: {str(e).partition(': ')[2][:30]}")
        assert "slide.tif" in str(e), e


@functools.cache
def _video(suffix: str) -> bytes:
    """Six 128×96 frames of the example field panning: mp4 (MPEG-4 part 2) or avi (MJPG)."""
    import tempfile

    import cv2

    fourcc = {".mp4": "mp4v", ".avi": "MJPG"}[suffix]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"v{suffix}"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10.0, (128, 96))
        for i in range(6):
            writer.write(np.ascontiguousarray(np.roll(_field(96, 128), 8 * i, axis=1)[..., ::-1]))
        writer.release()
        return path.read_bytes()


@FUZZ
@given(data=st.data())
def test_video_file(tmp_path_factory, data):
    """An mp4 or avi read to its end by the scan's video source: a file OpenCV cannot open is a
    SourceError naming it; a frame it cannot use is a Frame with an error (counted); a stream that
    ends early is a counted stop — never an exception mid-loop."""
    pytest.importorskip("cv2")
    from edgecnn.scan.sources import SourceError, VideoFile

    suffix = data.draw(st.sampled_from([".avi", ".mp4"]))
    path = tmp_path_factory.mktemp("v") / f"clip{suffix}"
    path.write_bytes(data.draw(byte_mutations(_video(suffix))))
    try:
        src = VideoFile(path)
    except SourceError as e:
        event("not opened")
        assert f"clip{suffix}" in str(e), e
        return
    with src:
        frames = list(src)
    event(f"{suffix}: {len(frames)} frames{', stopped: ' + src.stopped_by[:9] if src.stopped_by else ''}")
    assert src.read == len(frames) and src.failed == sum(f.error is not None for f in frames)
    for f in frames:
        assert (f.image is None) == (f.error is not None)
        if f.image is not None:
            assert f.image.ndim == 3 and f.image.shape[2] == 3 and f.image.dtype == np.uint8


@functools.cache
def _kaggle_zip(root: Path) -> bytes:
    """Three real patches per class of two patients in the Kaggle layout, zipped (deflate)."""
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for pid in sorted(p.name for p in root.iterdir())[:2]:
            for label in ("0", "1"):
                for p in sorted((root / pid / label).glob("*.png"))[:3]:
                    zf.write(p, p.relative_to(root).as_posix())
    return buf.getvalue()


@FUZZ
@given(data=st.data())
def test_kaggle_zip(tmp_path_factory, idc_data, data):
    """The Kaggle layout in a zip, through ``load_patches``: a DataError naming the zip, or the
    patches it can read with every other member a counted skip naming it."""
    from edgecnn.data import load_patches
    from edgecnn.data.layout import DataError

    blob = _kaggle_zip(idc_data)
    path = tmp_path_factory.mktemp("z") / "idc.zip"
    path.write_bytes(data.draw(byte_mutations(blob)))
    try:
        ps = load_patches(path, cache=False, workers=1)
    except DataError as e:
        event("DataError")
        assert "idc.zip" in str(e), e
        return
    r = ps.report
    event(f"loaded, {r['n_skipped']} skipped")
    assert len(ps) == r["n_patches"] > 0 and ps.images.shape[1:] == (50, 50, 3)
    assert r["n_skipped"] == len(r["skipped"]) and all(s["file"] and s["reason"] for s in r["skipped"])


def _overwrite(blob: bytes, edits: list[tuple[int, int]]) -> bytes:
    b = bytearray(blob)
    for i, v in edits:
        b[i] = v
    return bytes(b)


@pytest.mark.parametrize("edits", [[(38, 0)], [(166, 0)]], ids=["image-length-type", "zero-tile-length"])
def test_tiff_found_by_fuzzing(tmp_path, edits):
    """Cases fuzzing found: a zeroed tag type made tifffile's ImageLength a tuple (TypeError in
    TiffReader), a zeroed TileLength a ZeroDivisionError inside tifffile. Both are SlideErrors."""
    pytest.importorskip("tifffile")
    pytest.importorskip("openslide")
    from edgecnn.scan.slide import SlideError, open_slide

    path = tmp_path / "slide.tif"
    path.write_bytes(_overwrite(_pyramid_tif(), edits))
    with pytest.raises(SlideError, match=r"slide\.tif: (not a TIFF|truncated or corrupt|damaged TIFF)"):
        reader = open_slide(path, mpp=4.0)
        try:
            for _ in reader.bands(100):
                pass
        finally:
            reader.close()


def test_zip_found_by_fuzzing(tmp_path, idc_data):
    """A case fuzzing found: the UTF-8 flag set on a member whose name is not UTF-8 raised a
    UnicodeDecodeError out of load_patches; it is a counted skip naming the member."""
    from edgecnn.data import load_patches

    path = tmp_path / "idc.zip"
    path.write_bytes(_overwrite(_kaggle_zip(idc_data), [(7, 8), (27, 1)]))
    ps = load_patches(path, cache=False, workers=1)
    assert len(ps) == 11 and ps.report["n_skipped"] == 1
    assert "damaged zip member (UnicodeDecodeError" in ps.report["skipped"][0]["reason"]


def _damaged_tag(tifffile, tmp_path: Path, tag: str, value: int) -> Path:
    """The fuzzed TIFF with page 0's ``tag`` overwritten by ``value`` (4 bytes, in place)."""
    path = tmp_path / "slide.tif"
    path.write_bytes(_pyramid_tif())
    with tifffile.TiffFile(path) as tif:
        at = tif.pages[0].tags[tag].valueoffset
    raw = bytearray(path.read_bytes())
    raw[at:at + 4] = value.to_bytes(4, "little")
    path.write_bytes(bytes(raw))
    return path


def test_tiff_tile_size_that_aborted_openslide(tmp_path):
    """A case fuzzing found: page 0's TileLength damaged to 922,747,008 made OpenSlide allocate
    472 GB and GLib abort the whole process (SIGABRT, nothing to catch). check_tiles refuses the
    file from its tags first. Run in a child process, so a regression fails this test instead of
    killing the test run."""
    import subprocess
    import sys

    tifffile = pytest.importorskip("tifffile")
    pytest.importorskip("openslide")
    path = _damaged_tag(tifffile, tmp_path, "TileLength", 922_747_008)
    code = ("import sys\nfrom edgecnn.scan.slide import SlideError, open_slide\n"
            "try:\n    r = open_slide(sys.argv[1], mpp=4.0)\n    [b for _, b in r.bands(100)]\n"
            "except SlideError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                       env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"})
    assert r.returncode == 0, f"exit {r.returncode}: {r.stderr[-500:]}"
    assert "slide.tif: damaged TIFF: page 0 has 128×922747008 px tiles" in r.stdout, r.stdout


def test_tiff_size_that_needs_millions_of_tiles(tmp_path):
    """A case fuzzing found: ImageLength damaged to 3,053,453,612 on an uncompressed page that lists
    12 tiles; OpenSlide declines it, and tifffile then built tables for the 95 million tiles that
    size needs (the child was OOM-killed at 20 GB). Refused from the tags: 12 listed, 95M needed."""
    tifffile = pytest.importorskip("tifffile")
    pytest.importorskip("openslide")
    from edgecnn.scan.slide import SlideError, TiffReader

    path = _damaged_tag(tifffile, tmp_path, "ImageLength", 3_053_453_612)
    with pytest.raises(SlideError, match=r"slide\.tif: damaged TIFF: page 0 lists 12 tiles, .* needs 95,420,428"):
        TiffReader(path)
