"""`edgecnn context fit`: choose a context stage for shipped models and store it in their manifests.

Steps: the targets' own outputs on the validation patients; out-of-fold outputs of the training
patients (fold models, train/oof.py) for the learned candidates; every candidate scored on
validation (context/fit.py); the best stage written into each target's manifest under
``"context"`` (its sha256 covers the model file, not the manifest, so the artifact stays valid).
Test patients are never read.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from edgecnn.context.fit import Tiles, choose
from edgecnn.fsutil import write_json
from edgecnn.manifest import manifest_path, read_manifest


def fit_context(targets: list[Path], data: str, split: Path, folds_dir: Path | None = None, k: int = 3,
                fold_epochs: int | None = None, attach: bool = True, progress: bool = True,
                console=None) -> list[dict[str, Any]]:
    """One chosen stage per target (with its candidate table); written to each manifest when ``attach``."""
    from edgecnn.data import load_patches
    from edgecnn.data.split import Split
    from edgecnn.train.evaluate import select_part, split_file

    _check_targets(targets, attach)
    sfile = split_file(split)
    if not sfile.exists():
        raise FileNotFoundError(f"--split {split}: no split.json there (exported/release has one)")
    patches = load_patches(data, progress=progress)
    oof, folds = (None, [])
    if folds_dir is not None:
        oof, folds = _out_of_fold(Split.load(sfile), patches, data, Path(folds_dir), k, fold_epochs, progress, console)
    val = select_part(patches, sfile, "val")
    return [_fit_one(Path(t), val, oof, folds, sfile, attach, console) for t in targets]


def _check_targets(targets: list[Path], attach: bool) -> None:
    from edgecnn.formats import SUFFIX_RUNTIME

    for t in targets:
        if not Path(t).is_file() or Path(t).suffix not in SUFFIX_RUNTIME:
            raise FileNotFoundError(f"{t}: not an exported artifact ({', '.join(sorted(SUFFIX_RUNTIME))}); "
                                    "pass files that `edgecnn export` wrote, e.g. exported/release/basic_cnn-int8-qat.tflite")
        if attach:
            read_manifest(t)   # refuses a file without a manifest before minutes of fold training


def _out_of_fold(split, patches, data: str, folds_dir: Path, k: int, fold_epochs: int | None, progress: bool, console):
    from edgecnn.train.oof import fold_summary, oof_tiles, train_folds

    recipe = {} if fold_epochs is None else {"epochs": fold_epochs}
    runs = train_folds(split, patches, data, folds_dir, k=k, recipe=recipe, progress=progress, console=console)
    return oof_tiles(runs, patches), fold_summary(runs)


def _fit_one(target: Path, val, oof: Tiles | None, folds: list, sfile: Path, attach: bool, console) -> dict[str, Any]:
    from edgecnn.train.evaluate import predict_target

    p, _, desc = predict_target(target, val.images)
    stage, table = choose(Tiles(p, val.labels, val.patients, val.xs, val.ys), oof)
    best = next(r for r in table if r["params"] == stage.params())
    stage.meta = {
        "chosen_on": {"part": "val", "split": sfile.name, "patients": len(set(val.patients.tolist())),
                      "patches": len(val), "rule": "highest validation ROC AUC; threshold at the validation BAC optimum",
                      "val_roc_auc": best["val_auc"], "val_balanced_accuracy": best["val_bac"]},
        "learned_from": None if oof is None else {"out_of_fold_patches": int(oof.probs.size),
                                                  "patients": len(set(oof.patients.tolist())), "folds": folds},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if attach:
        m = read_manifest(target)
        m["context"] = stage.to_dict()
        write_json(manifest_path(target), m)
    if console is not None:
        console.print(f"{target.name}: {stage.describe()} (validation AUC {best['val_auc']:.4f}, BAC "
                      f"{best['val_bac']:.4f} at {stage.threshold:.3f}){' → manifest' if attach else ''}")
    return {"target": str(target), "model": desc, "stage": stage.to_dict(), "candidates": table}
