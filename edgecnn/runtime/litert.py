"""LiteRT (TFLite) backend: ai_edge_litert, else tflite_runtime.

Never TensorFlow's tf.lite, even when TensorFlow is installed: this is the device layer, and a
device that ran .tflite files only through a 500 MB TensorFlow would hide a broken install.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from edgecnn.runtime.base import Backend, RuntimeUnavailable

INSTALL_HINT = ("running .tflite artifacts needs LiteRT, which is not installed here: "
                "pip install ai-edge-litert (or pip install 'edgecnn[edge]')")


def interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]
        return Interpreter
    except ImportError:
        raise RuntimeUnavailable(INSTALL_HINT) from None


def available() -> bool:
    return any(importlib.util.find_spec(m) is not None for m in ("ai_edge_litert", "tflite_runtime"))


class LiteRTBackend(Backend):
    runtime = "litert"

    def _load(self) -> None:
        if self.requested_precision not in (None, self.precision):
            raise ValueError(f"{self.path}: LiteRT runs the precision baked into the .tflite ({self.precision}); "
                             f"precision={self.requested_precision!r} is for OpenVINO — export another precision instead")
        from edgecnn.logfilter import quiet_native

        Interpreter = interpreter_class()
        with quiet_native():   # LiteRT's "Created TensorFlow Lite XNNPACK delegate" line, on every load
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=self.threads)
            self.interpreter.allocate_tensors()
        inp = self.interpreter.get_input_details()
        outs = self.interpreter.get_output_details()
        if len(inp) != 1 or len(outs) != 1:
            raise ValueError(f"{self.path}: expected one input and one output tensor; got {len(inp)} and {len(outs)}")
        self._in, self._out = inp[0], outs[0]
        self.input_dtype = np.dtype(self._in["dtype"])
        self.input_quant = _quant(self._in)
        self.output_quant = _quant(self._out)
        sig = self._in.get("shape_signature", self._in["shape"])
        self.model_input_size = int(self._in["shape"][1]) if int(sig[1]) > 0 else None
        # A -1 batch in the signature means the interpreter can be resized to any batch.
        self.fixed_batch = None if int(sig[0]) == -1 else int(self._in["shape"][0])
        self._batch = int(self._in["shape"][0])

    def _run(self, batch: np.ndarray) -> np.ndarray:
        if self.fixed_batch is None and batch.shape[0] != self._batch:
            self.interpreter.resize_tensor_input(self._in["index"], list(batch.shape), strict=True)
            self.interpreter.allocate_tensors()
            self._batch = batch.shape[0]
        self.interpreter.set_tensor(self._in["index"], batch)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out["index"])

    def _close(self) -> None:
        self.interpreter = None


def _quant(detail: dict) -> tuple[float, int] | None:
    if np.dtype(detail["dtype"]) not in (np.dtype(np.int8), np.dtype(np.uint8)):
        return None
    scale, zp = detail["quantization"]
    if not scale:
        raise ValueError(f"tensor {detail['name']!r} is {np.dtype(detail['dtype'])} without quantization parameters")
    return float(scale), int(zp)
