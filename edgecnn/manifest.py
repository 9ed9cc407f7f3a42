"""Artifact manifests: what a deployed model file is, how to feed it, and proof it is intact.

A manifest is ``<artifact file name>.json`` beside the artifact (``basic_cnn-int8-qat.tflite``
→ ``basic_cnn-int8-qat.tflite.json``). No TensorFlow here: the device reads these.
"""

from __future__ import annotations

import datetime as _dt
import platform
from pathlib import Path
from typing import Any

from edgecnn import CLASS_NAMES, __version__
from edgecnn.fsutil import read_json, sha256_file, write_json
from edgecnn.preprocess import PREPROCESSING

SCHEMA = "edgecnn.manifest/1"


class ArtifactError(RuntimeError):
    """An artifact or its manifest is missing, unreadable or does not match."""


def manifest_path(artifact: str | Path) -> Path:
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + ".json")


def artifact_files(artifact: str | Path) -> list[Path]:
    """The files that make up an artifact (OpenVINO IR is an .xml plus a .bin)."""
    artifact = Path(artifact)
    files = [artifact]
    if artifact.suffix == ".xml":
        files.append(artifact.with_suffix(".bin"))
    return files


def _digest(artifact: Path) -> tuple[str, int]:
    files = artifact_files(artifact)
    if len(files) == 1:
        return sha256_file(artifact), artifact.stat().st_size
    import hashlib

    h = hashlib.sha256()
    for f in files:
        h.update(sha256_file(f).encode())
    return h.hexdigest(), sum(f.stat().st_size for f in files)


def new_manifest(
    *,
    model: str,
    fmt: str,
    precision: str,
    input_shape: list,
    input_dtype: str = "float32",
    threshold: float = 0.5,
    **extra: Any,
) -> dict[str, Any]:
    """A manifest with the fields every artifact carries; exporters add the rest."""
    m: dict[str, Any] = {
        "schema": SCHEMA,
        "model": model,
        "format": fmt,
        "precision": precision,
        "input": {"shape": list(input_shape), "dtype": input_dtype, "layout": "NHWC", "quantization": None},
        "output": {"shape": [input_shape[0], 2], "dtype": "float32", "kind": "softmax", "quantization": None},
        "preprocessing": dict(PREPROCESSING),
        "class_names": list(CLASS_NAMES),
        "positive_class": 1,
        "threshold": float(threshold),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tools": {"edgecnn": __version__, "python": platform.python_version()},
    }
    m.update(extra)
    return m


def write_manifest(artifact: str | Path, manifest: dict[str, Any]) -> Path:
    """Fill in file name, sha256 and size from the artifact on disk and write atomically."""
    artifact = Path(artifact)
    digest, size = _digest(artifact)
    manifest = dict(manifest)
    manifest["file"] = artifact.name
    manifest["sha256"] = digest
    manifest["size_bytes"] = size
    return write_json(manifest_path(artifact), manifest)


def read_manifest(artifact: str | Path, required: bool = True) -> dict[str, Any] | None:
    mp = manifest_path(artifact)
    if not mp.exists():
        if required:
            raise ArtifactError(
                f"{artifact}: no manifest {mp.name} beside it. Artifacts made by `edgecnn export` carry one; "
                "re-export the model, or pass the artifact's preprocessing by hand."
            )
        return None
    try:
        m = read_json(mp)
    except ValueError as e:
        raise ArtifactError(f"{mp}: not valid JSON ({e}); re-export the artifact to rewrite it") from e
    if not isinstance(m, dict) or m.get("schema") != SCHEMA:
        raise ArtifactError(f"{mp}: not an edgecnn manifest (expected schema {SCHEMA!r})")
    _check_fields(m, mp)
    named = m.get("file")
    if named is not None and (not isinstance(named, str) or Path(named).name != named or named in ("", ".", "..")):
        # A manifest describes the file beside it; one that points elsewhere was not written by edgecnn.
        raise ArtifactError(f"{mp}: names the file {named!r}, outside its own folder; refused. "
                            "A manifest describes the artifact beside it: re-export the artifact")
    return m


_NUMBER = (int, float)


def _check_fields(m: dict[str, Any], mp: Path) -> None:
    """The fields the runtimes read, with the types they need: a hand-edited or damaged manifest is
    refused here, naming the field, instead of failing somewhere inside a backend."""
    def bad(field: str, want: str) -> ArtifactError:
        return ArtifactError(f"{mp}: field {field!r} must be {want}, not {m.get(field)!r}; re-export the artifact "
                             "(`edgecnn export`) or restore the manifest")

    for field in ("input", "output", "preprocessing"):
        if field in m and m[field] is not None and not isinstance(m[field], dict):
            raise bad(field, "an object")
    for field in ("input", "output"):
        part = m.get(field) or {}
        shape = part.get("shape")
        if shape is not None and not (isinstance(shape, list) and all(d is None or (isinstance(d, int) and
                                                                              not isinstance(d, bool) and d > 0)
                                                                     for d in shape)):
            raise ArtifactError(f"{mp}: {field}.shape must be a list of positive sizes or null, not {shape!r}")
        q = part.get("quantization")
        if q is not None and not (isinstance(q, dict) and isinstance(q.get("scale"), _NUMBER)
                                  and isinstance(q.get("zero_point"), int)):
            raise ArtifactError(f"{mp}: {field}.quantization must be null or {{scale, zero_point}}, not {q!r}")
        for key in ("dtype", "kind", "layout", "name"):
            if part.get(key) is not None and not isinstance(part[key], str):
                raise ArtifactError(f"{mp}: {field}.{key} must be text, not {part[key]!r}")
    pre = m.get("preprocessing") or {}
    for key in ("scale", "offset"):
        v = pre.get(key)
        if v is not None and not (isinstance(v, _NUMBER) and not isinstance(v, bool) and abs(v) < 1e6):
            raise ArtifactError(f"{mp}: preprocessing.{key} must be a number, not {v!r}")
    thr = m.get("threshold")
    if thr is not None and not (isinstance(thr, _NUMBER) and not isinstance(thr, bool) and 0.0 <= thr <= 1.0):
        raise bad("threshold", "a probability in [0, 1]")
    if m.get("positive_class", 1) not in (0, 1) or isinstance(m.get("positive_class"), bool):
        raise bad("positive_class", "0 or 1")
    for field in ("precision", "format", "model", "sha256", "file"):
        if m.get(field) is not None and not isinstance(m[field], str):
            raise bad(field, "text")
    if m.get("context") is not None and not isinstance(m["context"], dict):
        raise bad("context", "an object (`edgecnn context fit` writes it) or absent")


def verify_artifact(artifact: str | Path, manifest: dict[str, Any]) -> None:
    """Refuse a file whose sha256 differs from its manifest (tampered, truncated, swapped)."""
    artifact = Path(artifact)
    for f in artifact_files(artifact):
        if not f.exists():
            raise ArtifactError(f"{f}: file missing")
    digest, size = _digest(artifact)
    if digest != manifest.get("sha256"):
        raise ArtifactError(
            f"{artifact}: sha256 {digest[:12]}… does not match its manifest ({str(manifest.get('sha256'))[:12]}…, "
            f"{manifest.get('size_bytes')} bytes; file has {size}). The file was changed or truncated: "
            "re-export it, or pass verify=False / --no-verify to load it anyway."
        )
