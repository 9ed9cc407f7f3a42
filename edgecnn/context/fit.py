"""Fit and choose a context stage, in numpy.

The learned stage is fitted on **out-of-fold** outputs of the training patients (tile models that
never saw the patient, ``edgecnn context fit`` makes them), never on a model's in-sample
probabilities, which are overconfident. Every candidate (neighbour means over a small grid of
radius × weight, learned stages of several radii) is then scored on the **validation** patients
with the shipped model's own outputs, and the one with the highest validation ROC AUC is kept; its
threshold is the validation balanced-accuracy optimum, like the tile model's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from edgecnn.context.patches import field_probs_of_patches, patient_grids
from edgecnn.context.stage import ContextStage, NeighbourMean, RingLogistic, ring_features
from edgecnn.metrics import best_threshold, roc_auc

MEAN_GRID = [(r, w) for r in (1, 2, 3, 4, 6, 8) for w in (0.25, 0.5, 0.75)]
LEARNED_RADII = (1, 2, 3, 4, 6, 8)
L2 = 1e-3


@dataclass
class Tiles:
    """Per-patch outputs with what places them: probabilities, labels, patients, x, y."""

    probs: np.ndarray
    labels: np.ndarray
    patients: np.ndarray
    xs: np.ndarray
    ys: np.ndarray



def design(tiles: Tiles, radius: int, step: int, presence: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Ring features (n, features) and labels of every placed tile, patient by patient."""
    xs, ys = [], []
    for _, g in patient_grids({"p": tiles.probs, "y": tiles.labels}, tiles.patients, tiles.xs, tiles.ys, step):
        present = np.isfinite(g["p"])
        f = ring_features(np.where(present, g["p"], 0.5), present, radius, presence)
        xs.append(f[:, present].T)
        ys.append(g["y"][present])
    return np.concatenate(xs), np.concatenate(ys).astype(np.int64)


def logistic(x: np.ndarray, y: np.ndarray, l2: float = L2, iters: int = 50) -> tuple[np.ndarray, float]:
    """Class-balanced, L2-regularised logistic regression by Newton's method: (coef, bias)."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    pos = max(int(y.sum()), 1)
    sw = np.where(y == 1, n / (2.0 * pos), n / (2.0 * max(n - pos, 1))) / n
    reg = np.full(d + 1, l2)
    reg[-1] = 0.0
    beta = np.zeros(d + 1)
    for _ in range(iters):
        p = 0.5 * (1.0 + np.tanh(0.5 * (xb @ beta)))
        grad = xb.T @ (sw * (p - y)) + reg * beta
        hess = (xb * (sw * p * (1 - p))[:, None]).T @ xb + np.diag(reg + 1e-12)
        stepv = np.linalg.solve(hess, grad)
        beta -= stepv
        if np.abs(stepv).max() < 1e-8:
            break
    return beta[:-1], float(beta[-1])


def fit_learned(oof: Tiles, radius: int, step: int = 50, presence: bool = False) -> RingLogistic:
    x, y = design(oof, radius, step, presence)
    coef, bias = logistic(x, y)
    return RingLogistic(size=radius, coef=coef.tolist(), bias=bias, presence=presence, tile_size=step, stride=step)


def candidates(oof: Tiles | None, step: int = 50) -> Iterable[ContextStage]:
    for r, w in MEAN_GRID:
        yield NeighbourMean(size=r, weight=w, tile_size=step, stride=step)
    if oof is not None:
        for presence in (False, True):
            for r in LEARNED_RADII:
                yield fit_learned(oof, r, step, presence)


def score(stage: ContextStage, val: Tiles) -> dict[str, Any]:
    p, _ = field_probs_of_patches(stage, val.probs, val.patients, val.xs, val.ys)
    thr, bac = best_threshold(val.labels, p)
    return {"stage": stage.describe(), "params": stage.params(), "val_auc": roc_auc(val.labels, p),
            "val_bac": bac, "threshold": thr}


def choose(val: Tiles, oof: Tiles | None, step: int = 50) -> tuple[ContextStage, list[dict[str, Any]]]:
    """Every candidate scored on validation; the best by AUC (ties: the simpler, listed first)."""
    table: list[dict[str, Any]] = []
    best: tuple[float, ContextStage] | None = None
    for stage in candidates(oof, step):
        row = score(stage, val)
        table.append(row)
        stage.threshold = row["threshold"]
        if best is None or row["val_auc"] > best[0] + 1e-9:
            best = (row["val_auc"], stage)
    assert best is not None   # the neighbour means are always candidates
    return best[1], table
