"""``PatchSet``: patches, labels, patients and positions in one stable order, with the row
selections the split, the merge of several sources and tf.data use. Numpy only; the reader that
fills one is ``edgecnn.data.dataset``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Sequence

import numpy as np


@dataclass
class PatchSet:
    """Patches in a stable order (patient, label, y, x).

    ``images`` may be a read-only memmap (from the cache); ``files`` are relative to
    ``report["source"]`` (member names for a zip).
    """

    images: np.ndarray     # (N, S, S, 3) uint8
    labels: np.ndarray     # (N,) int8, 1 = IDC
    patients: np.ndarray   # (N,) str
    xs: np.ndarray         # (N,) int32
    ys: np.ndarray         # (N,) int32
    files: np.ndarray      # (N,) str
    report: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(len(self.labels))

    @property
    def patient_ids(self) -> list[str]:
        return sorted(set(self.patients.tolist()))

    def class_counts(self) -> dict[int, int]:
        counts = np.bincount(self.labels.astype(np.int64), minlength=2)
        return {0: int(counts[0]), 1: int(counts[1])}

    def patient_stats(self) -> dict[str, tuple[int, int]]:
        """patient -> (n_patches, n_idc)."""
        uniq, inv = np.unique(self.patients, return_inverse=True)
        n = np.bincount(inv, minlength=len(uniq))
        pos = np.bincount(inv, weights=self.labels.astype(np.float64), minlength=len(uniq))
        return {str(p): (int(a), int(b)) for p, a, b in zip(uniq, n, pos)}

    def indices_of(self, patient_ids: Iterable[str]) -> np.ndarray:
        """Row indices (in order) of the given patients; lets tf.data gather from a memmap."""
        wanted = np.asarray(sorted({str(p) for p in patient_ids}), dtype=self.patients.dtype)
        return np.flatnonzero(np.isin(self.patients, wanted))

    def take(self, indices: Sequence[int] | np.ndarray) -> "PatchSet":
        idx = np.asarray(indices, dtype=np.int64)
        return replace(
            self,
            images=self.images[idx],
            labels=self.labels[idx],
            patients=self.patients[idx],
            xs=self.xs[idx],
            ys=self.ys[idx],
            files=self.files[idx],
        )

    def select(self, patient_ids: Iterable[str]) -> "PatchSet":
        """The patches of ``patient_ids``, in this set's order (images are copied into RAM)."""
        ids = {str(p) for p in patient_ids}
        unknown = ids - set(self.patient_ids)
        if unknown:
            raise KeyError(f"patients not in this PatchSet: {sorted(unknown)[:10]}")
        return self.take(self.indices_of(ids))
