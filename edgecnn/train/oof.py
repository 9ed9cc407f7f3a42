"""Out-of-fold tile outputs for the training patients: what a context stage may learn from.

A tile model's probabilities on its own training patches are overconfident, so a stage fitted on
them learns the wrong trust in a tile. Instead the training patients are dealt into k folds and a
fold model is trained on the other k − 1 (validation stays the release split's); each fold model
then scores only its held-out fold. Every fold run is an ordinary, resumable run folder under
``folds_dir`` and is reused when complete, so a killed ``edgecnn context fit`` continues.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.context.fit import Tiles
from edgecnn.data.split import Split, fold_splits
from edgecnn.fsutil import read_json
from edgecnn.train.fit import TrainConfig, train
from edgecnn.train.predict import predict_probs
from edgecnn.train.run import RunFolder

# The teachers' recipe, shorter: fold models only have to rank tiles like the release does.
FOLD_RECIPE: dict[str, Any] = {"model": "basic_cnn", "epochs": 7, "lr_schedule": "cosine", "stain_jitter": 0.05,
                               "patience": 99}


def train_folds(split: Split, patches, data_spec: str, folds_dir: Path, k: int = 3, seed: int = 0,
                recipe: dict[str, Any] | None = None, progress: bool = True, console=None) -> list[RunFolder]:
    """Train (or resume, or reuse) one run per fold; fold i's test part is its held-out patients."""
    folds_dir = Path(folds_dir)
    folds_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for i, fs in enumerate(fold_splits(split, patches.patient_stats(), k, seed)):
        split_file = folds_dir / f"fold{i}-split.json"
        out = folds_dir / f"fold{i}"
        run = RunFolder(out)
        _check_same_fold(run, fs)
        fs.save(split_file)
        if not run.metrics_path.exists():
            resume = run.config_path.exists()
            cfg = TrainConfig(out=str(out), data=data_spec, split=str(split_file), seed=seed, **{**FOLD_RECIPE, **(recipe or {})})
            if console is not None:
                console.print(f"fold {i + 1}/{k}: {'resuming' if resume else 'training'} {out} "
                              f"({len(fs.train)} patients; held out {len(fs.test)})")
            run = train(cfg, resume=resume, progress=progress, console=console)
        runs.append(run)
    return runs


def _check_same_fold(run: RunFolder, fs: Split) -> None:
    """A fold run made for other patients must not be reused: its model may have seen the held-out ones."""
    if run.split_path.exists():
        old = Split.load(run.split_path)
        if (old.train, old.test) != (fs.train, fs.test):
            raise ValueError(f"{run.path}: this fold run was trained on another split or --folds; "
                             "pass a new --folds-dir (or delete that one)")


def oof_tiles(runs: list[RunFolder], patches, batch_size: int = 512) -> Tiles:
    """Each fold model's probabilities on its held-out patients only, concatenated."""
    parts = []
    seen: set[str] = set()
    for run in runs:
        held = Split.load(run.split_path).test
        if seen & set(held):
            raise ValueError(f"{run.path}: its held-out patients overlap another fold's; the folds are not disjoint")
        seen |= set(held)
        sub = patches.select(sorted(set(held) & set(patches.patient_ids)))
        info = read_json(run.model_info_path)
        p = predict_probs(run.load_model(), sub.images, batch_size=batch_size, input_size=int(info["input_size"]))
        parts.append(Tiles(p, sub.labels, sub.patients, sub.xs, sub.ys))
    return Tiles(*(np.concatenate([getattr(t, f) for t in parts]) for f in ("probs", "labels", "patients", "xs", "ys")))


def fold_summary(runs: list[RunFolder]) -> list[dict[str, Any]]:
    out = []
    for run in runs:
        s = Split.load(run.split_path)
        m = read_json(run.metrics_path) if run.metrics_path.exists() else {}
        out.append({"run": run.path.name, "train_patients": len(s.train), "held_out_patients": len(s.test),
                    "held_out_balanced_accuracy": m.get("balanced_accuracy"), "held_out_roc_auc": m.get("roc_auc")})
    return out

