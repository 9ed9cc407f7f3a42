"""Context stages: turn a grid of per-tile IDC probabilities into field-level probabilities.

The dataset labels whole outlined regions, so one 50 px tile cannot always show its label; its
neighbours often can. A stage reads the grid the scanner (or ``evaluate --context``) already has:
``probs`` (rows × cols) and ``present`` (tiles that were classified; background and tiles missing
from the data are absent). It never sees pixels, so it costs microseconds, and it is plain numpy:
the device install runs it.

Neighbours are counted in Chebyshev rings: ring d holds the 8·d tiles at distance d. Ring sums
come from integral images, so a stage is O(tiles) whatever its radius.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

EPS = 1e-4   # int8 outputs reach exactly 0 and 1 (1/256 steps); logits are taken at [EPS, 1 - EPS]


class ContextError(ValueError):
    """A context stage that cannot run on this input; the message says what to pass instead."""


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))


def box_sums(values: np.ndarray, radius: int) -> np.ndarray:
    """Sum over the (2r+1)² square around every cell, cells outside the grid counting 0."""
    r = int(radius)
    rows, cols = values.shape
    ii = np.zeros((rows + 2 * r + 1, cols + 2 * r + 1), dtype=np.float64)
    ii[r + 1 : r + 1 + rows, r + 1 : r + 1 + cols] = values
    ii = ii.cumsum(0).cumsum(1)
    k = 2 * r + 1
    return ii[k:, k:] - ii[:-k, k:] - ii[k:, :-k] + ii[:-k, :-k]


def ring_means(z: np.ndarray, present: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Per ring d = 1..radius: the mean of ``z`` over present tiles in the ring (NaN where none)
    and the count of present tiles in it. Shapes (radius, rows, cols)."""
    w = present.astype(np.float64)
    zw = np.where(present, z, 0.0)
    means, counts = [], []
    prev_s, prev_n = zw, w   # the d = 0 box is the tile itself
    for d in range(1, radius + 1):
        s, n = box_sums(zw, d), box_sums(w, d)
        ring_s, ring_n = s - prev_s, n - prev_n
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(np.where(ring_n > 0.5, ring_s / np.maximum(ring_n, 1.0), np.nan))
        counts.append(np.rint(ring_n))
        prev_s, prev_n = s, n
    return np.stack(means), np.stack(counts)


@dataclass
class ContextStage:
    """Base: ``field_probs`` maps a probability grid to field-level probabilities (NaN where absent)."""

    threshold: float = 0.5          # operating point of the stage's output, chosen on validation
    tile_size: int = 50             # pixels per tile, and the grid step it was fitted at
    stride: int = 50
    meta: dict[str, Any] = field(default_factory=dict)   # how it was fitted and chosen (for the card)

    kind: ClassVar[str] = ""

    @property
    def radius(self) -> int:
        raise NotImplementedError

    def field_probs(self, probs: np.ndarray, present: np.ndarray | None = None) -> np.ndarray:
        probs = np.asarray(probs, dtype=np.float64)
        if probs.ndim != 2:
            raise ContextError(f"a context stage takes a 2-D grid of tile probabilities, got shape {probs.shape}")
        present = np.isfinite(probs) if present is None else (np.asarray(present, bool) & np.isfinite(probs))
        out = np.full(probs.shape, np.nan)
        if present.any():
            out[present] = self._apply(np.where(present, probs, 0.0), present)[present]
        return out

    def _apply(self, probs: np.ndarray, present: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def check_geometry(self, tile_size: int, stride: int, what: str = "the model") -> None:
        if (int(tile_size), int(stride)) != (self.tile_size, self.stride):
            raise ContextError(
                f"the context stage was fitted on {self.tile_size} px tiles at stride {self.stride}, but {what} "
                f"has {tile_size} px tiles at stride {stride}; scan with --stride {self.stride}, or pass --no-context")

    def params(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self.params(), "threshold": float(self.threshold),
                "tile_size": int(self.tile_size), "stride": int(self.stride), "meta": self.meta}

    def describe(self) -> str:
        raise NotImplementedError


@dataclass
class NeighbourMean(ContextStage):
    """p' = (1 − weight)·p + weight·(mean p of the present tiles within ``radius``); p where none."""

    size: int = 2
    weight: float = 0.5
    kind: ClassVar[str] = "neighbour_mean"

    @property
    def radius(self) -> int:
        return int(self.size)

    def _apply(self, probs: np.ndarray, present: np.ndarray) -> np.ndarray:
        w = present.astype(np.float64)
        s = box_sums(probs * w, self.size) - probs * w
        n = box_sums(w, self.size) - w
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(n > 0.5, s / np.maximum(n, 1.0), probs)
        return (1.0 - self.weight) * probs + self.weight * mean

    def params(self) -> dict[str, Any]:
        return {"radius": int(self.size), "weight": float(self.weight)}

    def describe(self) -> str:
        return f"neighbour mean, radius {self.size}, weight {self.weight:g}"


@dataclass
class RingLogistic(ContextStage):
    """A learned, rotation-symmetric convolution over logits and presence.

    Features of a tile: its own logit and, for each ring d, the mean logit of the ring's present
    tiles (its own logit where the ring is empty, so an isolated tile falls back to itself); with
    ``presence``, also each ring's share of present (tissue) tiles. Field logit = bias + coef ·
    features. Ring *means*, not sums: the data here holds a random ~28 % of each grid and a
    microscope field all of it, and a mean reads the same on both (the shares do not: validation,
    which holds one complete field, decides whether they are used).
    """

    size: int = 2
    coef: list[float] = field(default_factory=list)   # [own, ring 1, …, ring size, (share 1, …, share size)]
    bias: float = 0.0
    presence: bool = False
    kind: ClassVar[str] = "ring_logistic"

    @property
    def radius(self) -> int:
        return int(self.size)

    def __post_init__(self) -> None:
        n = self.size + 1 + (self.size if self.presence else 0)
        if len(self.coef) != n:
            raise ContextError(f"ring_logistic of radius {self.size}{' with presence' if self.presence else ''} "
                               f"needs {n} coefficients, got {len(self.coef)}")

    def _apply(self, probs: np.ndarray, present: np.ndarray) -> np.ndarray:
        f = ring_features(probs, present, self.size, self.presence)
        return sigmoid(self.bias + np.tensordot(np.asarray(self.coef), f, 1))

    def params(self) -> dict[str, Any]:
        return {"radius": int(self.size), "coef": [float(c) for c in self.coef], "bias": float(self.bias),
                "presence": bool(self.presence)}

    def describe(self) -> str:
        return f"learned ring convolution, radius {self.size}" + (", with tissue presence" if self.presence else "")


def ring_features(probs: np.ndarray, present: np.ndarray, radius: int, presence: bool = False) -> np.ndarray:
    """(radius + 1 [+ radius], rows, cols): own logit, each ring's mean logit (own where the ring is
    empty), and with ``presence`` each ring's share of present tiles."""
    z = logit(probs)
    means, counts = ring_means(z, present, radius)
    parts = [z[None], np.where(np.isnan(means), z[None], means)]
    if presence:
        parts.append(counts / (8.0 * np.arange(1, radius + 1))[:, None, None])
    return np.concatenate(parts)


STAGES: dict[str, type[ContextStage]] = {c.kind: c for c in (NeighbourMean, RingLogistic)}


def stage_from_dict(d: dict[str, Any], where: str = "context stage") -> ContextStage:
    """The stage a manifest or ``context.json`` describes; a ContextError naming ``where`` if it cannot."""
    try:
        cls = STAGES[d["kind"]]
        common = {"threshold": float(d.get("threshold", 0.5)), "tile_size": int(d.get("tile_size", 50)),
                  "stride": int(d.get("stride", 50)), "meta": dict(d.get("meta", {}))}
        if cls is NeighbourMean:
            return NeighbourMean(size=int(d["radius"]), weight=float(d["weight"]), **common)
        return RingLogistic(size=int(d["radius"]), coef=[float(c) for c in d["coef"]], bias=float(d["bias"]),
                            presence=bool(d.get("presence", False)), **common)
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, ContextError):
            raise
        kinds = ", ".join(STAGES)
        raise ContextError(f"{where}: not a context stage ({type(e).__name__}: {e}); expected kind one of {kinds} "
                           "with its parameters, as `edgecnn context fit` writes it") from e
