"""Run an exported artifact on the device: ``load(path)`` picks the backend from the file suffix
(edgecnn.formats.SUFFIX_RUNTIME) and its manifest, checks the sha256, and returns a Backend
whose ``predict(uint8_patches)`` gives IDC probabilities.

    from edgecnn.runtime import load
    with load("exported/release/basic_cnn-int8-qat.tflite", threads=2) as model:
        p = model.predict(patches)          # (N,) float32
        labels = model.predict_labels(patches)

Never imports TensorFlow (each backend imports only its own runtime package, lazily).
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

from edgecnn.formats import SUFFIX_RUNTIME, npu_only
from edgecnn.manifest import ArtifactError, new_manifest, read_manifest, verify_artifact
from edgecnn.runtime.base import Backend, RuntimeUnavailable

__all__ = ["load", "Backend", "RuntimeUnavailable", "ArtifactError", "RUNTIMES", "runtimes_for",
           "runtime_available", "canonical_runtime"]

# runtime name -> (module, class, package that must be importable)
RUNTIMES: dict[str, tuple[str, str, str]] = {
    "litert": ("edgecnn.runtime.litert", "LiteRTBackend", "ai_edge_litert"),
    "onnxruntime": ("edgecnn.runtime.ort", "OrtBackend", "onnxruntime"),
    "openvino": ("edgecnn.runtime.openvino", "OpenVINOBackend", "openvino"),
    "tensorrt": ("edgecnn.runtime.tensorrt", "TensorRTBackend", "tensorrt"),
}
_ALIASES = {"ort": "onnxruntime", "onnx": "onnxruntime", "tflite": "litert", "tflite_runtime": "litert",
            "ov": "openvino", "trt": "tensorrt"}
# Runtimes that can also read a suffix, beyond its default in SUFFIX_RUNTIME.
_ALSO_RUNS = {".onnx": ("openvino",)}
_SUFFIX_FORMAT = {".tflite": "tflite", ".onnx": "onnx", ".xml": "openvino", ".engine": "trt", ".plan": "trt"}


def canonical_runtime(name: str) -> str:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in RUNTIMES:
        raise ValueError(f"unknown runtime {name!r}; choose one of {', '.join(RUNTIMES)}")
    return key


def runtimes_for(path: str | Path) -> list[str]:
    """Every runtime that can run this file, its default first."""
    suffix = Path(path).suffix.lower()
    if npu_only(path):
        raise ValueError(f"{path}: compiled by Vela for an Arm Ethos-U NPU (one ethos-u custom operator): it runs under "
                         "TensorFlow Lite Micro with the Ethos-U driver, not on a CPU. On a CPU run the int8 TFLite "
                         "it came from (edgecnn export --format tflite --precision int8-qat)")
    if suffix not in SUFFIX_RUNTIME:
        raise ValueError(f"{path}: unknown artifact type {suffix or '(no suffix)'!r}; "
                         f"edgecnn runs {', '.join(sorted(SUFFIX_RUNTIME))} files made by `edgecnn export`")
    return [SUFFIX_RUNTIME[suffix], *_ALSO_RUNS.get(suffix, ())]


def runtime_available(runtime: str) -> bool:
    """Whether the runtime's Python package is importable here (checked without importing it)."""
    runtime = canonical_runtime(runtime)
    if runtime == "litert":
        from edgecnn.runtime.litert import available

        return available()
    return importlib.util.find_spec(RUNTIMES[runtime][2]) is not None


def _backend_class(runtime: str) -> type[Backend]:
    module, cls, _ = RUNTIMES[runtime]
    return getattr(importlib.import_module(module), cls)


def _default_manifest(path: Path) -> dict[str, Any]:
    m = new_manifest(model=path.stem, fmt=_SUFFIX_FORMAT[path.suffix.lower()], precision="unknown",
                     input_shape=[None, None, None, 3], threshold=0.5)
    m["note"] = "no manifest found; defaults used (preprocessing x = pixel / 255, threshold 0.5, no sha256 check)"
    return m


def load(path: str | Path, runtime: str | None = None, threads: int | None = None, verify: bool = True,
         precision: str | None = None, providers: Any = None, allow_no_manifest: bool = False) -> Backend:
    """Load an artifact on its runtime.

    runtime: None = the suffix's default (.tflite→litert, .onnx→onnxruntime, .xml→openvino,
        .engine/.plan→tensorrt); "openvino" also runs a .onnx.
    threads: intra-op threads (None = the runtime's default).
    verify: check the file's sha256 against its manifest first (False loads a changed file anyway).
    precision: OpenVINO inference precision "f32" (default) or "bf16"; other runtimes run the
        precision baked into the artifact.
    providers: ONNX Runtime execution providers (None = CUDA if available, then CPU).
    allow_no_manifest: run a file without a manifest using default preprocessing and threshold 0.5.
    """
    path = Path(path)
    allowed = runtimes_for(path)
    runtime = canonical_runtime(runtime) if runtime else allowed[0]
    if runtime not in allowed:
        raise ValueError(f"{path}: runtime {runtime!r} cannot run {path.suffix} files; use one of {', '.join(allowed)}")
    if path.is_dir() or not path.exists():
        raise ArtifactError(f"{path}: no such artifact file" + (" (it is a folder; pass one file in it)" if path.is_dir() else ""))
    if runtime == "tensorrt":
        from edgecnn.runtime.tensorrt import _trt

        _trt()  # fail with the install hint before reading anything else
    elif not runtime_available(runtime):
        hint = {"litert": "pip install ai-edge-litert", "onnxruntime": "pip install onnxruntime",
                "openvino": "pip install edgecnn[openvino]"}[runtime]
        raise RuntimeUnavailable(f"{path}: runtime {runtime!r} is not installed here: {hint}")
    try:
        manifest = read_manifest(path, required=not allow_no_manifest)
    except ArtifactError as e:
        if "no manifest" not in str(e):
            raise
        raise ArtifactError(f"{e} To run it with default preprocessing (pixel/255) and threshold 0.5 anyway, "
                            "pass allow_no_manifest=True (CLI: --allow-no-manifest).") from None
    if manifest is None:
        manifest = _default_manifest(path)
    elif verify:
        verify_artifact(path, manifest)
    if precision is not None and runtime != "openvino":
        precision_ok = precision == manifest.get("precision")
        if not precision_ok:
            raise ValueError(f"{path}: precision={precision!r} applies to the OpenVINO runtime only (f32 or bf16); "
                             f"{runtime} runs the artifact's own precision ({manifest.get('precision')})")
    return _backend_class(runtime)(path, manifest, threads=threads, precision=precision, providers=providers)
