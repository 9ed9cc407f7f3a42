"""The patches a bench scores: one or several sources, a split's test patients, a seeded subset."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.fsutil import read_json


class BenchError(ValueError):
    """Bad bench input (no artifacts, unreadable data, bad options): the message names the fix."""


@dataclass
class EvalData:
    images: np.ndarray            # (N, S, S, 3) uint8
    labels: np.ndarray            # (N,) int
    source: str
    n_available: int              # patches in the sources, before --split and --limit
    split: str | None = None
    patients: np.ndarray | None = None
    xs: np.ndarray | None = None  # slide x/y of each patch (Kaggle file names): the context stage's neighbours
    ys: np.ndarray | None = None


def load_eval_data(data: Any, limit: int | None = None, split: str | Path | None = None, seed: int = 0,
                   progress: bool = False) -> EvalData:
    """Patches + labels from a PatchSet, an (images, labels) pair, or paths: Kaggle-layout folders or
    zips and .npz files (``images`` N×S×S×3 uint8, ``labels``, optional ``patients``). Several paths
    may come as a list or one string joined by ``os.pathsep`` (as in $EDGECNN_DATA).

    ``split``: a split.json (or run folder holding one): keep its test patients only.
    ``limit``: a seeded random subset of that many patches (the same subset every run).
    ``progress``: show the decoding bar of a Kaggle folder read for the first time.
    """
    images, labels, patients, source, coords = _read(data, progress)
    images = np.asarray(images)
    labels = np.asarray(labels).astype(np.int64).ravel()
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(images) != len(labels):
        raise BenchError(f"{source}: expected uint8 images N×S×S×3 and N labels; got images {images.shape} "
                         f"{images.dtype} and {labels.shape[0]} labels")
    patients = None if patients is None else np.asarray(patients).astype(str)
    n_available = len(labels)
    idx, split_note = _split_index(split, patients, n_available, source)
    idx = _limit_index(idx, limit, seed)
    if idx.size != n_available:
        images, labels = images[idx], labels[idx]
        patients = None if patients is None else patients[idx]
        coords = None if coords is None else (coords[0][idx], coords[1][idx])
    xs, ys = coords if coords is not None and patients is not None else (None, None)
    return EvalData(np.ascontiguousarray(images), labels, source, n_available, split_note, patients, xs, ys)


def _read(data: Any, progress: bool = False) -> tuple[Any, Any, Any, str, Any]:
    """(images, labels, patients or None, source text, (xs, ys) or None)."""
    if isinstance(data, tuple) and len(data) == 2:
        return data[0], data[1], None, "arrays", None
    if hasattr(data, "images") and hasattr(data, "labels"):
        source = str((getattr(data, "report", None) or {}).get("source", "PatchSet"))
        coords = (data.xs, data.ys) if hasattr(data, "xs") else None
        return data.images, data.labels, getattr(data, "patients", None), source, coords
    if data is None or (isinstance(data, (list, tuple)) and not data):
        raise BenchError("no evaluation data: pass --data PATH (Kaggle-layout IDC folder or zip, or an .npz "
                         "with 'images' and 'labels'), or set EDGECNN_DATA")
    paths = _paths(data)
    parts = [_read_npz(p) for p in paths if p.suffix == ".npz"]
    kaggle = [p for p in paths if p.suffix != ".npz"]
    if kaggle:
        from edgecnn.data import load_patches

        ps = load_patches(kaggle[0] if len(kaggle) == 1 else kaggle, progress=progress)
        parts.append((ps.images, ps.labels, ps.patients, (ps.xs, ps.ys)))
    images = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
    labels = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts])
    with_ids = all(p[2] is not None for p in parts)
    patients = (parts[0][2] if len(parts) == 1 else np.concatenate([np.asarray(p[2]).astype(str) for p in parts])) \
        if with_ids else None
    coords = None
    if all(len(p) > 3 for p in parts):   # .npz files carry no coordinates
        coords = tuple(np.concatenate([p[3][i] for p in parts]) for i in (0, 1))
    return images, labels, patients, os.pathsep.join(map(str, paths)), coords


def _paths(data: Any) -> list[Path]:
    items = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    paths = [Path(s).expanduser() for item in items for s in str(item).split(os.pathsep) if s.strip()]
    for p in paths:
        if not p.exists():
            raise BenchError(f"--data {p}: not found. Pass the IDC folder (Kaggle layout), its zip, or an .npz "
                             "with 'images' and 'labels'")
    return paths


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    with np.load(path) as z:
        if "images" not in z or "labels" not in z:
            raise BenchError(f"{path}: an .npz for bench needs arrays 'images' (N,S,S,3 uint8) and 'labels'")
        return z["images"], z["labels"], (z["patients"] if "patients" in z else None)


def split_file(split: str | Path) -> Path:
    sp = Path(split).expanduser()
    return sp / "split.json" if sp.is_dir() else sp


def _split_index(split: str | Path | None, patients: np.ndarray | None, n: int,
                 source: str) -> tuple[np.ndarray, str | None]:
    if split is None:
        return np.arange(n), None
    sp = split_file(split)
    if not sp.exists():
        raise BenchError(f"--split {split}: no split.json there (a run folder from edgecnn train has one)")
    if patients is None:
        raise BenchError(f"--split needs patient ids, and {source} has none: pass the Kaggle-layout folder")
    test_ids = read_json(sp).get("test") or []
    idx = np.flatnonzero(np.isin(patients, np.asarray(test_ids, dtype=str)))
    if idx.size == 0:
        raise BenchError(f"--split {sp}: none of its {len(test_ids)} test patients is in {source}")
    return idx, f"{sp} (test: {len(test_ids)} patients)"


def _limit_index(idx: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    if limit is None:
        return idx
    if limit < 1:
        raise BenchError(f"--limit must be >= 1; got {limit}")
    if limit < idx.size:
        idx = np.sort(np.random.default_rng(seed).choice(idx, size=limit, replace=False))
    return idx


def trained_share(ev: EvalData, split: str | Path) -> float | None:
    """Share of the patches whose patient the model trained or tuned on (split's train + val), or
    None when that cannot be known."""
    sp = split_file(split)
    if ev.patients is None or not sp.exists():
        return None
    s = read_json(sp)
    seen = np.asarray(list(s.get("train") or []) + list(s.get("val") or []), dtype=str)
    return float(np.isin(ev.patients, seen).mean()) if len(ev.patients) else None
