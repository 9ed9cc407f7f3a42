"""The accuracy gate: which float row a row is compared with, and what it must reach.

A row passes when it ran and
- its balanced accuracy is at least its model's recorded test score (manifest ``metrics.test``,
  or the run's metrics.json for a Keras row) minus the tolerance; without a recorded score, the
  float reference's balanced accuracy minus the tolerance;
- it is no more than ``max_drop`` below its float reference (a different row, never itself);
- it reaches ``min_bac`` when that explicit floor is set.
The tolerance widens to two standard errors of the difference when the data is small (a
``--limit`` subset scores a model with a few points of noise), and the row says which floor
applied.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.formats import SUFFIX_RUNTIME

DEFAULT_TOLERANCE = 0.02
DEFAULT_MAX_DROP = 0.01
FLOAT_PRECISIONS = ("fp32",)


def row_label(row: dict[str, Any]) -> str:
    t = "default" if row.get("threads") is None else row["threads"]
    return f"{Path(row['artifact']).name} [{row['runtime']}, threads={t}{', tta' if row.get('tta') else ''}]"


def is_float_reference(row: dict[str, Any]) -> bool:
    return not row.get("tta") and (row["runtime"] == "keras" or row.get("precision") in FLOAT_PRECISIONS)


def pick_reference(i: int, rows: list[dict[str, Any]], scored: set[int]) -> int | None:
    """Index of the float row row ``i`` is compared with, or None.

    The Keras model of the same model when it ran, else an fp32 artifact of the same model (same
    format, its default runtime and the same threads first). Never the row itself, nor the same
    artifact on the same runtime (another thread count of itself): that would guarantee
    agreement 1.0 and drop 0. A TTA row is compared with the plain float row (what TTA changes)
    and is never a reference.
    """
    me = rows[i]
    models = {r["model"] for r in rows if r["runtime"] != "keras"}

    def usable(j: int) -> bool:
        r = rows[j]
        if j == i or j not in scored or not is_float_reference(r):
            return False
        if r["artifact"] == me["artifact"] and r["runtime"] == me["runtime"] and not me.get("tta"):
            return False
        return r["model"] == me["model"] or (r["runtime"] == "keras" and (r["model"] is None or len(models) == 1))

    def rank(j: int) -> tuple:
        r = rows[j]
        default_rt = SUFFIX_RUNTIME.get(Path(r["artifact"]).suffix.lower())
        return (r["runtime"] != "keras", r["format"] != me["format"], r["runtime"] != default_rt,
                r["threads"] != me["threads"], j)

    cands = [j for j in range(len(rows)) if usable(j)]
    return min(cands, key=rank) if cands else None


def bac_se(recall: float | None, specificity: float | None, n_pos: int | None, n_neg: int | None) -> float:
    """Binomial standard error of balanced accuracy = (recall + specificity) / 2."""
    if None in (recall, specificity, n_pos, n_neg) or not n_pos or not n_neg:
        return 0.0
    var = recall * (1 - recall) / n_pos + specificity * (1 - specificity) / n_neg
    return 0.5 * math.sqrt(max(var, 0.0)) if math.isfinite(var) else 0.0


def _se_of(score: dict[str, Any] | None) -> float:
    if not score:
        return 0.0
    n, pos = score.get("n_patches"), score.get("n_positive")
    return bac_se(score.get("recall"), score.get("specificity"), pos, None if n is None or pos is None else n - pos)


def expected_floor(row: dict[str, Any], ref: dict[str, Any] | None, tolerance: float) -> dict[str, Any] | None:
    """{"floor", "expected", "from", "tolerance"} for the row, or None when nothing is known."""
    rec = row.get("recorded")
    if rec and rec.get("balanced_accuracy") is not None:
        expected, other, source = float(rec["balanced_accuracy"]), rec, "recorded test score"
    elif ref is not None and ref.get("balanced_accuracy") is not None:
        expected, other, source = float(ref["balanced_accuracy"]), ref, "float reference"
    else:
        return None
    tol = max(tolerance, 2 * math.hypot(_se_of(row), _se_of(other)))
    return {"floor": expected - tol, "expected": expected, "from": source, "tolerance": tol}


def _reasons(r: dict[str, Any], min_bac: float | None, max_drop: float) -> list[str]:
    if r.get("error"):
        return [f"error: {r['error']}"]
    bac, out = r["balanced_accuracy"], []
    g = r.get("gate") or {}
    if g and not bac >= g["floor"]:
        out.append(f"balanced accuracy {bac:.4f} < {g['floor']:.4f} ({g['from']} {g['expected']:.4f} "
                   f"- tolerance {g['tolerance']:.3f})")
    if min_bac is not None and not bac >= min_bac:
        out.append(f"balanced accuracy {bac:.4f} < --min-bac {min_bac}")
    drop = r.get("bac_drop")
    if drop is not None and drop > max_drop:
        out.append(f"balanced accuracy drop {drop:.4f} vs {r['reference']} > --max-drop {max_drop}")
    return out


def apply_gate(rows: list[dict[str, Any]], min_bac: float | None = None, max_drop: float = DEFAULT_MAX_DROP
               ) -> list[str]:
    """Fill passed_gate / gate_reason in place; return "row: reason" for every failed row.

    A row's ``gate`` (from expected_floor) must be filled before; rows with nothing to compare
    with pass as "ungated" and say so.
    """
    failures = []
    for r in rows:
        reasons = _reasons(r, min_bac, max_drop)
        r["passed_gate"] = not reasons
        if reasons:
            r["gate_reason"] = "; ".join(reasons)
            failures.append(f"{row_label(r)}: {r['gate_reason']}")
        elif r.get("gate") or r.get("bac_drop") is not None or min_bac is not None:
            r["gate_reason"] = "ok"
        else:
            r["gate_reason"] = "ungated: no recorded score and no float reference (pass --min-bac or --keras-ref)"
    return failures


def label_agreement(p_ref: np.ndarray, thr_ref: float, p: np.ndarray, thr: float) -> dict[str, float]:
    """Share of equal labels, each model at its own threshold (a QAT artifact carries its own), and max |Δp|."""
    if len(p) == 0:
        return {"agreement": float("nan"), "max_abs_dp": float("nan")}
    same = (np.asarray(p_ref) >= thr_ref) == (np.asarray(p) >= thr)
    return {"agreement": float(same.mean()),
            "max_abs_dp": float(np.max(np.abs(np.asarray(p_ref, np.float64) - np.asarray(p, np.float64))))}


def score_against(rows: list[dict[str, Any]], probs: dict[int, np.ndarray], tolerance: float) -> None:
    """Fill each scored row's reference, agreement, drop and gate floor in place."""
    scored = set(probs)
    for i, row in enumerate(rows):
        if i not in scored:
            continue
        j = pick_reference(i, rows, scored)
        ref = rows[j] if j is not None else None
        if ref is not None:
            row["reference"] = row_label(ref)
            row.update(label_agreement(probs[j], ref["threshold"], probs[i], row["threshold"]))
            row["bac_drop"] = ref["balanced_accuracy"] - row["balanced_accuracy"]
        row["gate"] = expected_floor(row, ref, tolerance)
