"""Score any model on any Kaggle-layout folder: every patch, no split, training's preprocessing.

The target may be a run folder (its float model and threshold), a run's QAT model, a ``.keras``
file, or an exported artifact (through edgecnn.runtime, so no TensorFlow for those).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.formats import SUFFIX_RUNTIME
from edgecnn.metrics import binary_metrics, patient_report


def predict_target(target: str | Path, images: np.ndarray, qat: bool = False, runtime: str | None = None,
                   verify: bool = True) -> tuple[np.ndarray, float, dict[str, Any]]:
    """IDC probabilities of ``target`` on uint8 patches, its threshold, and a description."""
    target = Path(target)
    if target.is_dir():
        from edgecnn.train.fit import predict_probs
        from edgecnn.train.run import RunFolder

        run = RunFolder(target)
        model = run.load_model(qat=qat)
        info = run.model_info()
        thr = info.get("threshold", 0.5)
        if qat:
            from edgecnn.fsutil import read_json

            qinfo = run.qat_dir / "model.json"
            thr = read_json(qinfo).get("threshold", thr) if qinfo.exists() else thr
        return predict_probs(model, images, input_size=int(info["input_size"])), float(thr), {
            "kind": "keras", "run": str(target), "qat": qat, "model": info["model"]}
    if target.suffix == ".keras":
        from edgecnn._tf import keras
        from edgecnn.train.fit import predict_probs

        model = keras.models.load_model(target, compile=False)
        thr, source = keras_threshold(target)
        return predict_probs(model, images), thr, {"kind": "keras", "file": str(target), "threshold_from": source}
    if target.suffix in SUFFIX_RUNTIME:
        from edgecnn.runtime import load

        backend = load(target, runtime=runtime, verify=verify)
        return backend.predict(images), float(backend.threshold), {
            "kind": "artifact", "file": str(target), "runtime": backend.runtime, "precision": backend.precision}
    raise FileNotFoundError(
        f"{target}: not a run folder, .keras model or exported artifact "
        f"({', '.join(sorted(SUFFIX_RUNTIME))}); pass what `edgecnn train` or `edgecnn export` wrote")


def keras_threshold(path: Path) -> tuple[float, str]:
    """The operating threshold of a bare ``.keras`` file and where it came from.

    It sits in the JSON of the same stem beside it: ``model.json`` for a run's ``model.keras``
    (and ``qat/``), ``basic_cnn-fp32.json`` for the release's float reference. Without one,
    0.5 is all there is, and the caller says so: scoring at 0.5 instead of the validation
    threshold costs points of balanced accuracy.
    """
    from edgecnn.fsutil import read_json

    meta = path.with_suffix(".json")
    if meta.exists():
        thr = read_json(meta).get("threshold")
        if thr is not None:
            return float(thr), str(meta)
    return 0.5, "default 0.5 (no threshold in " + meta.name + " beside the model; pass --threshold)"


def evaluate(target: str | Path, data: str | Path, threshold: float | None = None, qat: bool = False,
             runtime: str | None = None, border: str = "pad", progress: bool = False,
             verify: bool = True) -> dict[str, Any]:
    from edgecnn.data import load_patches

    if not Path(target).exists():
        raise FileNotFoundError(f"{target}: no such run folder or model file")
    patches = load_patches(data, border=border, progress=progress)
    if len(patches) == 0:
        raise ValueError(f"{data}: no patches to evaluate")
    p, thr, desc = predict_target(target, patches.images, qat=qat, runtime=runtime, verify=verify)
    if threshold is not None:
        thr = threshold
    m = binary_metrics(patches.labels, p, thr)
    m.update(patient_report(patches.labels, p, patches.patients, thr))
    m["data"] = str(data)
    m["model"] = desc
    m["skipped_files"] = patches.report.get("n_skipped", 0)
    return m
