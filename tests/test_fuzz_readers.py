"""Fuzzing the readers of files a device or a lab gets from elsewhere: each mutated input ends in
the reader's own clear error (naming the file) or a counted skip, never another exception.

About 600 cases here (``FUZZ_EXAMPLES`` per reader); ``EDGECNN_FUZZ_EXAMPLES=10000 pytest
tests/test_fuzz_readers.py`` (or ``make fuzz``) runs many more.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
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
