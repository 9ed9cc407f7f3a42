"""The one Backend base class: input checks, preprocessing, quantized I/O scaling and batching
live here once; each runtime module only loads its model and runs one batch (``_run``).

No TensorFlow here (the device install has none).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.preprocess import OFFSET, SCALE


class RuntimeUnavailable(RuntimeError):
    """The Python package (or hardware) a backend needs is not installed here."""


_INT_RANGES = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255)}


class Backend:
    """A loaded artifact. Subclasses set ``runtime`` and implement ``_load``, ``_run``, ``_close``.

    ``_load`` must set ``self.input_dtype`` (numpy dtype the model takes), ``self.input_quant`` /
    ``self.output_quant`` (``(scale, zero_point)`` for integer tensors, else None),
    ``self.fixed_batch`` (int when the model only takes that batch size, else None),
    ``self.max_batch`` (largest batch a dynamic model takes, e.g. a TensorRT profile's max) and
    ``self.model_input_size`` (spatial size the model declares, or None when dynamic).
    ``_run(batch)`` takes an (n, S, S, 3) array of ``input_dtype`` and returns the raw (n, 2) output.
    """

    runtime: str = ""

    def __init__(self, path: str | Path, manifest: dict[str, Any], *, threads: int | None = None,
                 precision: str | None = None, providers: Any = None):
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer or None (runtime default); got {threads!r}")
        self.path = Path(path)
        self.manifest = manifest
        self.threads = threads
        self.requested_precision = precision
        self.providers = providers
        self.input_dtype = np.dtype(np.float32)
        self.input_quant: tuple[float, int] | None = None
        self.output_quant: tuple[float, int] | None = None
        self.fixed_batch: int | None = None
        self.max_batch: int | None = None
        self.model_input_size: int | None = None
        pre = manifest.get("preprocessing") or {}
        self._scale = np.float32(pre.get("scale", SCALE))
        self._offset = np.float32(pre.get("offset", OFFSET))
        self._positive = int(manifest.get("positive_class", 1))
        self._needs_softmax = (manifest.get("output") or {}).get("kind", "softmax") == "logits"
        t0 = time.perf_counter()
        self._load()
        self.load_time_s = time.perf_counter() - t0
        self.input_size = self._resolve_input_size()

    # --- subclass hooks -------------------------------------------------------------------
    def _load(self) -> None:
        raise NotImplementedError

    def _run(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _close(self) -> None:
        pass

    # --- public API -----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def precision(self) -> str:
        """The artifact's precision from its manifest (fp32, int8-ptq, ...)."""
        return str(self.manifest.get("precision", "unknown"))

    @property
    def threshold(self) -> float:
        return float(self.manifest.get("threshold", 0.5))

    def info(self) -> dict[str, Any]:
        """What was loaded and how; bench rows and `--json` outputs carry this."""
        return {
            "artifact": str(self.path), "runtime": self.runtime, "format": self.manifest.get("format"),
            "precision": self.precision, "threads": self.threads, "input_size": self.input_size,
            "input_dtype": self.input_dtype.name, "fixed_batch": self.fixed_batch,
            "load_s": self.load_time_s, "threshold": self.threshold,
        }

    def predict(self, patches: np.ndarray, batch_size: int = 64, tta: bool = False) -> np.ndarray:
        """IDC probabilities (N,) float32 for uint8 RGB patches N×S×S×3 (or one S×S×3 patch).

        ``tta``: the mean over the 8 dihedral views (edgecnn.tta), at 8× the cost.
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
        x = self._check(patches)
        if tta:
            from edgecnn.tta import tta_predict

            return tta_predict(lambda v: self._predict_checked(v, batch_size), x)
        return self._predict_checked(x, batch_size)

    def _predict_checked(self, x: np.ndarray, batch_size: int) -> np.ndarray:
        n = x.shape[0]
        out = np.empty(n, dtype=np.float32)
        step = self.fixed_batch or min(batch_size, self.max_batch or batch_size)
        for i in range(0, n, step):
            chunk = x[i:i + step]
            m = chunk.shape[0]
            if self.fixed_batch and m < self.fixed_batch:
                # A fixed-batch engine takes exactly its batch: pad, then drop the padding's rows.
                pad = np.zeros((self.fixed_batch - m, *chunk.shape[1:]), dtype=chunk.dtype)
                chunk = np.concatenate([chunk, pad])
            raw = self._run(self._to_input(chunk))
            out[i:i + m] = self._to_probs(raw)[:m, self._positive]
        return out

    def predict_labels(self, patches: np.ndarray, batch_size: int = 64, tta: bool = False) -> np.ndarray:
        """0/1 labels (N,) int8 at the manifest's threshold (IDC when p >= threshold)."""
        return (self.predict(patches, batch_size, tta=tta) >= self.threshold).astype(np.int8)

    def close(self) -> None:
        self._close()

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<{type(self).__name__} {self.name} runtime={self.runtime} precision={self.precision} "
                f"threads={self.threads} input={self.input_size}>")

    # --- shared machinery -------------------------------------------------------------------
    def _resolve_input_size(self) -> int:
        shape = (self.manifest.get("input") or {}).get("shape") or []
        declared = int(shape[1]) if len(shape) == 4 and shape[1] else None
        if declared and self.model_input_size and declared != self.model_input_size:
            raise ValueError(
                f"{self.path}: manifest says input {declared}×{declared} but the model takes "
                f"{self.model_input_size}×{self.model_input_size}; the manifest belongs to another file — re-export it")
        size = declared or self.model_input_size
        if not size:
            raise ValueError(f"{self.path}: input size unknown (dynamic in the model and missing from the manifest); "
                             "add input.shape [null, S, S, 3] to the manifest or re-export")
        return size

    def _check(self, patches: Any) -> np.ndarray:
        if not isinstance(patches, np.ndarray):
            raise ValueError(f"{self.name}: patches must be a numpy array of uint8 RGB pixels; "
                             f"got {type(patches).__name__}")
        s = self.input_size
        if patches.dtype != np.uint8:
            raise ValueError(
                f"{self.name}: patches must be uint8 RGB pixels (0–255); got dtype {patches.dtype}. "
                "Pass the raw pixels: the backend applies the model's preprocessing itself "
                "(for float data in [0, 1] use (x * 255).round().astype(np.uint8)).")
        if patches.ndim == 3:
            patches = patches[None]
        if patches.ndim != 4:
            raise ValueError(f"{self.name}: expected patches N×{s}×{s}×3 (or one {s}×{s}×3 patch); "
                             f"got a {patches.ndim}-D array of shape {patches.shape}")
        if patches.shape[-1] != 3:
            raise ValueError(f"{self.name}: expected 3 RGB channels last (N×{s}×{s}×3); got shape {patches.shape}. "
                             "Convert grey/RGBA images to RGB first.")
        if patches.shape[1:3] != (s, s):
            raise ValueError(f"{self.name}: the model takes {s}×{s} patches; got {patches.shape[1]}×{patches.shape[2]}. "
                             "Resize or tile to the model's input size first (edgecnn scan does this).")
        return np.ascontiguousarray(patches)

    def _to_input(self, chunk: np.ndarray) -> np.ndarray:
        x = chunk.astype(np.float32) * self._scale + self._offset
        if self.input_quant is None:
            return x.astype(self.input_dtype, copy=False)
        scale, zp = self.input_quant
        lo, hi = _INT_RANGES[self.input_dtype]
        # Round, not truncate: with scale 1/255 and zero point -128 this is exactly pixel - 128.
        q = np.rint(x / np.float32(scale)) + zp
        return np.clip(q, lo, hi).astype(self.input_dtype)

    def _to_probs(self, raw: np.ndarray) -> np.ndarray:
        raw = np.asarray(raw)
        if raw.ndim != 2 or raw.shape[1] < 2:
            raise RuntimeError(f"{self.name}: model output has shape {raw.shape}; expected (batch, 2) class scores")
        if self.output_quant is not None:
            scale, zp = self.output_quant
            raw = (raw.astype(np.float32) - np.float32(zp)) * np.float32(scale)
        raw = raw.astype(np.float32, copy=False)
        if self._needs_softmax:
            e = np.exp(raw - raw.max(axis=1, keepdims=True))
            raw = e / e.sum(axis=1, keepdims=True)
        return raw


def manifest_quant(manifest: dict[str, Any], which: str, path: Path) -> tuple[float, int]:
    """(scale, zero_point) of an integer input/output from the manifest (ONNX/OpenVINO keep it there)."""
    q = (manifest.get(which) or {}).get("quantization")
    if not q or "scale" not in q or "zero_point" not in q:
        raise ValueError(f"{path}: the model's {which} tensor is integer but its manifest has no "
                         f"{which}.quantization {{scale, zero_point}}; re-export the artifact")
    return float(q["scale"]), int(q["zero_point"])
