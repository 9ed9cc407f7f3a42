"""ONNX Runtime backend (module named ort.py so it never shadows the onnxruntime package).

Providers: CPU always; CUDA when onnxruntime-gpu sees a GPU and ``providers`` is None ("auto").
The TensorRT execution provider is used only when asked (it builds an engine on first run).
"""

from __future__ import annotations

import numpy as np

from edgecnn.manifest import ArtifactError
from edgecnn.runtime.base import Backend, RuntimeUnavailable, manifest_quant

_SHORT = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}
_DTYPES = {"tensor(float)": np.float32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
           "tensor(float16)": np.float16}


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeUnavailable(
            "running .onnx artifacts needs ONNX Runtime: pip install onnxruntime (or pip install edgecnn[edge])"
        ) from None
    return onnxruntime


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


def resolve_providers(providers, available_eps: list[str]) -> list[str]:
    """``None``/"auto" → CUDA (if present) then CPU; else the asked list, short names allowed."""
    if providers is None or providers == "auto":
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available_eps]
    if isinstance(providers, str):
        providers = [p.strip() for p in providers.split(",") if p.strip()]
    out = []
    for p in providers:
        full = _SHORT.get(p.lower(), p) if isinstance(p, str) else p
        if full not in available_eps:
            raise ValueError(f"ONNX Runtime provider {p!r} is not available here; available: {', '.join(available_eps)}"
                             " (CUDA/TensorRT need onnxruntime-gpu and an NVIDIA GPU)")
        out.append(full)
    if "CPUExecutionProvider" not in out:
        out.append("CPUExecutionProvider")  # fallback for ops the accelerator lacks
    return out


class OrtBackend(Backend):
    runtime = "onnxruntime"

    def _load(self) -> None:
        if self.requested_precision not in (None, self.precision):
            raise ValueError(f"{self.path}: ONNX Runtime runs the precision baked into the .onnx ({self.precision}); "
                             f"precision={self.requested_precision!r} is for OpenVINO (runtime='openvino')")
        ort = _ort()
        so = ort.SessionOptions()
        if self.threads is not None:
            so.intra_op_num_threads = self.threads
        # One model, one request at a time: parallelism belongs inside the ops.
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        self.provider_list = resolve_providers(self.providers, ort.get_available_providers())
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=so, providers=self.provider_list)
        except Exception as e:  # noqa: BLE001 — ORT's own exception types derive from Exception only
            # e.g. a truncated file, an unknown op, or external data that leaves the model's folder.
            raise ArtifactError(f"{self.path}: ONNX Runtime cannot load it: {e}") from e
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ValueError(f"{self.path}: expected one input; got {len(inputs)}")
        self._in_name = inputs[0].name
        self._out_name = outputs[0].name
        try:
            self.input_dtype = np.dtype(_DTYPES[inputs[0].type])
        except KeyError:
            raise ValueError(f"{self.path}: unsupported input type {inputs[0].type}") from None
        if self.input_dtype in (np.dtype(np.int8), np.dtype(np.uint8)):
            self.input_quant = manifest_quant(self.manifest, "input", self.path)
        if outputs[0].type in ("tensor(int8)", "tensor(uint8)"):
            self.output_quant = manifest_quant(self.manifest, "output", self.path)
        shape = inputs[0].shape
        self.model_input_size = shape[1] if isinstance(shape[1], int) else None
        self.fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self._out_name], {self._in_name: batch})[0]

    def info(self) -> dict:
        return {**super().info(), "providers": self.session.get_providers()}

    def _close(self) -> None:
        self.session = None
