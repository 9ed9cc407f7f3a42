import json

import pytest

from edgecnn.formats import ALIASES, FORMATS, SUFFIX_RUNTIME, formats_for, get_format
from edgecnn.manifest import ArtifactError, new_manifest, read_manifest, verify_artifact, write_manifest


@pytest.mark.parametrize("spec", FORMATS, ids=lambda s: s.key)
def test_every_format_row_is_consistent(spec):
    from edgecnn.formats import npu_only

    if npu_only(spec.filename("m")):      # compiled for an NPU: no CPU runtime claims it
        assert spec.runtime not in SUFFIX_RUNTIME.values()
    else:
        assert SUFFIX_RUNTIME[spec.suffix] == spec.runtime
    assert get_format(spec.format, spec.precision) is spec
    mod, func = spec.exporter.split(":")
    assert mod.startswith("edgecnn.export.") and func


def test_aliases_and_unknown_pairs():
    for (fmt, alias), precision in ALIASES.items():
        assert get_format(fmt, alias).precision == precision
    with pytest.raises(ValueError, match="known pairs"):
        get_format("tflite", "int4")
    with pytest.raises(ValueError, match="unknown format"):
        formats_for("coreml")
    assert len(formats_for("all")) == len(FORMATS)


def test_manifest_roundtrip_and_tamper(tmp_path):
    art = tmp_path / "m-fp32.tflite"
    art.write_bytes(b"model-bytes" * 100)
    write_manifest(art, new_manifest(model="basic_cnn", fmt="tflite", precision="fp32", input_shape=[None, 50, 50, 3],
                                     threshold=0.4))
    m = read_manifest(art)
    assert m["size_bytes"] == 1100 and m["threshold"] == 0.4 and m["file"] == art.name
    verify_artifact(art, m)
    art.write_bytes(b"model-bytes" * 99)  # truncated
    with pytest.raises(ArtifactError, match="truncated"):
        verify_artifact(art, m)


def test_manifest_missing_or_foreign(tmp_path):
    art = tmp_path / "x.onnx"
    art.write_bytes(b"x")
    with pytest.raises(ArtifactError, match="no manifest"):
        read_manifest(art)
    assert read_manifest(art, required=False) is None
    (tmp_path / "x.onnx.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ArtifactError, match="not an edgecnn manifest"):
        read_manifest(art)


def test_release_manifests_carry_no_build_machine_path():
    import json
    import re
    from pathlib import Path

    release = Path(__file__).resolve().parents[1] / "exported" / "release"
    texts = {f.name: f.read_text() for f in release.glob("*.json")}
    assert texts, f"no manifests in {release}"
    for name, text in texts.items():
        assert not re.search(r'"(/|[A-Za-z]:\\\\)[^"]*"', text), f"{name} holds an absolute path"
        doc = json.loads(text)
        if "source" in doc:
            assert doc["source"]["split"]["file"] == "split.json", name


def test_shipped_json_holds_no_build_machine_path():
    """Manifests and sidecars under exported/ travel to other machines: no absolute path in them."""
    from edgecnn.paths import project_root

    def strings(v):
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):
            for x in v.values():
                yield from strings(x)
        elif isinstance(v, list):
            for x in v:
                yield from strings(x)

    files = sorted((project_root() / "exported").rglob("*.json"))
    assert files
    for f in files:
        bad = [s for s in strings(json.loads(f.read_text())) if s.startswith(("/", "~")) or ":\\\\" in s]
        assert not bad, f"{f}: {bad}"
