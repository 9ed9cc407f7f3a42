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

Profile (JSON, ``profile_path()``; ``EDGECNN_DEVICE_PROFILE`` overrides):
    {"version": 1, "machine": {"cpu", "arch", "usable_cores"}, "created": ISO time,
     "release_dir": folder, "choice": {"artifact", "runtime", "threads", "batch_size", "ms_per_frame"},
     "rows": [every candidate measured], "frame": {...}}
It is used only on the machine that made it (same CPU model, architecture and usable cores).
No TensorFlow here.
"""

from __future__ import annotations

import logging
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from edgecnn.bench.latency import measure_latency
from edgecnn.fsutil import read_json, write_json
from edgecnn.paths import cache_dir, release_model_dir

log = logging.getLogger("edgecnn.scan")

PROFILE_VERSION = 1


def profile_path() -> Path:
    env = os.environ.get("EDGECNN_DEVICE_PROFILE")
    return Path(env) if env else cache_dir() / "device-profile.json"


def machine_key() -> dict[str, Any]:
    from edgecnn.bench.machine import machine_info

    m = machine_info()
    return {"cpu": m["cpu"], "arch": m["arch"], "usable_cores": m["usable_cores"]}


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
    from edgecnn.scan.model import default_model_path
    from edgecnn.scan.scanner import Scanner

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


def save_profile(profile: dict[str, Any], path: str | os.PathLike | None = None) -> Path:
    return write_json(Path(path) if path else profile_path(), profile)


def load_profile(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The device profile if it exists and was made on this machine, else None (with a log line why)."""
    path = Path(path) if path else profile_path()
    if not path.is_file():
        return None
    try:
        prof = read_json(path)
        _check_profile(prof)
    except (ValueError, KeyError, TypeError, OSError) as e:
        log.warning("%s: not a device profile (%s); run `edgecnn tune` again", path, e)
        return None
    if prof.get("machine") != machine_key():
        other = prof.get("machine")
        log.warning("%s was made on another machine (%s); ignored. Run `edgecnn tune` here", path,
                    other.get("cpu") if isinstance(other, dict) else other)
        return None
    return prof


def _check_profile(prof: Any) -> None:
    """The layout ``tune`` writes; the artifact is a file name in the release folder, nothing else."""
    choice = prof.get("choice") if isinstance(prof, dict) else None
    if prof.get("version") != PROFILE_VERSION or not isinstance(choice, dict):
        raise ValueError("unknown layout")
    art, threads, batch = choice.get("artifact"), choice.get("threads"), choice.get("batch_size")
    if not isinstance(art, str) or Path(art).name != art or art in ("", ".", ".."):
        raise ValueError(f"artifact {art!r} is not a file name of the release folder")
    if not isinstance(choice.get("runtime"), str):
        raise ValueError("no runtime")
    for name, v in (("threads", threads), ("batch_size", batch)):
        if not (v is None and name == "batch_size") and not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            raise ValueError(f"{name} {v!r} is not a positive whole number")


def apply_profile(profile: Any, runtime: str | None, threads: int | None, batch_size: int | None):
    """For Scanner(model=None): (model, runtime, threads, batch_size, profile path or None).

    The profile's artifact is used only if it is still in the release folder Scanner would use;
    whatever the caller set explicitly (runtime, threads, batch size) is kept.
    """
    path = profile_path() if profile == "auto" else Path(profile)
    prof = load_profile(path)
    if prof is None:
        return None, runtime, threads, batch_size, None
    art = release_model_dir() / prof["choice"]["artifact"]
    if not art.exists() or (runtime is not None and runtime != prof["choice"]["runtime"]):
        return None, runtime, threads, batch_size, None
    c = prof["choice"]
    return (art, c["runtime"], threads if threads is not None else int(c["threads"]),
            batch_size if batch_size is not None else int(c.get("batch_size") or 0) or None, path)
