"""Context for loose patches: rebuild each patient's tile grid from the x/y in the Kaggle file names.

Only patches of the same patient are neighbours. A patch whose coordinates are unknown (negative)
or off the patient's grid runs as a tile without neighbours, and the report counts it; two
patches at the same place of one patient are an error, since neither can be placed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgecnn.context.stage import ContextError, ContextStage, box_sums


def field_probs_of_patches(stage: ContextStage, probs: np.ndarray, patients: np.ndarray, xs: np.ndarray,
                           ys: np.ndarray, files: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Field-level probability of every patch (same order) and a report of what had neighbours."""
    probs = np.asarray(probs, dtype=np.float64)
    out = np.empty_like(probs)
    report = {"patches": int(probs.size), "without_coordinates": 0, "off_grid": 0, "with_neighbours": 0,
              "patients": 0}
    uniq, inv = np.unique(np.asarray(patients).astype(str), return_inverse=True)
    report["patients"] = int(len(uniq))
    for k, pid in enumerate(uniq):
        idx = np.flatnonzero(inv == k)
        out[idx] = _patient_field(stage, probs[idx], np.asarray(xs)[idx], np.asarray(ys)[idx], str(pid),
                                  None if files is None else np.asarray(files)[idx], report)
    return out, report


def field_scores(stage: ContextStage, probs: np.ndarray, labels: np.ndarray, patients: np.ndarray, xs: np.ndarray,
                 ys: np.ndarray, files: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
    """(field-level probabilities, neighbour report, binary metrics at the stage's threshold): what
    ``evaluate --context`` and ``bench`` report."""
    from edgecnn.metrics import binary_metrics

    q, cover = field_probs_of_patches(stage, probs, patients, xs, ys, files)
    return q, cover, binary_metrics(labels, q, stage.threshold)


def _patient_field(stage: ContextStage, p: np.ndarray, x: np.ndarray, y: np.ndarray, pid: str,
                   files: np.ndarray | None, report: dict[str, Any]) -> np.ndarray:
    out = alone(stage, p)
    on, rows, cols = place(x, y, stage.stride)
    unknown = int(((x < 0) | (y < 0)).sum())
    report["without_coordinates"] += unknown
    report["off_grid"] += int(p.size - on.sum()) - unknown
    if not on.any():
        return out
    _refuse_duplicates(rows, cols, pid, x[on], y[on], None if files is None else files[on])
    grid = np.full((int(rows.max()) + 1, int(cols.max()) + 1), np.nan)
    grid[rows, cols] = p[on]
    out[on] = stage.field_probs(grid)[rows, cols]
    present = np.isfinite(grid).astype(np.int64)
    report["with_neighbours"] += int((box_sums(present, 1)[rows, cols] > 1.5).sum())
    return out


def alone(stage: ContextStage, p: np.ndarray) -> np.ndarray:
    """The stage's output for tiles without neighbours: each placed further apart than its radius."""
    gap = stage.radius + 1
    grid = np.full((p.size * gap, 1), np.nan)
    grid[::gap, 0] = p
    return stage.field_probs(grid)[::gap, 0]


def _refuse_duplicates(rows: np.ndarray, cols: np.ndarray, pid: str, x: np.ndarray, y: np.ndarray,
                       files: np.ndarray | None) -> None:
    key = rows.astype(np.int64) * (int(cols.max()) + 1) + cols
    uniq, first, counts = np.unique(key, return_index=True, return_counts=True)
    if (counts > 1).any():
        i = int(first[np.argmax(counts > 1)])
        same = np.flatnonzero(key == key[i])
        names = ", ".join(str(files[j]) for j in same[:3]) if files is not None else f"{len(same)} patches"
        raise ContextError(
            f"patient {pid}: two patches at x={int(x[i])}, y={int(y[i])} ({names}); a tile grid holds one "
            "patch per place: remove the duplicate from the data (or pass the sources separately), or "
            "run without --context")


def place(x: np.ndarray, y: np.ndarray, step: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which patches sit on the grid of step ``step`` anchored at the patient's top-left patch, and
    their (row, col) there. Unknown (negative) coordinates are off the grid."""
    x, y = np.asarray(x, np.int64), np.asarray(y, np.int64)
    known = (x >= 0) & (y >= 0)
    if not known.any():
        return known, np.zeros(0, np.int64), np.zeros(0, np.int64)
    x0, y0 = x[known].min(), y[known].min()
    on = known & ((x - x0) % step == 0) & ((y - y0) % step == 0)
    return on, (y[on] - y0) // step, (x[on] - x0) // step


def patient_grids(values: dict[str, np.ndarray], patients: np.ndarray, xs: np.ndarray, ys: np.ndarray,
                  step: int):
    """Per patient, a dense grid (NaN where no patch) of each array in ``values`` (for fitting)."""
    uniq, inv = np.unique(np.asarray(patients).astype(str), return_inverse=True)
    for k, pid in enumerate(uniq):
        idx = np.flatnonzero(inv == k)
        on, rows, cols = place(np.asarray(xs)[idx], np.asarray(ys)[idx], step)
        if not on.any():
            continue
        _refuse_duplicates(rows, cols, str(pid), np.asarray(xs)[idx][on], np.asarray(ys)[idx][on], None)
        shape = (int(rows.max()) + 1, int(cols.max()) + 1)
        grids = {}
        for name, v in values.items():
            g = np.full(shape, np.nan)
            g[rows, cols] = np.asarray(v, dtype=np.float64)[idx][on]
            grids[name] = g
        yield str(pid), grids
