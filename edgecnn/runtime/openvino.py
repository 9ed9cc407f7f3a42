"""OpenVINO backend for IR (.xml + .bin) and, with runtime="openvino", .onnx files.

The inference precision is always set explicitly: on CPUs with AVX512-BF16/AMX, OpenVINO
silently computes in bf16 unless INFERENCE_PRECISION_HINT says f32, which changes the model's
probabilities. Default is f32; ``precision="bf16"`` opts into the faster, less exact path.
"""

from __future__ import annotations

import numpy as np

from edgecnn.runtime.base import Backend, RuntimeUnavailable, manifest_quant

PRECISIONS = {"f32": "f32", "fp32": "f32", "bf16": "bf16", "f16": "f16", "fp16": "f16"}


def _ov():
    try:
        import openvino
    except ImportError:
        raise RuntimeUnavailable("the OpenVINO backend needs OpenVINO: pip install edgecnn[openvino]") from None
    return openvino


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


class OpenVINOBackend(Backend):
    runtime = "openvino"
    device = "CPU"

    def _load(self) -> None:
        req = (self.requested_precision or "f32").lower()
        if req not in PRECISIONS:
            raise ValueError(f"OpenVINO precision must be one of f32, bf16, f16; got {self.requested_precision!r}")
        self.inference_precision_requested = PRECISIONS[req]
        ov = _ov()
        self.core = ov.Core()
        model = self.core.read_model(str(self.path))
        if len(model.inputs) != 1:
            raise ValueError(f"{self.path}: expected one input; got {len(model.inputs)}")
        config = {"INFERENCE_PRECISION_HINT": self.inference_precision_requested}
        if self.threads is not None:
            config["INFERENCE_NUM_THREADS"] = self.threads
        self.compiled = self.core.compile_model(model, self.device, config)
        self.request = self.compiled.create_infer_request()
        port = self.compiled.inputs[0]
        self.input_dtype = np.dtype(port.get_element_type().to_dtype())
        if self.input_dtype in (np.dtype(np.int8), np.dtype(np.uint8)):
            self.input_quant = manifest_quant(self.manifest, "input", self.path)
        out_type = np.dtype(self.compiled.outputs[0].get_element_type().to_dtype())
        if out_type in (np.dtype(np.int8), np.dtype(np.uint8)):
            self.output_quant = manifest_quant(self.manifest, "output", self.path)
        ps = port.get_partial_shape()
        self.model_input_size = ps[1].get_length() if ps[1].is_static else None
        self.fixed_batch = ps[0].get_length() if ps[0].is_static else None

    @property
    def inference_precision(self) -> str:
        """What the compiled model reports it computes in (read back, not what was asked)."""
        hint = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        return hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint)

    @property
    def num_threads(self) -> int:
        return int(self.compiled.get_property("INFERENCE_NUM_THREADS"))

    def info(self) -> dict:
        return {**super().info(), "inference_precision": self.inference_precision, "device": self.device}

    def _run(self, batch: np.ndarray) -> np.ndarray:
        self.request.infer({0: batch})
        return self.request.get_output_tensor(0).data.copy()

    def _close(self) -> None:
        self.request = None
        self.compiled = None
