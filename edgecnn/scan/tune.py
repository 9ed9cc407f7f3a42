"""Which artifact, runtime, thread count and batch size scan fastest on this device, measured
here, and the small device profile that records the answer for ``Scanner`` and ``edgecnn scan``.

The answer depends on the CPU (here ORT int8 and LiteRT int8 tie at batch 1, OpenVINO led at
batch 64 in one run; elsewhere ONNX Runtime stopped scaling at 8 threads), so it is measured,
not assumed. Each candidate scans the same real frame end to end (``Scanner.scan``: mask,
tiling, inference). Candidates are timed in interleaved rounds (A B C A B C ...) with
``edgecnn.bench.latency.measure_latency`` and ranked by the median of their round medians, so
load that comes and goes on a shared machine hits every candidate alike. A candidate whose tile
labels differ from the reference artifact's (the default release model) on more than
``max_label_diff`` of the tissue tiles is not eligible.

The profile's layout, and its reading and checking, are ``edgecnn.scan.profile``. No TensorFlow here.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from edgecnn.bench.latency import measure_latency
from edgecnn.paths import release_model_dir
from edgecnn.scan.model import default_model_path
from edgecnn.scan.profile import PROFILE_VERSION, load_profile, machine_key, profile_path, save_profile
from edgecnn.scan.scanner import Scanner

__all__ = ["Candidate", "candidates", "load_profile", "machine_key", "profile_path", "save_profile", "tune"]


@dataclass
class Candidate:
    artifact: Path
    runtime: str
    threads: int
    batch_size: int

    @property
    def label(self) -> str:
        return f"{self.artifact.name} {self.runtime} t{self.threads} b{self.batch_size}"


def candidates(folder: Path, threads: Iterable[int], batch_sizes: Iterable[int],
               runtimes: Iterable[str] | None = None) -> list[Candidate]:
    """Every (artifact with a manifest, installed runtime that reads it, threads, batch size)."""
    from edgecnn.formats import SUFFIX_RUNTIME, npu_only
    from edgecnn.manifest import manifest_path
    from edgecnn.runtime import canonical_runtime, runtime_available, runtimes_for

    wanted = {canonical_runtime(r) for r in runtimes} if runtimes else None
    out = []
    for art in sorted(folder.iterdir()) if folder.is_dir() else []:
        if (art.suffix not in SUFFIX_RUNTIME or npu_only(art) or art.name.startswith(".")
                or not manifest_path(art).exists()):
            continue
        for rt in runtimes_for(art):
            if (wanted and rt not in wanted) or not runtime_available(rt):
                continue
            out += [Candidate(art, rt, t, b) for t in threads for b in batch_sizes]
    return out


def tune(frame: np.ndarray, folder: str | os.PathLike | None = None, *, threads: Iterable[int] | None = None,
         batch_sizes: Iterable[int] = (64, 256), runtimes: Iterable[str] | None = None, rounds: int = 3,
         runs: int = 5, max_label_diff: float = 0.01, max_drop: float = 0.01,
         progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure every candidate on ``frame`` and return the profile (not written; see ``save_profile``).

    The fastest eligible candidate wins. Eligible: its recorded test balanced accuracy (manifest)
    is at most ``max_drop`` below the best candidate's, so a cheaper model (a student) may win
    when it is accurate enough; without a recorded score, its tile labels on ``frame`` differ
    from the reference's on at most ``max_label_diff`` of the tissue tiles."""
    folder = Path(folder) if folder is not None else release_model_dir()
    threads = list(threads) if threads else list(range(1, (os.cpu_count() or 1) + 1))
    cands = candidates(folder, threads, batch_sizes, runtimes)
    if not cands:
        raise FileNotFoundError(f"{folder}: no artifact with a manifest that an installed runtime can run; "
                                "export one (edgecnn export) or pass the release folder")
    reference = Scanner(default_model_path(folder), threads=max(threads), profile=None).scan(frame)
    scanners, rows = [], []
    for c in cands:
        s = Scanner(c.artifact, threads=c.threads, batch_size=c.batch_size, runtime=c.runtime, profile=None)
        scanners.append(s)
        rows.append(_row(c, s.scan(frame), reference))
    rounds_ms: list[list[float]] = [[] for _ in cands]
    for r in range(rounds):
        for i, (c, s) in enumerate(zip(cands, scanners)):
            if progress:
                progress(f"round {r + 1}/{rounds}: {c.label}")
            lat = measure_latency(lambda s=s: s.scan(frame), runs=runs, warmup=1, budget_s=None)
            rounds_ms[i].append(lat.p50)
    for s in scanners:
        s.backend.close()
    scored = [r["recorded_bac"] for r in rows if r["recorded_bac"] is not None]
    floor = max(scored) - max_drop if scored else None
    for row, ms in zip(rows, rounds_ms):
        med = statistics.median(ms)
        row.update(ms_per_frame=med, round_p50_ms=ms,
                   spread=(max(ms) - min(ms)) / med if med else 0.0,
                   eligible=(row["recorded_bac"] >= floor) if row["recorded_bac"] is not None and floor is not None
                   else row["label_diff"] <= max_label_diff)
    eligible = [r for r in rows if r["eligible"]] or rows
    best = min(eligible, key=lambda r: r["ms_per_frame"])
    return {"version": PROFILE_VERSION, "machine": machine_key(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "release_dir": str(folder.resolve()),
            "choice": {k: best[k] for k in ("artifact", "runtime", "threads", "batch_size", "ms_per_frame")},
            "frame": {"width": int(frame.shape[1]), "height": int(frame.shape[0]), "tiles": reference.tiles,
                      "tissue_tiles": reference.tissue_tiles, "reference": default_model_path(folder).name},
            "rounds": rounds, "runs_per_round": runs, "max_drop": max_drop, "bac_floor": floor, "rows": rows}


def _row(c: Candidate, result, reference) -> dict[str, Any]:
    both = reference.tissue_mask & result.tissue_mask
    a = reference.prob_map[both] >= reference.threshold
    b = result.prob_map[both] >= result.threshold
    from edgecnn.bench.discover import recorded_score
    from edgecnn.manifest import read_manifest

    recorded = recorded_score((read_manifest(c.artifact, required=False) or {}).get("metrics"))
    return {"artifact": c.artifact.name, "runtime": c.runtime, "threads": c.threads, "batch_size": c.batch_size,
            "label_diff": float((a != b).mean()) if both.any() else 0.0,
            "recorded_bac": recorded["balanced_accuracy"] if recorded else None}
