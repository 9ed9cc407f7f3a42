"""The patches of one split part of a run (train / val / test), as uint8 at the model's input size.

QAT fine-tunes on the run's own training patients, PTQ calibrates on them, and every export is
checked on the run's test patients: all of them read the data through here, so a run is never
judged on patients it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.train.run import RunError, RunFolder

# Fixed per-part offsets keep a limited sample of one part independent of the others.
_PART_SEED = {"train": 0, "val": 1, "test": 2}


@dataclass
class Patches:
    images: np.ndarray    # (N, S, S, 3) uint8 at the model's input size
    labels: np.ndarray    # (N,) int8
    part: str
    n_patients: int

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def as_run(run: str | Path | RunFolder) -> RunFolder:
    run = run if isinstance(run, RunFolder) else RunFolder(run)
    if not run.path.is_dir():
        raise RunError(f"{run.path}: no such run folder. Train one with `edgecnn train --out {run.path}`.")
    return run


def run_split(run: RunFolder):
    """The run's patient split (edgecnn.data.Split); a damaged split.json is a RunError naming the file."""
    from edgecnn.data import DataError

    try:
        return run.split()
    except DataError as e:
        raise RunError(str(e)) from e


def split_summary(run: RunFolder) -> dict[str, Any]:
    """What a manifest records about the run's split: file (relative to the run: no build-machine
    path in a shipped manifest), method, seed, patients per part."""
    s = run_split(run)
    return {"file": run.split_path.relative_to(run.path).as_posix(), "method": s.method, "seed": s.seed,
            "patients": {k: len(v) for k, v in s.parts().items()}}


def _load_all(run: RunFolder, data: Any):
    """A PatchSet: ``data`` itself when given one, else the folder from ``data`` / config.json."""
    from edgecnn.data import DataError, load_patches

    if data is not None and hasattr(data, "select") and hasattr(data, "images"):
        return data
    cfg = run.config()
    path = data if data is not None else cfg.get("data")
    if not path:
        raise RunError(f"{run.config_path}: no \"data\" entry, so the run's patches cannot be found; "
                       "pass the data folder explicitly (--data PATH)")
    from edgecnn.data.sources import parse_sources

    for p in parse_sources(path):
        if not p.exists():
            raise RunError(f"{run.path}: the run's data folder {p} does not exist here; "
                           "pass the folder(s) holding the IDC patches with --data PATH")
    try:
        return load_patches(path, border=cfg.get("border", "pad"))
    except DataError as e:
        raise RunError(f"{run.path}: cannot read the run's data at {path}: {e}") from e


def resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize to size×size, back to uint8: every backend is fed the same uint8 pixels."""
    images = np.asarray(images)
    if images.shape[1] == size and images.shape[2] == size:
        return images
    from edgecnn._tf import tf

    out = np.empty((len(images), size, size, 3), np.uint8)
    for i in range(0, len(images), 512):
        r = tf.image.resize(images[i:i + 512].astype(np.float32), (size, size)).numpy()
        out[i:i + 512] = np.clip(np.rint(r), 0, 255).astype(np.uint8)
    return out


class RunData:
    """Lazily loaded, cached split parts of one run (the dataset is read once per export)."""

    def __init__(self, run: RunFolder, data: Any = None, limit: int | None = None, seed: int = 0):
        self.run, self.data, self.limit, self.seed = run, data, limit, seed
        self._all = None
        self._parts: dict[str, Patches] = {}

    def part(self, name: str) -> Patches:
        if name not in self._parts:
            self._parts[name] = self._load(name)
        return self._parts[name]

    def _load(self, name: str) -> Patches:
        ids = run_split(self.run).parts()[name]
        if self._all is None:
            self._all = _load_all(self.run, self.data)
        sel = self._all.select(ids)
        idx = np.arange(len(sel))
        if self.limit is not None and len(idx) > self.limit:
            rng = np.random.default_rng(self.seed * 10 + _PART_SEED[name])
            idx = np.sort(rng.choice(idx, size=self.limit, replace=False))
        images = np.asarray(sel.images[idx])
        if len(idx) == 0:
            raise RunError(f"{self.run.path}: the {name} split has no patches in the data "
                           f"({len(ids)} patients listed in {self.run.split_path.name}); "
                           "check that --data points at the data the run was trained on")
        return Patches(resize_uint8(images, self.run.input_size), np.asarray(sel.labels[idx]).astype(np.int8),
                       name, len(set(np.asarray(sel.patients[idx]).tolist())))
