"""Check an exported artifact the way a device will run it (edgecnn.runtime.load, sha256 checked)
on the run's test (and validation) patients: accuracy, balanced accuracy at the manifest's
threshold, and agreement with the float Keras model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.export.errors import ExportError
from edgecnn.metrics import agreement, binary_metrics

KEPT_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1", "roc_auc",
         "threshold", "confusion_matrix", "n_patches", "n_positive")


def predict_artifact(path: Path, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    from edgecnn.runtime import load

    try:
        with load(path) as backend:
            return backend.predict(np.ascontiguousarray(images), batch_size=batch_size)
    except ExportError:
        raise
    except Exception as e:
        raise ExportError(f"{path.name}: the exported artifact does not run ({type(e).__name__}: {e})") from e


def check_artifact(ctx, path: Path, threshold: float, parts: tuple[str, ...] = ("val", "test")) -> dict[str, Any]:
    ref_thr = ctx.run.threshold
    out: dict[str, Any] = {}
    for part in parts:
        data = ctx.data.part(part)
        p = predict_artifact(path, data.images)
        ref = ctx.reference(part)
        m = {k: v for k, v in binary_metrics(data.labels, p, threshold).items() if k in KEPT_METRICS}
        m["n_patients"] = data.n_patients
        out[part] = m
        # Labels are compared each at its own threshold (a QAT artifact carries its own); |Δp| raw.
        same = agreement((ref >= ref_thr).astype(float), (p >= threshold).astype(float), 0.5)["agreement"]
        out.setdefault("agreement", {})[part] = {
            "agreement": same, "max_abs_dp": agreement(ref, p, threshold)["max_abs_dp"],
            "mean_abs_dp": float(np.mean(np.abs(ref - p))) if len(p) else float("nan"),
            "reference": "float Keras model (model.keras)", "reference_threshold": ref_thr,
        }
    if "test" in out["agreement"]:
        # The headline comparison is on the test patients; other parts stay under their names.
        out["agreement"] = {**out["agreement"]["test"], "by_part": out["agreement"]}
    return out
