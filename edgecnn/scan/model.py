"""Which model the scanner runs: a loaded backend, an artifact path, or the committed release model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from edgecnn.manifest import manifest_path
from edgecnn.paths import release_model_dir

# Fastest first on a CPU device: full-int8 TFLite (QAT before PTQ), int8 ONNX, then fp32 ONNX.
RELEASE_PREFERENCE = ("*-int8-qat.tflite", "*-int8-ptq.tflite", "*int8*.tflite",
                      "*-int8-ptq.onnx", "*-int8-qat.onnx", "*int8*.onnx", "*-fp32.onnx")


class ModelNotFound(FileNotFoundError):
    """No model given and no release model where one is expected."""


def default_model_path(folder: str | os.PathLike | None = None) -> Path:
    """The release artifact the scanner uses when no --model is given (see RELEASE_PREFERENCE)."""
    folder = Path(folder) if folder is not None else release_model_dir()
    for pattern in RELEASE_PREFERENCE:
        for path in sorted(folder.glob(pattern)) if folder.is_dir() else []:
            if manifest_path(path).exists():
                return path
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    raise ModelNotFound(
        f"no release model in {folder} (found: {', '.join(present) or 'nothing'}). Expected an int8 TFLite "
        "(e.g. basic_cnn-int8-qat.tflite) or an int8/fp32 ONNX artifact with its .json manifest beside it. "
        "Pass --model PATH, export one into that folder with `edgecnn export`, or set EDGECNN_RELEASE_DIR.")


def is_backend(obj: Any) -> bool:
    return callable(getattr(obj, "predict", None)) and hasattr(obj, "input_size")


def load_backend(model: Any = None, *, threads: int | None = None, runtime: str | None = None,
                 verify: bool = True) -> Any:
    """``model`` as a ready backend: returned as is if already loaded, else ``edgecnn.runtime.load``."""
    if is_backend(model):
        return model
    if model is not None and not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be an artifact path or a loaded edgecnn.runtime Backend; got {type(model).__name__}")
    path = Path(model) if model is not None else default_model_path()
    from edgecnn.runtime import load  # on use: a loaded Backend needs none of it

    return load(path, runtime=runtime, threads=threads, verify=verify)
