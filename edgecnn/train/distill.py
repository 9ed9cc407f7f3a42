"""Teachers for distillation: runs, .keras files or exported artifacts whose IDC probabilities
on the training patches become the student's soft targets (the mean when there are several).

The probabilities are computed once per run and kept in ``<run>/teacher_probs.npz`` (keyed by
the teachers and the training patches), so a resumed run does not run the teachers again.
Before training, the teachers are also scored on the run's validation patients
(``<run>/teachers.json``): a teacher that does not beat the student's own recipe there has
nothing to teach, and that is cheaper to see before a long run than after it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgecnn import CLASS_NAMES
from edgecnn.fsutil import atomic_path
from edgecnn.train.run import RunError


def teacher_info(spec: str) -> dict[str, Any]:
    """Input size and class order a teacher declares (run model.json, .keras JSON, manifest)."""
    from edgecnn.fsutil import read_json

    p = Path(spec)
    if p.is_dir():
        meta = p / "model.json"
    elif p.suffix == ".keras":
        meta = p.with_suffix(".json")
    else:
        meta = p.with_name(p.name + ".json")
    if not p.exists():
        raise RunError(f"--teacher {spec}: no such run folder or model file")
    if not meta.exists():
        raise RunError(f"--teacher {spec}: no {meta.name} beside it, so its input size and class order are "
                       "unknown; pass a run folder from `edgecnn train` or an artifact from `edgecnn export`")
    d = read_json(meta)
    size = d.get("input_size") or ((d.get("input") or {}).get("shape") or [None, None])[1]
    return {"input_size": int(size) if size else None,
            "class_names": list(d.get("class_names") or CLASS_NAMES), "meta": str(meta)}


def check_teachers(specs: Sequence[str], student_size: int) -> list[dict[str, Any]]:
    infos = []
    for spec in specs:
        info = teacher_info(spec)
        if info["class_names"] != list(CLASS_NAMES):
            raise RunError(f"--teacher {spec}: its classes are {info['class_names']} ({info['meta']}), the "
                           f"student's {list(CLASS_NAMES)}: the soft targets would be swapped. Use a teacher "
                           "trained by edgecnn on the same two classes")
        if info["input_size"] != student_size:
            raise RunError(f"--teacher {spec}: it takes {info['input_size']} px patches, the student "
                           f"{student_size} px; both see the same patches, so train the teacher at "
                           f"--input-size {student_size} or pick a teacher of that size")
        infos.append(info)
    return infos


def teacher_probs(specs: Sequence[str], images: np.ndarray, cache: Path, console=None) -> np.ndarray:
    """Mean IDC probability of the teachers on ``images``, cached in ``cache``."""
    from edgecnn.train.evaluate import predict_target

    key = _key(specs, images)
    if cache.exists():
        with np.load(cache) as z:
            if str(z["key"]) == key:
                return z["probs"]
    total = np.zeros(len(images), dtype=np.float64)
    for spec in specs:
        if console is not None:
            console.print(f"teacher {spec}: scoring {len(images):,} training patches")
        p, _, _ = predict_target(spec, images)
        total += p
    probs = (total / len(specs)).astype(np.float32)
    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, key=np.array(key), probs=probs)
    return probs


def teacher_report(specs: Sequence[str], images: np.ndarray, labels: np.ndarray, out: Path,
                   console=None) -> dict[str, Any]:
    """Validation balanced accuracy (at each one's best threshold) and ROC AUC of every teacher
    and of their mean, the soft target; written to ``out`` once and read back on resume."""
    from edgecnn.fsutil import read_json, write_json
    from edgecnn.metrics import best_threshold, roc_auc
    from edgecnn.train.evaluate import predict_target

    if out.exists():
        return read_json(out)

    def score(p: np.ndarray) -> dict[str, float]:
        thr, bac = best_threshold(labels, p)
        return {"val_balanced_accuracy": bac, "val_roc_auc": roc_auc(labels, p), "threshold": thr}

    probs = [predict_target(spec, images)[0] for spec in specs]
    report = {"n_val_patches": int(len(labels)),
              "teachers": [{"teacher": str(spec), **score(p)} for spec, p in zip(specs, probs)],
              "mean": score(np.mean(probs, axis=0))}
    write_json(out, report)
    if console is not None:
        for row in report["teachers"] + ([{"teacher": "mean of the teachers", **report["mean"]}] if len(specs) > 1 else []):
            console.print(f"teacher {row['teacher']}: validation balanced accuracy {row['val_balanced_accuracy']:.4f}, "
                          f"ROC AUC {row['val_roc_auc']:.4f}")
    return report


def _key(specs: Sequence[str], images: np.ndarray) -> str:
    h = hashlib.sha256(json.dumps([str(Path(s).resolve()) for s in specs]).encode())
    h.update(str(images.shape).encode())
    h.update(np.asarray(images[:: max(1, len(images) // 64)]).tobytes())
    return h.hexdigest()[:24]
