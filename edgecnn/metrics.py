"""Binary IDC metrics in plain numpy, shared by training, evaluation, export checks and bench.

No scikit-learn and no TensorFlow: the device install runs these too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgecnn import CLASS_NAMES


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """2×2 matrix, rows = true class (0, 1), columns = predicted class."""
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    cm = np.zeros((2, 2), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def roc_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve by the rank statistic (ties get average ranks)."""
    y_true = np.asarray(y_true).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos = int(y_true.sum())
    n_neg = y_true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    ranks = np.empty(scores.size, dtype=np.float64)
    # Average ranks over runs of equal scores.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [scores.size]))
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[y_true].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _safe_div(a: float, b: float) -> float:
    return float(a) / float(b) if b else 0.0


def binary_metrics(y_true: np.ndarray, p_idc: np.ndarray, threshold: float = 0.5) -> dict[str, Any]:
    """Every metric the run folder, ``evaluate --json`` and the bench rows report.

    ``p_idc`` is the IDC-class probability; a patch is called IDC when ``p_idc >= threshold``.
    """
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    p_idc = np.asarray(p_idc, dtype=np.float64).ravel()
    if y_true.shape != p_idc.shape:
        raise ValueError(f"labels ({y_true.shape}) and probabilities ({p_idc.shape}) differ in length")
    y_pred = (p_idc >= threshold).astype(np.int64)
    cm = confusion(y_true, y_pred)
    tn, fp, fn, tp = (int(v) for v in cm.ravel())
    tpr = _safe_div(tp, tp + fn)
    tnr = _safe_div(tn, tn + fp)
    precision = _safe_div(tp, tp + fp)
    f1 = _safe_div(2 * precision * tpr, precision + tpr)
    npv = _safe_div(tn, tn + fn)
    f1_neg = _safe_div(2 * npv * tnr, npv + tnr)
    n = int(y_true.size)
    report = {
        CLASS_NAMES[0]: {"precision": npv, "recall": tnr, "f1": f1_neg, "support": tn + fp},
        CLASS_NAMES[1]: {"precision": precision, "recall": tpr, "f1": f1, "support": tp + fn},
    }
    return {
        "accuracy": _safe_div(tp + tn, n),
        "balanced_accuracy": (tpr + tnr) / 2.0,
        "precision": precision,
        "recall": tpr,
        "specificity": tnr,
        "f1": f1,
        "roc_auc": roc_auc(y_true, p_idc),
        "threshold": float(threshold),
        "confusion_matrix": cm.tolist(),
        "classification_report": report,
        "n_patches": n,
        "n_positive": tp + fn,
    }


def best_threshold(y_true: np.ndarray, p_idc: np.ndarray) -> tuple[float, float]:
    """Threshold that maximises balanced accuracy; returns (threshold, balanced accuracy).

    Candidates are midpoints between consecutive distinct scores, so the choice does not sit
    on a sample's exact probability. Ties go to the threshold nearest 0.5.
    """
    y_true = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(p_idc, dtype=np.float64).ravel()
    n_pos = int(y_true.sum())
    n_neg = y_true.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return 0.5, float("nan")
    order = np.argsort(-p, kind="mergesort")
    ps, ys = p[order], y_true[order]
    # Predicting positive for the top k scores: tp(k), fp(k) as cumulative sums.
    tp = np.cumsum(ys)
    fp = np.cumsum(1 - ys)
    distinct = np.flatnonzero(np.diff(ps)) if ps.size > 1 else np.array([], dtype=np.int64)
    ks = np.concatenate(([-1], distinct, [ps.size - 1]))  # k index of last positive-called sample
    tpr = np.where(ks >= 0, tp[np.maximum(ks, 0)], 0) / n_pos
    fpr = np.where(ks >= 0, fp[np.maximum(ks, 0)], 0) / n_neg
    bac = (tpr + 1 - fpr) / 2
    thr = np.empty(ks.size)
    thr[0] = np.nextafter(ps[0], np.inf)
    inner = ks[1:-1]
    thr[1:-1] = (ps[inner] + ps[inner + 1]) / 2
    thr[-1] = ps[-1] / 2 if ps[-1] > 0 else 0.0
    best = bac.max()
    cand = np.flatnonzero(np.isclose(bac, best, rtol=0, atol=1e-12))
    i = cand[np.argmin(np.abs(thr[cand] - 0.5))]
    return float(thr[i]), float(bac[i])


def agreement(p_ref: np.ndarray, p_other: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """How closely one model reproduces another: share of equal labels and max |Δp|."""
    a = np.asarray(p_ref, dtype=np.float64).ravel()
    b = np.asarray(p_other, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"cannot compare {a.size} probabilities with {b.size}")
    return {
        "agreement": float(np.mean((a >= threshold) == (b >= threshold))) if a.size else float("nan"),
        "max_abs_dp": float(np.max(np.abs(a - b))) if a.size else float("nan"),
    }


def _patient_counts(y_true: np.ndarray, p_idc: np.ndarray, patients: np.ndarray, threshold: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(patient ids, counts): counts[i] = [tp, fn, tn, fp] of patient ids[i] at ``threshold``."""
    y = np.asarray(y_true, dtype=np.int64).ravel() == 1
    pred = np.asarray(p_idc, dtype=np.float64).ravel() >= threshold
    ids, inv = np.unique(np.asarray(patients).astype(str).ravel(), return_inverse=True)
    counts = np.stack([np.bincount(inv[m], minlength=len(ids))
                       for m in (y & pred, y & ~pred, ~y & ~pred, ~y & pred)], axis=1).astype(np.float64)
    return ids, counts


def patient_bootstrap_bac(y_true: np.ndarray, p_idc: np.ndarray, patients: np.ndarray, threshold: float,
                          n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """95 % interval of balanced accuracy from resampling *patients* with replacement.

    Patches of one patient are strongly correlated (one slide, one stain), so the uncertainty of
    a score on a few dozen unseen patients is set by the patients, not by the patch count; a
    patch-level interval would be several times too narrow.
    """
    counts = _patient_counts(y_true, p_idc, patients, threshold)[1]
    k = len(counts)
    if k < 2:
        return {"balanced_accuracy_ci95": None, "n_boot": 0}
    # A replicate's confusion counts are its patient multiplicities times the per-patient counts.
    draws = np.random.default_rng(seed).integers(0, k, size=(n_boot, k))
    mult = np.zeros((n_boot, k))
    np.add.at(mult, (np.repeat(np.arange(n_boot), k), draws.ravel()), 1.0)
    tp, fn, tn, fp = (mult @ counts).T
    with np.errstate(invalid="ignore", divide="ignore"):
        bac = (tp / (tp + fn) + tn / (tn + fp)) / 2.0
    bac = bac[np.isfinite(bac)]   # replicates that drew no patch of one class say nothing
    lo, hi = np.percentile(bac, [2.5, 97.5])
    return {"balanced_accuracy_ci95": [float(lo), float(hi)], "n_boot": int(bac.size)}


def per_patient(y_true: np.ndarray, p_idc: np.ndarray, patients: np.ndarray, threshold: float) -> list[dict[str, Any]]:
    """One row per patient: patches, IDC patches, accuracy and the confusion counts.

    A pooled score leans on the patients with the most patches (a complete slide can hold a
    third of a test set); these rows show which slides carry the errors.
    """
    ids, counts = _patient_counts(y_true, p_idc, patients, threshold)
    rows = []
    for pid, (tp, fn, tn, fp) in zip(ids.tolist(), counts.astype(int).tolist()):
        n = tp + fn + tn + fp
        rows.append({"patient": pid, "n_patches": n, "n_idc": tp + fn, "accuracy": (tp + tn) / n,
                     "tp": tp, "fp": fp, "fn": fn, "tn": tn})
    return rows


def patient_report(y_true: np.ndarray, p_idc: np.ndarray, patients: np.ndarray, threshold: float) -> dict[str, Any]:
    """The patient-level additions to ``binary_metrics``: the 95 % interval, the per-patient
    rows and the share of the largest patient."""
    rows = per_patient(y_true, p_idc, patients, threshold)
    n = sum(r["n_patches"] for r in rows)
    largest = max(rows, key=lambda r: r["n_patches"]) if rows else None
    return {**patient_bootstrap_bac(y_true, p_idc, patients, threshold),
            "n_patients": len(rows),
            "largest_patient": {"patient": largest["patient"], "share": largest["n_patches"] / n} if largest else None,
            "per_patient": rows}
