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
from edgecnn.train.predict import predict_probs


def predict_target(target: str | Path, images: np.ndarray, qat: bool = False, runtime: str | None = None,
                   verify: bool = True, tta: bool = False) -> tuple[np.ndarray, float, dict[str, Any]]:
    """IDC probabilities of ``target`` on uint8 patches, its threshold, and a description."""
    target = Path(target)
    if target.is_dir():
        from edgecnn.train.run import RunFolder

        run = RunFolder(target)
        model = run.load_model(qat=qat)
        info = run.model_info()
        thr = info.get("threshold", 0.5)
        if qat:
            from edgecnn.fsutil import read_json

            qinfo = run.qat_dir / "model.json"
            thr = read_json(qinfo).get("threshold", thr) if qinfo.exists() else thr
        return predict_probs(model, images, input_size=int(info["input_size"]), tta=tta), float(thr), {
            "kind": "keras", "run": str(target), "qat": qat, "model": info["model"]}
    if target.suffix == ".keras":
        from edgecnn.models.precision import load_float32

        model = load_float32(target)
        thr, source = keras_threshold(target)
        return predict_probs(model, images, tta=tta), thr, {"kind": "keras", "file": str(target), "threshold_from": source}
    if target.suffix in SUFFIX_RUNTIME:
        from edgecnn.runtime import load

        backend = load(target, runtime=runtime, verify=verify)
        return backend.predict(images, tta=tta), float(backend.threshold), {
            "kind": "artifact", "file": str(target), "runtime": backend.runtime, "precision": backend.precision}
    raise not_a_target(target)


def not_a_target(target: str | Path) -> FileNotFoundError:
    return FileNotFoundError(f"{target}: not a run folder, .keras model or exported artifact "
                             f"({', '.join(sorted(SUFFIX_RUNTIME))}); pass what `edgecnn train` or `edgecnn export` wrote")


def check_target(target: str | Path) -> None:
    """Refuse a target that cannot be scored before any data is read (a bad model file is the
    likelier mistake, and reading thousands of patches first hides it)."""
    t = Path(target)
    if t.is_dir():
        from edgecnn.train.run import RunFolder

        RunFolder(t).model_info()   # RunError naming what the folder lacks
    elif t.suffix in SUFFIX_RUNTIME:
        from edgecnn.manifest import read_manifest

        read_manifest(t)
    elif t.suffix != ".keras":
        raise not_a_target(target)


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
             verify: bool = True, split: str | Path | None = None, part: str = "test",
             tta: bool = False, context: bool = False, context_from: str | Path | None = None) -> dict[str, Any]:
    """Metrics of ``target`` on ``data`` (one or several sources, see load_patches).

    ``split`` (a split.json or a run folder holding one) keeps only its ``part`` patients.
    Without it every patch is scored, and ``m["warnings"]`` says when some belong to patients
    the model trained on (found through the run's or the artifact folder's split.json).
    ``context`` adds the field-level metrics (same names) under ``m["context"]``: the stage from
    ``context_from`` or the target's manifest, neighbours from the patches' x/y.
    """
    from edgecnn.data import load_patches

    if not Path(target).exists():
        raise FileNotFoundError(f"{target}: no such run folder or model file")
    check_target(target)
    stage = context_stage(target, context_from) if context else None
    patches = load_patches(data, border=border, progress=progress)
    warnings: list[str] = []
    if split is not None:
        patches = select_part(patches, split, part)
    else:
        warnings += _trained_patient_warning(target, patches)
    if len(patches) == 0:
        raise ValueError(f"{data}: no patches to evaluate")
    p, thr, desc = predict_target(target, patches.images, qat=qat, runtime=runtime, verify=verify, tta=tta)
    if threshold is not None:
        thr = threshold
    m = binary_metrics(patches.labels, p, thr)
    m.update(patient_report(patches.labels, p, patches.patients, thr))
    m["data"] = str(data)
    m["split"] = None if split is None else {"file": str(split), "part": part}
    m["tta"] = tta
    m["model"] = desc
    m["skipped_files"] = patches.report.get("n_skipped", 0)
    m["warnings"] = warnings
    if stage is not None:
        m["context"] = field_metrics(stage, p, patches)
        warnings += m["context"].pop("warnings")
    return m


def context_stage(target: str | Path, context_from: str | Path | None):
    """The stage ``--context`` scores with; a clear error when there is none."""
    from edgecnn.context.load import stage_of_artifact, stage_of_file

    if context_from is not None:
        return stage_of_file(context_from)
    t = Path(target)
    stage = stage_of_artifact(t) if t.is_file() and t.suffix in SUFFIX_RUNTIME else None
    if stage is None:
        raise ValueError(f"{target}: carries no context stage; fit one with `edgecnn context fit {target} "
                         "--data … --split …`, or pass --context-from FILE")
    return stage


def field_metrics(stage, p: np.ndarray, patches) -> dict[str, Any]:
    """Field-level metrics of patch probabilities ``p`` (the same names as the patch-level ones)."""
    from edgecnn.context.patches import field_scores

    q, cover, m = field_scores(stage, p, patches.labels, patches.patients, patches.xs, patches.ys, patches.files)
    m.update(patient_report(patches.labels, q, patches.patients, stage.threshold))
    m["stage"] = {**stage.to_dict(), "describe": stage.describe()}
    m["stage"].pop("meta", None)
    m["neighbours"] = cover
    m["warnings"] = []
    alone = cover["without_coordinates"] + cover["off_grid"]
    if alone:
        m["warnings"].append(f"context: {alone} of {cover['patches']} patches have no usable x/y (no coordinates "
                             "or off the patient's grid) and were scored without neighbours")
    return m


def split_file(where: str | Path) -> Path:
    p = Path(where)
    return p / "split.json" if p.is_dir() else p


def select_part(patches, split: str | Path, part: str):
    """The patches of ``split``'s ``part`` patients (a split.json, or a run folder holding one)."""
    from edgecnn.data.split import Split

    f = split_file(split)
    if not f.exists():
        raise FileNotFoundError(f"--split {split}: no split.json there (a run folder or exported/release has one)")
    ids = Split.load(f).parts().get(part)
    if ids is None:
        raise ValueError(f"--part must be train, val or test; got {part!r}")
    present = sorted(set(ids) & set(patches.patient_ids))
    if not present:
        raise ValueError(f"--split {f}: none of its {len(ids)} {part} patients is in the data; "
                         "pass the data the split was made from")
    return patches.select(present)


def _trained_patient_warning(target: str | Path, patches) -> list[str]:
    """A warning when the data holds patients the model was trained on (scores look too good)."""
    from edgecnn.data.split import Split

    t = Path(target)
    f = split_file(t) if t.is_dir() else t.parent / "split.json"
    if not f.exists():
        return []
    try:
        seen = set(Split.load(f).train) & set(patches.patient_ids)
    except Exception:  # a damaged split must not stop an evaluation; it only loses the warning
        return []
    if not seen:
        return []
    return [f"{len(seen)} of the {len(patches.patient_ids)} patients in the data are training patients of this "
            f"model ({f}): the score is optimistic. Pass --split {f} to score its test patients only."]
