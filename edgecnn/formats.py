"""The one table of export formats × precisions. Export, the runtime layer and the bench all
loop over it, so a new format is one row here plus one exporter and one backend module.
No TensorFlow here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FormatSpec:
    format: str          # --format value
    precision: str       # --precision value (canonical)
    suffix: str          # artifact file suffix
    runtime: str         # default backend name in edgecnn.runtime
    exporter: str        # "module:function" in edgecnn.export
    needs_qat: bool      # made from the run's QAT model
    needs_gpu: bool      # builder needs an NVIDIA GPU + TensorRT
    description: str

    @property
    def key(self) -> str:
        return f"{self.format}:{self.precision}"

    def filename(self, model: str) -> str:
        return f"{model}-{self.precision}{self.suffix}"


# Vela's output is a .tflite whose graph is one `ethos-u` custom operator: TensorFlow Lite Micro
# with the Ethos-U driver runs it, no CPU runtime does, so it is never discovered as a CPU artifact.
NPU_SUFFIX = "-vela.tflite"


def npu_only(path) -> bool:
    """A file only an NPU runs (Vela-compiled), which the CPU runtimes and the bench leave alone."""
    return str(path).lower().endswith(NPU_SUFFIX)


_F = FormatSpec
FORMATS: tuple[FormatSpec, ...] = (
    _F("tflite", "fp32", ".tflite", "litert", "edgecnn.export.tflite:export_tflite", False, False, "float32 TFLite"),
    _F("tflite", "fp16", ".tflite", "litert", "edgecnn.export.tflite:export_tflite", False, False, "float16 weights, float compute"),
    _F("tflite", "dynamic", ".tflite", "litert", "edgecnn.export.tflite:export_tflite", False, False, "int8 weights, float activations (dynamic range)"),
    _F("tflite", "int8-qat", ".tflite", "litert", "edgecnn.export.tflite:export_tflite", True, False, "full int8 from the QAT model"),
    _F("tflite", "int8-ptq", ".tflite", "litert", "edgecnn.export.tflite:export_tflite", False, False, "full int8 by post-training quantization"),
    _F("onnx", "fp32", ".onnx", "onnxruntime", "edgecnn.export.onnx:export_onnx", False, False, "float32 ONNX (tf2onnx)"),
    _F("onnx", "int8-ptq", ".onnx", "onnxruntime", "edgecnn.export.onnx:export_onnx", False, False, "int8 QDQ per-channel (onnxruntime quantize_static)"),
    _F("onnx", "int8-qat", ".onnx", "onnxruntime", "edgecnn.export.onnx:export_onnx", True, False, "QDQ ONNX from the QAT model (tf2onnx: UINT8 activations)"),
    _F("onnx", "int8-trt", ".onnx", "onnxruntime", "edgecnn.export.onnx:export_onnx", False, False,
       "TensorRT-ready symmetric INT8 QDQ (symmetric QAT model, else calibrated PTQ)"),
    _F("openvino", "fp32", ".xml", "openvino", "edgecnn.export.openvino:export_openvino", False, False, "OpenVINO IR from the fp32 ONNX"),
    _F("openvino", "int8-ptq", ".xml", "openvino", "edgecnn.export.openvino:export_openvino", False, False, "OpenVINO IR from the int8 QDQ ONNX"),
    _F("trt", "fp32", ".engine", "tensorrt", "edgecnn.export.tensorrt:export_engine", False, True, "TensorRT engine, fp32"),
    _F("trt", "fp16", ".engine", "tensorrt", "edgecnn.export.tensorrt:export_engine", False, True, "TensorRT engine, fp16"),
    _F("trt", "int8", ".engine", "tensorrt", "edgecnn.export.tensorrt:export_engine", False, True, "TensorRT engine, explicit int8 from the int8-trt ONNX"),
    _F("vela", "int8", NPU_SUFFIX, "ethos-u", "edgecnn.export.vela:export_vela", True, False,
       "Arm Ethos-U NPU: uint8-in/int8-out QAT TFLite compiled by Vela (runs on the NPU only)"),
)

# `--precision int8` means the format's best int8 path.
ALIASES = {
    ("tflite", "int8"): "int8-qat",
    ("onnx", "int8"): "int8-ptq",
    ("openvino", "int8"): "int8-ptq",
    ("trt", "int8-qat"): "int8",      # older name of the int8 engine
    ("trt", "int8-trt"): "int8",
    ("vela", "int8-qat"): "int8",
}

SUFFIX_RUNTIME = {".tflite": "litert", ".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt", ".xml": "openvino"}


def export_formats() -> tuple[FormatSpec, ...]:
    return FORMATS


def format_names() -> list[str]:
    return sorted({f.format for f in FORMATS})


def get_format(fmt: str, precision: str) -> FormatSpec:
    precision = ALIASES.get((fmt, precision), precision)
    for f in FORMATS:
        if f.format == fmt and f.precision == precision:
            return f
    known = ", ".join(f.key for f in FORMATS)
    raise ValueError(f"no export for format {fmt!r} at precision {precision!r}; known pairs: {known}")


def formats_for(fmt: str) -> list[FormatSpec]:
    if fmt == "all":
        return list(FORMATS)
    rows = [f for f in FORMATS if f.format == fmt]
    if not rows:
        raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(format_names())} or all")
    return rows
