"""What one `export_run` call shares across its artifacts: the run, its data, loaded models and
the intermediate ONNX files (made once, reused by ONNX, OpenVINO and TensorRT)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.export.errors import ExportError
from edgecnn.quantize.rundata import RunData
from edgecnn.train.run import RunError, RunFolder

CALIB_SIZE = 300


class ExportContext:
    def __init__(self, run: RunFolder, out: Path, *, io: str = "float", batch: int | str | None = None,
                 data: Any = None, limit: int | None = None, calib_size: int = CALIB_SIZE, seed: int = 0,
                 console=None):
        self.run, self.out, self.io, self.seed, self.console = run, Path(out), io, seed, console
        self.batch = batch
        self.fixed_batch: int | None = batch if isinstance(batch, int) else None
        self.calib_size = calib_size
        self.data = RunData(run, data=data, limit=limit, seed=seed)
        info = run.model_info()
        self.model_name: str = info["model"]
        self.input_size: int = int(info["input_size"])
        self._float = self._qat = self._qat_info = None
        self._ref: dict[str, np.ndarray] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="edgecnn-export-")
        self.workdir = Path(self._tmp.name)
        self._onnx: dict[str, Path] = {}

    def close(self) -> None:
        self._tmp.cleanup()

    # models --------------------------------------------------------------------------------------
    def float_model(self):
        if self._float is None:
            self._float = self.run.load_model()
        return self._float

    def compute(self) -> dict[str, int]:
        """Multiply-adds per tile and parameters: the cost a device pays, the same for every format."""
        from edgecnn.models.macs import count_macs

        m = self.float_model()
        return {"macs_per_tile": count_macs(m), "params": int(m.count_params())}

    def has_qat(self) -> bool:
        """A finished QAT model (not one an interrupted quantize left without its model.json)."""
        return self.run.qat_ready()

    def qat_model(self):
        if self._qat is None:
            from edgecnn.quantize.scheme import load_qat_model

            try:
                self.run.require_qat_model()
            except RunError as e:
                raise RunError(f"{e}; or export a non-QAT precision (fp32, fp16, int8-ptq)") from None
            try:
                self._qat = load_qat_model(self.run.qat_model_path)
            except Exception as e:
                raise RunError(f"{self.run.qat_model_path}: cannot load the QAT model ({type(e).__name__}: {e}); "
                               f"rerun `edgecnn quantize {self.run.path}`") from e
        return self._qat

    def qat_info(self) -> dict[str, Any]:
        if self._qat_info is None:
            from edgecnn.fsutil import read_json

            p = self.run.qat_dir / "model.json"
            self._qat_info = read_json(p) if p.exists() else {}
        return self._qat_info

    def uses_qat(self, spec) -> bool:
        """Made from the QAT model: the QAT rows, and int8-trt when the run's QAT model is symmetric."""
        if spec.precision == "int8-trt":
            from edgecnn.export.onnx import trt_source

            return trt_source(self) == "qat"
        return spec.needs_qat

    def threshold(self, spec) -> float:
        if self.uses_qat(spec):
            return float(self.qat_info().get("threshold", self.run.threshold))
        return self.run.threshold

    # data ----------------------------------------------------------------------------------------
    def representative(self) -> np.ndarray:
        """A seeded draw of training patches (uint8) to calibrate post-training quantization."""
        if self.calib_size < 1:
            raise ExportError(f"the representative set is empty (calib_size={self.calib_size}); int8-ptq needs "
                              f"training patches to calibrate: use a calib_size of 200–500")
        train = self.data.part("train")
        if len(train) == 0:
            raise ExportError(f"{self.run.path}: the representative set is empty: no training patches found; "
                              "pass --data pointing at the data the run was trained on")
        rng = np.random.default_rng(self.seed)
        idx = np.sort(rng.choice(len(train), size=min(self.calib_size, len(train)), replace=False))
        return np.asarray(train.images[idx])

    def calibration_info(self, n: int) -> dict[str, Any]:
        return {"source": "training split patients", "n_patches": int(n), "seed": self.seed}

    def reference(self, part: str) -> np.ndarray:
        """The float Keras model's IDC probabilities on a split part (what agreement compares to)."""
        if part not in self._ref:
            from edgecnn.train.predict import predict_probs

            self._ref[part] = predict_probs(self.float_model(), self.data.part(part).images)
        return self._ref[part]

    # intermediate ONNX ---------------------------------------------------------------------------
    def onnx_path(self, kind: str) -> Path:
        """A finished ONNX file of ``kind`` (fp32, fp16, int8-ptq, int8-qat) in the work folder."""
        if kind not in self._onnx:
            from edgecnn.export.onnx import build_onnx

            dest = self.workdir / f"{self.model_name}-{kind}.onnx"
            build_onnx(self, kind, dest)
            self._onnx[kind] = dest
        return self._onnx[kind]
