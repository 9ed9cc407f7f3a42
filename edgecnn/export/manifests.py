"""The manifest of an exported artifact: edgecnn.manifest's common fields plus where it came from
(run, split, QAT), how it was made (tool versions, ops) and how it scored (filled in by verify)."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from edgecnn.manifest import new_manifest
from edgecnn.quantize.rundata import split_summary

_TOOLS = {
    "tflite": ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert"),
    "onnx": ("tensorflow", "tf-keras", "tensorflow-model-optimization", "tf2onnx", "onnx", "onnxruntime"),
    "openvino": ("tensorflow", "tf-keras", "tf2onnx", "onnx", "onnxruntime", "openvino"),
    "trt": ("tensorflow", "tf-keras", "tf2onnx", "onnx", "onnxruntime", "tensorrt"),
    "vela": ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "ethos-u-vela"),
}


def tool_versions(fmt: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for dist in _TOOLS.get(fmt, ()):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def portable_run_path(run: Path) -> str:
    """The run as the user named it from the project folder (runs/basic), never an absolute path:
    a shipped manifest must not carry the build machine's folders. Outside the working folder,
    only the run's name."""
    run, here = Path(run).resolve(), Path.cwd().resolve()
    return run.relative_to(here).as_posix() if run.is_relative_to(here) else run.name


def build_manifest(ctx, spec, extra: dict[str, Any]) -> dict[str, Any]:
    extra = dict(extra)
    inp = extra.pop("input", None) or {}
    out = extra.pop("output", None) or {}
    batch = ctx.fixed_batch
    shape = inp.get("shape") or [batch, ctx.input_size, ctx.input_size, 3]
    run = ctx.run
    source: dict[str, Any] = {"run": portable_run_path(run.path), "run_name": run.name, "model_file": "model.keras",
                              "split": split_summary(run)}
    if ctx.uses_qat(spec):
        qi = ctx.qat_info()
        source.update(model_file="qat/model.keras", qat={k: qi.get(k) for k in (
            "threshold", "val_balanced_accuracy", "epoch", "quantization", "float_ops")})
    m = new_manifest(model=ctx.model_name, fmt=spec.format, precision=spec.precision, input_shape=shape,
                     input_dtype=inp.get("dtype", "float32"), threshold=ctx.threshold(spec),
                     description=spec.description, source=source, compute=ctx.compute(), **extra)
    m["input"]["name"] = "patch"
    m["input"]["quantization"] = inp.get("quantization")
    m["output"]["shape"] = out.get("shape") or [shape[0], 2]
    m["output"]["dtype"] = out.get("dtype", "float32")
    m["output"]["quantization"] = out.get("quantization")
    m["tools"].update(tool_versions(spec.format))
    return m
