"""The benchmark harness: every artifact × runtime × thread count, measured the same way.

Rows are measured in interleaved rounds (A B C A B C …): each round starts every row afresh in
its own interpreter (edgecnn.bench.worker), one after the other, so a slow minute on a shared
CPU lands on every row alike instead of on whichever row ran then. The first round also scores
the patches. The parent computes the metrics, the agreement with the float model and the gate
(edgecnn.bench.gate). No TensorFlow here: a Keras reference row imports it in its own process.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgecnn import PATCH_SIZE
from edgecnn.bench.data import BenchError, EvalData, load_eval_data, trained_share
from edgecnn.bench.discover import describe, discover_artifacts, keras_reference
from edgecnn.bench.gate import DEFAULT_MAX_DROP, DEFAULT_TOLERANCE, apply_gate, row_label, score_against
from edgecnn.bench.latency import MIN_SAMPLES_FOR_P99, SPREAD_WARN_PCT, noisy, summarize_rounds
from edgecnn.bench.machine import machine_info
from edgecnn.bench.plan import plan_rows
from edgecnn.fsutil import read_json, write_json
from edgecnn.metrics import binary_metrics

__all__ = ["BenchError", "BenchOptions", "apply_gate", "discover_artifacts", "load_eval_data", "run_bench"]

SCHEMA = "edgecnn.bench/2"
DEFAULT_BATCHES = (1, 64)
DEFAULT_ROUNDS = 5
RSS_METHOD = ("peak RSS (VmHWM) of the row's own fresh interpreter: Python + runtime + model + one batch; "
              "the largest over its rounds")
Progress = Callable[[int, int, str], None]


@dataclass
class BenchOptions:
    threads: list[int]
    batches: list[int]
    rounds: int = DEFAULT_ROUNDS
    runs: int = 1000
    warmup: int = 50
    budget_s: float = 20.0
    throughput_s: float = 1.0
    verify: bool = True
    allow_no_manifest: bool = False
    ov_precision: str | None = None
    pin: bool = True
    log: Callable[[str], None] | None = field(default=None, repr=False)

    def round_spec(self) -> dict[str, Any]:
        """What each worker gets per round: its share of the calls, the time budget and the p99 floor."""
        r = self.rounds
        return {"batches": self.batches, "runs": max(1, math.ceil(self.runs / r)), "warmup": self.warmup,
                "budget_s": self.budget_s / r, "floor": max(1, math.ceil(MIN_SAMPLES_FOR_P99 / r)),
                "throughput_s": self.throughput_s / r, "verify": self.verify,
                "allow_no_manifest": self.allow_no_manifest}


def check_options(threads: Sequence[int] | None, batches: Sequence[int], rounds: int, runs: int,
                  warmup: int) -> tuple[list[int], list[int]]:
    """(threads, batch sizes) normalised, or BenchError naming the flag."""
    bs = sorted({int(b) for b in batches})
    if not bs or bs[0] < 1:
        raise BenchError(f"--batch-sizes must be positive integers; got {list(batches)}")
    if 1 not in bs:
        bs = [1, *bs]  # latency is always measured at batch 1
    ts = list(dict.fromkeys(int(t) for t in (threads or default_threads())))
    if any(t < 1 for t in ts):
        raise BenchError(f"--threads must be positive integers; got {ts}")
    if runs < 1 or warmup < 0 or rounds < 1:
        raise BenchError(f"--runs and --rounds must be >= 1 and --warmup >= 0; got {runs}, {rounds}, {warmup}")
    return ts, bs


def usable_cpus() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # no affinity API (macOS): nothing to pin to
        return list(range(os.cpu_count() or 1))


def default_threads() -> list[int]:
    return list(dict.fromkeys([1, len(usable_cpus())]))


def pinned_cpus(threads: int | None, pin: bool) -> list[int] | None:
    """The CPUs a row with ``threads`` threads is pinned to, or None (the OS places it).

    A runtime that hands each call to a worker thread (OpenVINO) pays a cross-core wake-up that,
    on a busy machine, makes batch-1 latency bimodal from one process to the next (1.2 vs 2.6 ms
    measured here); on as many CPUs as threads it is steady. Rows using every CPU are not pinned.
    """
    cpus = usable_cpus()
    if not pin or threads is None or threads >= len(cpus) or not hasattr(os, "sched_setaffinity"):
        return None
    return cpus[:threads]


# --- measuring -----------------------------------------------------------------------------------

class _DataFiles:
    """The patches as .npy files the workers read, one per model input size (resized if needed)."""

    def __init__(self, ev: EvalData, tmpdir: Path):
        self.ev, self.tmpdir, self.files = ev, tmpdir, {}

    def get(self, size: int | None) -> tuple[Path, int]:
        size = size or self.ev.images.shape[1]
        if size not in self.files:
            imgs = self.ev.images if size == self.ev.images.shape[1] else _resize(self.ev.images, size)
            self.files[size] = self.tmpdir / f"patches_{size}.npy"
            np.save(self.files[size], imgs)
        return self.files[size], size


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])


def run_worker(spec: dict[str, Any], workdir: Path, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One row-round in a fresh interpreter; its output goes to a log file (shown with --verbose)."""
    workdir.mkdir(parents=True, exist_ok=True)
    spec_file = write_json(workdir / "spec.json", spec)
    log_file = workdir / "worker.log"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    with open(log_file, "wb") as out:
        proc = subprocess.run([sys.executable, "-m", "edgecnn.bench.worker", str(spec_file)], stdout=out,
                              stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
    text = log_file.read_text(errors="replace").strip()
    if log and text:
        log(text)
    if not (workdir / "result.json").exists():
        tail = text.splitlines()[-5:]
        return {"error": f"worker exited with code {proc.returncode}: {' | '.join(tail)}"}
    result = read_json(workdir / "result.json")
    if log and result.get("traceback"):
        log(result["traceback"])
    return result


@dataclass
class _RowRun:
    """What the rounds of one row produced."""

    plan: dict[str, Any]
    desc: dict[str, Any]
    size: int
    rounds: list[dict[str, Any]] = field(default_factory=list)
    probs: np.ndarray | None = None
    error: str | None = None


def measure_rounds(runs: list[_RowRun], data: _DataFiles, opts: BenchOptions, tmpdir: Path,
                   progress: Progress | None) -> None:
    """Rounds of A B C …: every row once per round, each in a fresh process; round 1 also scores."""
    base = opts.round_spec()
    total = opts.rounds * len(runs)
    for r in range(opts.rounds):
        for i, run in enumerate(runs):
            if progress:
                progress(r * len(runs) + i, total, f"round {r + 1}/{opts.rounds} · {row_label(run.plan)}")
            if run.error:
                continue
            work = tmpdir / f"row{i:03d}" / f"round{r}"
            data_file, _ = data.get(run.size)
            spec = {**base, **run.plan, "data": str(data_file), "cpus": pinned_cpus(run.plan["threads"], opts.pin),
                    "precision": opts.ov_precision if run.plan["runtime"] == "openvino" else None,
                    "probs_out": str(work / "probs.npy") if r == 0 else None}
            res = run_worker(spec, work, opts.log)
            if res.get("error"):
                run.error = res["error"] if r == 0 else f"round {r + 1}: {res['error']}"
            elif r == 0:
                run.probs = np.load(work / "probs.npy")
            run.rounds.append(res)
    if progress:
        progress(total, total, "done")


# --- rows ----------------------------------------------------------------------------------------

def _median(values: list[float | None]) -> float | None:
    v = [x for x in values if x is not None]
    return float(np.median(v)) if v else None


def _timing(run: _RowRun, batches: list[int]) -> dict[str, Any]:
    ok = [r for r in run.rounds if not r.get("error")]
    if run.error or not ok:
        return {"latency_ms": None, "throughput": {}, "throughput_per_s": None}
    lat = summarize_rounds([r["latency_samples_ms"] for r in ok])
    thr = {str(b): _median([r["throughput"].get(str(b)) for r in ok]) for b in batches if b > 1}
    thr["1"] = 1000.0 / lat["mean"] if lat["mean"] > 0 else None
    big = str(max(batches))
    return {"latency_ms": lat, "throughput": thr, "throughput_per_s": thr.get(big),
            "throughput_rounds": {str(b): [r["throughput"].get(str(b)) for r in ok] for b in batches if b > 1}}


def _memory(run: _RowRun) -> dict[str, Any]:
    peaks = [r.get("peak_rss_mb") for r in run.rounds if r.get("peak_rss_mb") is not None]
    ok = [r for r in run.rounds if not r.get("error")]
    return {"peak_rss_mb": max(peaks) if peaks else None, "model_rss_mb": _median([r.get("model_rss_mb") for r in ok]),
            "load_s": _median([r.get("load_s") for r in ok]),
            "rss_method": next((r.get("rss_method") for r in run.rounds if r.get("rss_method")), None),
            "tf_imported": any(r.get("tf_imported") for r in run.rounds)}


def make_row(run: _RowRun, ev: EvalData, batches: list[int]) -> dict[str, Any]:
    d, plan = run.desc, run.plan
    info = next((r.get("info") for r in run.rounds if r.get("info")), None) or {}
    row = {
        "artifact": plan["artifact"], "name": Path(plan["artifact"]).name, "model": d["model"] or info.get("model_name"),
        "format": d["format"], "precision": d["precision"], "tta": bool(plan.get("tta")), "runtime": plan["runtime"],
        "threads": plan["threads"], "cpus": next((r.get("cpus") for r in run.rounds if r.get("cpus")), None),
        "batch": max(batches), "input_size": run.size,
        "resized_from": ev.images.shape[1] if run.size != ev.images.shape[1] else None,
        "n_patches": int(len(ev.labels)), "n_positive": int(ev.labels.sum()), "threshold": d["threshold"],
        "accuracy": None, "balanced_accuracy": None, "f1": None, "roc_auc": None,
        "reference": None, "agreement": None, "max_abs_dp": None, "bac_drop": None,
        "recorded": d.get("recorded"), "gate": None, "size_bytes": d["size_bytes"],
        "macs_per_tile": d.get("macs_per_tile"),
        "inference_precision": info.get("inference_precision"), "providers": info.get("providers"),
        "passed_gate": None, "gate_reason": None, "error": run.error,
    }
    row.update(_timing(run, batches))
    row.update(_memory(run))
    row["noisy"] = noisy(row["latency_ms"])
    return row


def _metrics(labels: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    m = binary_metrics(labels, p, threshold)
    out = {k: m[k] for k in ("accuracy", "balanced_accuracy", "f1", "roc_auc", "recall", "specificity",
                             "confusion_matrix")}
    out["idc_precision"] = m["precision"]  # "precision" in a row is the artifact's numeric precision
    return out


def score_rows(rows: list[dict[str, Any]], probs: dict[int, np.ndarray], labels: np.ndarray,
               tolerance: float, ev: EvalData | None = None) -> None:
    """Metrics at each row's threshold, then references, agreement and gate floors; with patch
    coordinates in ``ev``, also the field-level metrics of each artifact's context stage."""
    for row in rows:
        if row["runtime"] == "keras" and row["threshold"] is None:
            # The Keras threshold: its run's, else the artifacts' of the same model, else 0.5.
            row["threshold"] = next((r["threshold"] for r in rows if r["runtime"] != "keras"
                                     and r["model"] == row["model"]), 0.5)
    for i, row in enumerate(rows):
        if i in probs:
            row.update(_metrics(labels, probs[i], row["threshold"]))
            row["context"] = _field_metrics(row, probs[i], ev)
    score_against(rows, probs, tolerance)


def _field_metrics(row: dict[str, Any], p: np.ndarray, ev: EvalData | None) -> dict[str, Any] | None:
    """Balanced accuracy and AUC with neighbours (the artifact's context stage), or None."""
    if ev is None or ev.xs is None or row["runtime"] == "keras":
        return None
    from edgecnn.context.load import stage_of_artifact
    from edgecnn.context.patches import field_scores

    stage = stage_of_artifact(row["artifact"])
    if stage is None:
        return None
    q, cover, m = field_scores(stage, p, ev.labels, ev.patients, ev.xs, ev.ys)
    return {"balanced_accuracy": m["balanced_accuracy"], "roc_auc": m["roc_auc"], "threshold": stage.threshold,
            "stage": stage.describe(), "with_neighbours": cover["with_neighbours"], "n_patches": int(len(q))}


# --- the report ----------------------------------------------------------------------------------

def collect_warnings(rows: list[dict[str, Any]], ignored: list[str], seen_share: float | None) -> list[str]:
    out = [f"ignored {Path(f).name}: a temporary file left by an interrupted write (not an artifact; safe to "
           "delete)" for f in ignored]
    loud = [r for r in rows if r.get("noisy")]
    if loud:
        # Few rounds spread widely even on an idle CPU: say what was measured, not that the machine was busy.
        out.append(f"p50 of {len(loud)} row(s) moved more than ±{SPREAD_WARN_PCT:g} % between rounds (e.g. "
                   + ", ".join(f"{row_label(r)} ±{r['latency_ms']['p50_spread_pct']:.0f} %" for r in loud[:2])
                   + "): more --rounds before comparing their latency")
    if seen_share:
        out.append(f"{100 * seen_share:.0f} % of the patches belong to patients the model trained or was tuned "
                   "on; pass --split (its split.json) to score only its test patients")
    out += [f"{row_label(r)} imported TensorFlow: its RSS is not that of a device install"
            for r in rows if r.get("tf_imported") and r["runtime"] != "keras"]
    return out


def _training_overlap(ev: EvalData, split: Any, artifacts: list[Path]) -> float | None:
    """Share of trained-on patches when no --split was given and a split.json sits beside the artifacts."""
    if split is not None:
        return None
    cands = [p.parent / "split.json" for p in artifacts]
    found = next((c for c in cands if c.exists()), None)
    return trained_share(ev, found) if found else None


def build_report(rows, skipped, failures, warnings, ev: EvalData, opts: BenchOptions, extra: dict) -> dict[str, Any]:
    cfg = {k: v for k, v in asdict(opts).items() if k != "log"}
    return {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "config": {**cfg, **extra, "rss_method": RSS_METHOD, "spread_warn_pct": SPREAD_WARN_PCT,
                   "latency": "batch 1, end to end from uint8 pixels; p50 = median of the round medians, "
                              "p90/p99 over all samples"},
        "data": {"source": ev.source, "n_patches": int(len(ev.labels)), "n_positive": int(ev.labels.sum()),
                 "n_available": ev.n_available, "split": ev.split},
        "rows": rows,
        "skipped": skipped,
        "warnings": warnings,
        "failures": failures,
        "passed": not failures,
    }


def _plan(artifacts, runtimes, threads, tta, keras_ref, ignored) -> tuple[list[_RowRun], list[dict], list[Path]]:
    paths = discover_artifacts(artifacts, ignored)
    planned, skipped = plan_rows(paths, runtimes, threads, tta)
    described = {p: describe(Path(p)) for p in {r["artifact"] for r in planned}}
    runs = [_RowRun(plan, described[plan["artifact"]], 0) for plan in planned]
    if keras_ref:
        k = keras_reference(keras_ref)
        k["input_size"] = k["input_size"] or PATCH_SIZE
        runs.insert(0, _RowRun({"kind": "keras", "artifact": str(k["path"]), "runtime": "keras", "threads": None,
                                "tta": False}, k, 0))
    if not runs:
        raise BenchError("nothing to run: " + "; ".join(f"{Path(s['artifact']).name}: {s['reason']}" for s in skipped)
                         if skipped else "nothing to run")
    return runs, skipped, paths


def run_bench(
    artifacts: Sequence[str | Path] | None = None,
    data: Any = None,
    *,
    runtimes: Sequence[str] | None = None,
    threads: Sequence[int] | None = None,
    batches: Sequence[int] = DEFAULT_BATCHES,
    rounds: int = DEFAULT_ROUNDS,
    runs: int = 1000,
    warmup: int = 50,
    budget_s: float = 20.0,
    throughput_s: float = 1.0,
    keras_ref: str | Path | None = None,
    limit: int | None = None,
    split: str | Path | None = None,
    min_bac: float | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    max_drop: float = DEFAULT_MAX_DROP,
    tta: bool = False,
    verify: bool = True,
    allow_no_manifest: bool = False,
    precision: str | None = None,
    pin: bool = True,
    seed: int = 0,
    progress: Progress | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Benchmark artifacts on real patches; returns the report dict (schema ``edgecnn.bench/2``).

    ``progress(done, total, label)`` is called before each row-round and once at the end;
    ``log(text)`` receives each worker's own output (runtime log lines).
    ``pin``: run a row with fewer threads than CPUs on that many CPUs (see pinned_cpus).
    """
    ts, bs = check_options(threads, batches, rounds, runs, warmup)
    opts = BenchOptions(ts, bs, rounds, runs, warmup, budget_s, throughput_s, verify, allow_no_manifest,
                        precision, pin, log)
    ignored: list[str] = []
    row_runs, skipped, paths = _plan(artifacts, runtimes, ts, tta, keras_ref, ignored)
    ev = load_eval_data(data, limit=limit, split=split, seed=seed, progress=progress is not None)
    with tempfile.TemporaryDirectory(prefix="edgecnn-bench-") as tmp:
        files = _DataFiles(ev, Path(tmp))
        for run in row_runs:
            run.size = files.get(run.desc["input_size"])[1]
        measure_rounds(row_runs, files, opts, Path(tmp), progress)
    rows = [make_row(run, ev, bs) for run in row_runs]
    probs = {i: run.probs for i, run in enumerate(row_runs) if run.probs is not None}
    score_rows(rows, probs, ev.labels, tolerance, ev)
    failures = apply_gate(rows, min_bac, max_drop)
    warnings = collect_warnings(rows, ignored, _training_overlap(ev, split, paths))
    extra = {"runtimes": list(runtimes) if runtimes else None, "min_bac": min_bac, "tolerance": tolerance,
             "max_drop": max_drop, "tta": tta, "keras_ref": str(keras_ref) if keras_ref else None,
             "limit": limit, "seed": seed, "ignored_temp_files": ignored}
    return build_report(rows, skipped, failures, warnings, ev, opts, extra)
