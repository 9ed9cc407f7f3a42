"""Several data sources read as one: ``--data A --data B`` or ``EDGECNN_DATA=A:B``.

Each source is loaded (and cached) on its own, so adding a source never re-decodes the others;
the merge is a concatenation in PatchSet order. A patch is identified by (patient, x, y): the
same patch in two sources is kept once (first source wins) and counted; the same patch with two
different labels is an error naming both files, since silently picking one would train on a
wrong label.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgecnn.data.layout import DataError
from edgecnn.data.patchset import PatchSet


def parse_sources(value: Any) -> list[Path]:
    """The data sources in ``value``: a path, an ``os.pathsep``-separated list, or a sequence.

    The same source twice (after resolving links and ``..``) is an error: it would count
    every patch twice in a report and hide a typo where another folder was meant.
    """
    items = [value] if isinstance(value, (str, os.PathLike)) else list(value or [])
    paths: list[Path] = []
    for item in items:
        parts = str(item).split(os.pathsep) if isinstance(item, str) else [item]
        paths += [Path(p).expanduser() for p in parts if str(p).strip()]
    if not paths:
        raise DataError("no data source given: pass --data PATH (repeatable) or set EDGECNN_DATA")
    seen: dict[Path, Path] = {}
    for p in paths:
        real = p.resolve()
        if real in seen:
            raise DataError(f"data source {p} is given twice (also as {seen[real]}); give each folder or zip once")
        seen[real] = p
    return paths


def join_sources(paths: Sequence[str | os.PathLike]) -> str:
    """The one-string form of several sources, as stored in config.json and EDGECNN_DATA."""
    return os.pathsep.join(str(p) for p in paths)


def merge_patchsets(sets: Sequence[PatchSet]) -> PatchSet:
    """One PatchSet from several, in (patient, label, y, x) order; duplicates kept once."""
    sources = [str(s.report.get("source")) for s in sets]
    rows = [(si, i) for si, s in enumerate(sets) for i in range(len(s))]
    keep, dupes = _first_of_each_patch(sets, rows)
    si = np.array([rows[k][0] for k in keep], dtype=np.int64)
    ii = np.array([rows[k][1] for k in keep], dtype=np.int64)
    parts = [s.take(ii[si == j]) for j, s in enumerate(sets)]
    cat = {name: np.concatenate([getattr(p, name) for p in parts]) for name in ("labels", "xs", "ys")}
    patients = np.concatenate([p.patients.astype(str) for p in parts])
    files = np.concatenate([np.array([str(Path(src) / f) for f in p.files], dtype=str) for src, p in zip(sources, parts)])
    order = np.lexsort((cat["xs"], cat["ys"], cat["labels"], patients))
    images = np.concatenate([p.images for p in parts])[order]
    report = _merged_report(sets, sources, cat["labels"][order], patients[order], dupes)
    return PatchSet(images=images, labels=cat["labels"][order], patients=patients[order], xs=cat["xs"][order],
                    ys=cat["ys"][order], files=files[order], report=report)


def _first_of_each_patch(sets, rows) -> tuple[list[int], list[dict]]:
    first: dict[tuple[str, int, int], int] = {}
    keep: list[int] = []
    dupes: list[dict] = []
    for k, (si, i) in enumerate(rows):
        s = sets[si]
        key = (str(s.patients[i]), int(s.xs[i]), int(s.ys[i]))
        if key not in first:
            first[key] = k
            keep.append(k)
            continue
        fj, fi = rows[first[key]]
        a, b = _file_of(sets[fj], fi), _file_of(s, i)
        if int(sets[fj].labels[fi]) != int(s.labels[i]):
            raise DataError(f"two sources disagree on one patch's label: {a} says class {int(sets[fj].labels[fi])}, "
                            f"{b} says class {int(s.labels[i])}. Remove the wrong copy, or drop one source.")
        dupes.append({"kept": a, "ignored": b})
    return keep, dupes


def _file_of(ps, i: int) -> str:
    return str(Path(str(ps.report.get("source"))) / str(ps.files[i]))


def _merged_report(sets, sources: list[str], labels: np.ndarray, patients: np.ndarray,
                   dupes: list[dict]) -> dict[str, Any]:
    """The single-source report's keys, summed; per-source reports under ``"sources"``."""
    def total(key: str) -> int:
        return int(sum(int(s.report.get(key, 0) or 0) for s in sets))

    first = sets[0].report
    counts = np.bincount(labels.astype(np.int64), minlength=2)
    skipped = [dict(r, file=str(Path(src) / r["file"])) for s, src in zip(sets, sources)
               for r in s.report.get("skipped", [])]
    border = {k: sum(int(s.report.get("border", {}).get(k, 0)) for s in sets) for k in ("smaller", "padded", "dropped")}
    hist: Counter = Counter()
    for s in sets:
        hist.update(s.report.get("size_histogram", {}))
    full = f"{first.get('patch_size')}x{first.get('patch_size')}"
    key = hashlib.sha256("\n".join(str(s.report.get("cache_key")) for s in sets).encode()).hexdigest()[:24]
    return {
        "source": join_sources(sources),
        "sources": [dict(s.report, source=src) for s, src in zip(sets, sources)],
        "format": "+".join(str(s.report.get("format")) for s in sets),
        "n_files": total("n_files"),
        "n_patches": int(len(labels)),
        "n_patients": int(len(set(patients.tolist()))),
        "class_counts": {0: int(counts[0]), 1: int(counts[1])},
        "patch_size": first.get("patch_size"),
        "border": dict(border, rule=first.get("border", {}).get("rule")),
        "sizes": {full: int(hist.get(full, 0)), "smaller": border["smaller"]},
        "size_histogram": dict(sorted(hist.items(), key=lambda kv: (-kv[1], kv[0]))),
        "skipped_by_reason": dict(sum((Counter(s.report.get("skipped_by_reason", {})) for s in sets), Counter())),
        "skipped": skipped,
        "n_skipped": len(skipped),
        "duplicates_ignored": total("duplicates_ignored"),
        "cross_source_duplicates": len(dupes),
        "cross_source_duplicate_examples": dupes[:10],
        "n_ignored": total("n_ignored"),
        "cache_key": key,
        "from_cache": all(bool(s.report.get("from_cache")) for s in sets),
    }
