"""Class balancing for training: the seed's undersampling, or balanced class weights."""

from __future__ import annotations

import numpy as np


def undersample(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Indices (ascending) keeping every minority-class patch and as many of the majority,
    drawn without replacement with ``seed``: the seed study's 50/50 undersampling of class 0."""
    labels = np.asarray(labels).astype(np.int64)
    if labels.size == 0:
        return np.zeros(0, dtype=np.int64)
    counts = np.bincount(labels, minlength=2)
    if counts[0] == 0 or counts[1] == 0:
        raise ValueError(f"cannot balance: one class is absent (class counts {counts.tolist()})")
    major = int(np.argmax(counts))
    n = int(counts.min())
    rng = np.random.default_rng(seed)
    major_idx = np.flatnonzero(labels == major)
    keep = np.concatenate([np.flatnonzero(labels != major), rng.choice(major_idx, size=n, replace=False)])
    return np.sort(keep)


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Balanced weights ``n / (2 * n_c)`` (sklearn's "balanced"): each class adds equal total loss."""
    labels = np.asarray(labels).astype(np.int64)
    counts = np.bincount(labels, minlength=2)
    if counts[0] == 0 or counts[1] == 0:
        raise ValueError(f"cannot weight classes: one class is absent (class counts {counts.tolist()})")
    n = counts.sum()
    return {0: float(n / (2 * counts[0])), 1: float(n / (2 * counts[1]))}


def sample_weights(labels: np.ndarray, weights: dict[int, float] | None = None) -> np.ndarray:
    """Per-patch float32 weights from class weights (for ``make_dataset(sample_weights=...)``)."""
    labels = np.asarray(labels).astype(np.int64)
    w = weights or class_weights(labels)
    return np.where(labels == 1, w[1], w[0]).astype(np.float32)
