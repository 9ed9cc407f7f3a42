"""A training pack: the train and validation patches of a split in one portable ``.npz``.

A GPU box with PyTorch but no TensorFlow (``edgecnn.torchtrain``) trains from this file alone:
decoded uint8 patches (borders already padded, so both trainers see the same pixels), labels,
patients, the teachers' soft targets, and the split itself. The test patients are left out on
purpose: the box that trains never sees them, and they are scored back here by
``edgecnn evaluate``. Reading a pack needs numpy only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.data.layout import DataError
from edgecnn.fsutil import atomic_path

FORMAT = "edgecnn-train-pack/1"
PARTS = ("train", "val")


def write_pack(out: str | os.PathLike, patches, split, teacher: np.ndarray | None = None,
               meta: dict[str, Any] | None = None) -> Path:
    """Write the split's train and val patches of ``patches`` (a PatchSet) to ``out``.

    ``teacher`` is the IDC probability of the teachers on the training patches, in the order of
    ``patches.select(split.train)``.
    """
    split.check_disjoint()
    arrays: dict[str, np.ndarray] = {}
    for part in PARTS:
        try:
            ps = patches.select(getattr(split, part))
        except KeyError as e:
            raise DataError(f"the split's {part} patients are not all in this data ({e.args[0]}); "
                            "pass the --data the split was made from") from e
        if len(ps) == 0:
            raise DataError(f"the split's {part} patients have no patches in this data; check --data and --split")
        arrays.update({f"{part}_images": np.ascontiguousarray(ps.images), f"{part}_labels": ps.labels.astype(np.int8),
                       f"{part}_patients": ps.patients.astype(str), f"{part}_files": ps.files.astype(str)})
    if teacher is not None:
        if len(teacher) != len(arrays["train_labels"]):
            raise ValueError(f"{len(teacher)} teacher probabilities for {len(arrays['train_labels'])} training patches")
        arrays["train_teacher"] = np.asarray(teacher, dtype=np.float32)
    header = {"format": FORMAT, "split": split.to_dict(), **(meta or {})}
    arrays["header_json"] = np.array(json.dumps(header))
    out = Path(out)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return out


def pack_split(data, split_path: str | os.PathLike, out: str | os.PathLike, teachers: list[str] | None = None,
               border: str = "pad", progress: bool = False, console=None) -> Path:
    """Load ``data``, compute the teachers' soft targets (needs TensorFlow), write the pack."""
    from edgecnn import __version__
    from edgecnn.data.dataset import load_patches
    from edgecnn.data.split import Split

    patches = load_patches(data, border=border, progress=progress)
    split = Split.load(split_path)
    teacher = None
    if teachers:
        from edgecnn.train.distill import teacher_probs

        tr = patches.select(split.train)
        cache = Path(str(out) + ".teacher_probs.npz")
        teacher = teacher_probs(teachers, tr.images, cache, console)
    from edgecnn.data.sources import parse_sources

    # Folder names only: the header travels to other machines.
    meta = {"data": [Path(p).name for p in parse_sources(data)], "border": border, "edgecnn": __version__,
            "teachers": [Path(t).name for t in teachers or []]}
    return write_pack(out, patches, split, teacher, meta)


class Pack:
    """A pack read back: ``images(part)``, ``labels(part)``, ``teacher`` (or None), ``header``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        try:
            with np.load(self.path) as z:
                self._arrays = {k: z[k] for k in z.files}
            self.header = json.loads(str(self._arrays.pop("header_json")))
        except (OSError, ValueError, KeyError) as e:
            raise DataError(f"{self.path}: not a training pack ({type(e).__name__}: {e}); "
                            "write one with `edgecnn data pack --split FILE --out FILE`") from e
        if self.header.get("format") != FORMAT:
            raise DataError(f"{self.path}: format {self.header.get('format')!r}, expected {FORMAT!r}; "
                            "rewrite it with this version's `edgecnn data pack`")

    def images(self, part: str) -> np.ndarray:
        return self._arrays[f"{part}_images"]

    def labels(self, part: str) -> np.ndarray:
        return self._arrays[f"{part}_labels"]

    def patients(self, part: str) -> np.ndarray:
        return self._arrays[f"{part}_patients"]

    @property
    def teacher(self) -> np.ndarray | None:
        return self._arrays.get("train_teacher")

    @property
    def split(self) -> dict[str, Any]:
        return self.header["split"]

    def summary(self) -> dict[str, Any]:
        return {"path": str(self.path), "teacher": self.teacher is not None, "teachers": self.header.get("teachers", []),
                **{part: {"patches": int(len(self.labels(part))), "patients": int(len(set(self.patients(part))))}
                   for part in PARTS}}

