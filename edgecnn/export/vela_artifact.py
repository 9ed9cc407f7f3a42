"""An Ethos-U file from a shipped full-integer TFLite, for when its training run is not at hand
(a release taken from the clone, or someone else's int8 model with an edgecnn manifest).

A full-integer TFLite with float I/O differs from its integer-I/O twin only in the QUANTIZE that
takes the float pixels in and the DEQUANTIZE that gives the scores out. TFLite's own rewrite (the
one its converter applies for ``inference_input_type``) replaces them with uint8 pixels in and int8
scores out; the weights and every other operator stay as they are. So the NPU file holds the
shipped model itself, and its check compares labels with the shipped file on the same patients.

    edgecnn export exported/release/basic_cnn-int8-qat.tflite --format vela --data idc --data idc-more
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from edgecnn.export.errors import ExportError
from edgecnn.fsutil import write_bytes

_REWRITE = "float I/O replaced by uint8 pixels in, int8 scores out (TFLite modify_model_io_type); weights unchanged"
_KEEP_OUT = ("file", "sha256", "size_bytes", "metrics", "created", "ops", "description", "check_with")


def integer_io(content: bytes) -> bytes:
    """The same full-integer graph with uint8 pixels in and int8 scores out."""
    from edgecnn._tf import tf

    try:
        from tensorflow.lite.python.util import modify_model_io_type

        return bytes(modify_model_io_type(content, tf.uint8, tf.int8))
    except (ValueError, RuntimeError) as e:
        raise ExportError(f"cannot give this graph integer I/O ({e}); it needs int8 quantized input and output") from e


def source_manifest(artifact: Path) -> dict[str, Any]:
    """The artifact's manifest, sha256-checked, refused unless it is a full-integer TFLite."""
    from edgecnn.manifest import read_manifest, verify_artifact

    if not artifact.is_file() or artifact.suffix != ".tflite":
        raise ExportError(f"{artifact}: --format vela from a file needs an int8 TFLite artifact "
                          "(e.g. exported/release/basic_cnn-int8-qat.tflite); for other formats give a RUN folder")
    m = read_manifest(artifact)
    verify_artifact(artifact, m)
    if not (str(m.get("precision", "")).startswith("int8") and m.get("integer_only")):
        raise ExportError(f"{artifact.name}: a {m.get('precision')} TFLite with float operators cannot run on an "
                          "integer-only NPU; use the int8-qat or int8-ptq TFLite")
    return m


def vela_from_artifact(artifact: str | Path, data: str, out: str | Path | None = None, force: bool = False,
                       limit: int | None = None, progress: bool = True):
    """Compile ``artifact`` for an Ethos-U55 and score its integer twin on the artifact's split;
    returns ``ExportResults`` like ``export_run`` (one manifest)."""
    from edgecnn.export.api import ExportResults, publish, staging
    from edgecnn.export.vela import compile_vela, preflight
    from edgecnn.formats import get_format
    from edgecnn.manifest import read_manifest, write_manifest

    artifact = Path(artifact)
    src = source_manifest(artifact)
    preflight()
    if not data:
        raise ExportError("--data is needed: the NPU file is scored on the artifact's validation and test patients")
    results = ExportResults()
    results.out = Path(out) if out is not None else artifact.parent
    name = get_format("vela", "int8").filename(src["model"])
    if not force and (results.out / name).exists():
        raise ExportError(f"{results.out / name} already exists; add --force to overwrite, or choose another --out folder")
    with staging(results.out) as stage:
        work = stage / "work"   # publish moves the stage's own files only, so the twin stays behind
        twin, twin_m = _integer_twin(artifact, src, work)
        report = compile_vela(twin, stage / name, workdir=work)
        metrics = _score(artifact, src, twin, data, limit, progress)
        write_manifest(stage / name, _vela_manifest(artifact, src, twin_m, report, metrics))
        publish(stage, results.out)
    results.append(read_manifest(results.out / name))
    return results


def _integer_twin(artifact: Path, src: dict[str, Any], work: Path) -> tuple[Path, dict[str, Any]]:
    """The uint8-in/int8-out TFLite Vela compiles, with a manifest so the CPU runtime can score it."""
    from edgecnn.export.tflite import inspect_ops, io_details
    from edgecnn.manifest import write_manifest

    content = artifact.read_bytes()
    if src.get("io") != "uint8-int8":
        content = integer_io(content)
    twin = work / f"{artifact.stem}-uint8-int8.tflite"
    write_bytes(twin, content)
    m = {k: v for k, v in src.items() if k not in _KEEP_OUT and k != "context"}
    details, ops = io_details(content), inspect_ops(content)
    m["input"] = {**src["input"], **details["input"]}
    m["output"] = {**src["output"], **details["output"]}
    m.update(io="uint8-int8", ops=ops["ops"], integer_only=ops["integer_only"])
    write_manifest(twin, m)
    return twin, m


def _score(artifact: Path, src: dict[str, Any], twin: Path, data: str, limit: int | None, progress: bool) -> dict[str, Any]:
    """Metrics of the integer twin on the artifact's own split, and its agreement with the artifact."""
    import numpy as np

    from edgecnn.data import load_patches
    from edgecnn.export.verify import KEPT_METRICS, predict_artifact
    from edgecnn.metrics import agreement, binary_metrics
    from edgecnn.train.evaluate import select_part

    split = artifact.parent / (src.get("source", {}).get("split") or {}).get("file", "split.json")
    patches = load_patches(data, progress=progress)
    thr = float(src["threshold"])
    out: dict[str, Any] = {}
    for part in ("val", "test"):
        sel = select_part(patches, split, part)
        images = np.ascontiguousarray(sel.images[:limit] if limit else sel.images)
        labels = sel.labels[:limit] if limit else sel.labels
        p, ref = predict_artifact(twin, images), predict_artifact(artifact, images)
        m = {k: v for k, v in binary_metrics(labels, p, thr).items() if k in KEPT_METRICS}
        out[part] = {**m, "n_patients": len(set(np.asarray(sel.patients[:len(labels)]).tolist()))}
        same = agreement(ref, p, thr)
        out.setdefault("agreement", {})[part] = {
            "agreement": same["agreement"], "max_abs_dp": same["max_abs_dp"],
            "reference": f"{artifact.name} (the file it was compiled from)", "reference_threshold": thr}
    out["agreement"] = {**out["agreement"]["test"], "by_part": out["agreement"]}
    return out


def _vela_manifest(artifact: Path, src: dict[str, Any], twin_m: dict[str, Any], report: dict[str, Any],
                   metrics: dict[str, Any]) -> dict[str, Any]:
    from edgecnn.export.manifests import tool_versions
    from edgecnn.formats import get_format

    m = {k: v for k, v in twin_m.items()}
    # Vela compiles one tile at a time (fixed shapes); the microcontroller feeds it batch 1.
    m["input"] = {**m["input"], "shape": [1, *m["input"]["shape"][1:]]}
    m["output"] = {**m["output"], "shape": [1, *m["output"]["shape"][1:]]}
    m.update(format="vela", precision="int8", description=get_format("vela", "int8").description,
             created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), vela=report, metrics=metrics,
             runs_on="Arm Ethos-U NPU: TensorFlow Lite Micro with the Ethos-U driver (not a CPU runtime)")
    m["source"] = {**src.get("source", {}), "artifact": {"file": artifact.name, "sha256": src["sha256"], "rewrite": _REWRITE}}
    m["tools"] = {**src.get("tools", {}), **tool_versions("vela")}
    return m
