"""The benchmark harness: every artifact × runtime × thread count, measured the same way.

Each row runs in a fresh process (edgecnn.bench.worker) so its peak RSS is its own; the parent
computes the metrics, the agreement with the float model and the accuracy gate. No TensorFlow
here: the Keras reference row imports it in its own process.
"""

from __future__ import annotations

import datetime as _dt
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgecnn import PATCH_SIZE
from edgecnn.bench.machine import machine_info
from edgecnn.formats import SUFFIX_RUNTIME
from edgecnn.fsutil import read_json, write_json
from edgecnn.manifest import ArtifactError, artifact_files, read_manifest
from edgecnn.metrics import agreement, binary_metrics

SCHEMA = "edgecnn.bench/1"
DEFAULT_BATCHES = (1, 64)


class BenchError(ValueError):
    """Bad bench input (no artifacts, unreadable data, bad options): the message names the fix."""


# --- inputs ---------------------------------------------------------------------------------

@dataclass
class EvalData:
    images: np.ndarray   # (N, S, S, 3) uint8
    labels: np.ndarray   # (N,) int
    source: str
    n_available: int
    split: str | None = None


def load_eval_data(data: Any, limit: int | None = None, split: str | Path | None = None, seed: int = 0) -> EvalData:
    """Patches + labels from a PatchSet, an (images, labels) pair, an .npz (``images``, ``labels``)
    or a Kaggle-layout folder/zip (edgecnn.data.load_patches).

    ``split``: a split.json (or run folder holding one): keep its test patients only.
    ``limit``: a seeded random subset of that many patches (the same subset every run).
    """
    source = str(data)
    if isinstance(data, tuple) and len(data) == 2:
        images, labels, patients = data[0], data[1], None
        source = "arrays"
    elif hasattr(data, "images") and hasattr(data, "labels"):
        images, labels, patients = data.images, data.labels, getattr(data, "patients", None)
        source = str((getattr(data, "report", None) or {}).get("source", "PatchSet"))
    elif data is None:
        raise BenchError("no evaluation data: pass --data PATH (Kaggle-layout IDC folder or zip, or an .npz "
                         "with 'images' and 'labels')")
    else:
        path = Path(data).expanduser()
        if not path.exists():
            raise BenchError(f"--data {path}: not found. Pass the IDC folder (Kaggle layout) or its zip")
        if path.suffix == ".npz":
            with np.load(path) as z:
                if "images" not in z or "labels" not in z:
                    raise BenchError(f"{path}: an .npz for bench needs arrays 'images' (N,S,S,3 uint8) and 'labels'")
                images, labels = z["images"], z["labels"]
                patients = z["patients"] if "patients" in z else None
        else:
            from edgecnn.data import load_patches

            ps = load_patches(path)
            images, labels, patients = ps.images, ps.labels, ps.patients
    images = np.asarray(images)
    labels = np.asarray(labels).astype(np.int64).ravel()
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8 or len(images) != len(labels):
        raise BenchError(f"{source}: expected uint8 images N×S×S×3 and N labels; got images {images.shape} "
                         f"{images.dtype} and {labels.shape[0]} labels")
    n_available = len(labels)
    idx = np.arange(n_available)
    split_note = None
    if split is not None:
        sp = Path(split)
        sp = sp / "split.json" if sp.is_dir() else sp
        if not sp.exists():
            raise BenchError(f"--split {split}: no split.json there (a run folder from edgecnn train has one)")
        if patients is None:
            raise BenchError(f"--split needs patient ids, and {source} has none: pass the Kaggle-layout folder")
        test_ids = read_json(sp).get("test") or []
        idx = np.flatnonzero(np.isin(np.asarray(patients).astype(str), np.asarray(test_ids, dtype=str)))
        if idx.size == 0:
            raise BenchError(f"--split {sp}: none of its {len(test_ids)} test patients is in {source}")
        split_note = f"{sp} (test: {len(test_ids)} patients)"
    if limit is not None:
        if limit < 1:
            raise BenchError(f"--limit must be >= 1; got {limit}")
        if limit < idx.size:
            idx = np.sort(np.random.default_rng(seed).choice(idx, size=limit, replace=False))
    if idx.size != n_available:
        images, labels = images[idx], labels[idx]
    return EvalData(np.ascontiguousarray(images), labels, source, n_available, split_note)


def discover_artifacts(paths: Sequence[str | Path] | None) -> list[Path]:
    """Files given, plus every artifact (known suffix) directly inside a folder given."""
    if not paths:
        from edgecnn.paths import release_model_dir

        paths = [release_model_dir()]
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            inside = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in SUFFIX_RUNTIME)
            if not inside:
                raise BenchError(f"{p}: no artifacts ({', '.join(sorted(SUFFIX_RUNTIME))}) in this folder; "
                                 "run `edgecnn export` first or pass artifact files")
            found.extend(inside)
        elif p.exists():
            if p.suffix.lower() not in SUFFIX_RUNTIME:
                raise BenchError(f"{p}: not an artifact (known: {', '.join(sorted(SUFFIX_RUNTIME))})")
            found.append(p)
        else:
            raise BenchError(f"{p}: no such file or folder"
                             + ("; the release model is made by `edgecnn export ... --release`" if "release" in str(p) else ""))
    return list(dict.fromkeys(found))


def _describe(path: Path) -> dict[str, Any]:
    try:
        m = read_manifest(path, required=False) or {}
    except ArtifactError:
        m = {}  # unreadable manifest: the row's worker reports the error
    shape = (m.get("input") or {}).get("shape") or []
    files = [f for f in artifact_files(path) if f.exists()]
    return {
        "model": m.get("model", path.stem), "format": m.get("format", path.suffix.lstrip(".")),
        "precision": m.get("precision", "unknown"), "threshold": float(m.get("threshold", 0.5)),
        "input_size": int(shape[1]) if len(shape) == 4 and shape[1] else None,
        "size_bytes": int(m.get("size_bytes") or sum(f.stat().st_size for f in files)),
    }


def _keras_ref(ref: str | Path) -> dict[str, Any]:
    p = Path(ref).expanduser()
    if p.is_dir():
        model_file, meta_file, cfg_file = p / "model.keras", p / "model.json", p / "config.json"
    elif p.suffix == ".keras":
        # Same sidecar rule as evaluate.keras_threshold: the JSON of the same stem.
        model_file, meta_file, cfg_file = p, p.with_suffix(".json"), p.with_name("config.json")
    else:
        raise BenchError(f"--keras-ref {p}: pass a run folder (with model.keras) or a .keras file")
    if not model_file.exists():
        raise BenchError(f"--keras-ref {p}: {model_file.name} not found; train a run first (edgecnn train --out RUN)")
    meta = read_json(meta_file) if meta_file.exists() else {}
    cfg = read_json(cfg_file) if cfg_file.exists() else {}
    return {"path": model_file, "model": meta.get("model") or cfg.get("model"),
            "threshold": meta.get("threshold"), "input_size": meta.get("input_size") or cfg.get("input_size")}


# --- rows ------------------------------------------------------------------------------------

def plan_rows(artifacts: list[Path], runtimes: Sequence[str] | None, threads: Sequence[int]
              ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(rows to run, skips with reasons): each artifact on each applicable, asked, installed runtime."""
    from edgecnn.runtime import canonical_runtime, runtime_available, runtimes_for

    asked = [canonical_runtime(r) for r in runtimes] if runtimes else None
    rows, skipped = [], []
    for art in artifacts:
        usable = runtimes_for(art)
        chosen = [r for r in usable if asked is None or r in asked]
        if not chosen:
            skipped.append({"artifact": str(art), "runtime": ",".join(asked or []),
                            "reason": f"no asked runtime runs {art.suffix} (it runs on {', '.join(usable)})"})
            continue
        for rt in chosen:
            if not runtime_available(rt):
                why = ("TensorRT is not installed (pip install edgecnn[trt]; needs an NVIDIA GPU)" if rt == "tensorrt"
                       else f"{rt} is not installed")
                if asked is not None or rt == SUFFIX_RUNTIME[art.suffix.lower()]:
                    skipped.append({"artifact": str(art), "runtime": rt, "reason": why})
                continue
            for t in threads:
                rows.append({"kind": "artifact", "artifact": str(art), "runtime": rt, "threads": int(t)})
    return rows, skipped


def _resize(images: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR)) for im in images])


def _run_worker(spec: dict[str, Any], workdir: Path, isolate: bool) -> tuple[dict[str, Any], np.ndarray | None]:
    workdir.mkdir(parents=True, exist_ok=True)
    spec_file = write_json(workdir / "spec.json", spec)
    if isolate:
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
        proc = subprocess.run([sys.executable, "-m", "edgecnn.bench.worker", str(spec_file)],
                              capture_output=True, text=True, env=env)
        if not (workdir / "result.json").exists():
            tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-5:]
            return {"error": f"worker exited with code {proc.returncode}: {' | '.join(tail)}"}, None
    else:
        from edgecnn.bench.worker import main

        main(str(spec_file))
    result = read_json(workdir / "result.json")
    probs = np.load(workdir / "probs.npy") if result.get("error") is None else None
    return result, probs


def _row_label(row: dict[str, Any]) -> str:
    t = "default" if row.get("threads") is None else row["threads"]
    return f"{Path(row['artifact']).name} [{row['runtime']}, threads={t}]"


def _pick_reference(i: int, rows: list[dict[str, Any]], probs: dict[int, np.ndarray]) -> int | None:
    """Index of the float row this row is compared with: the Keras reference of the same model when
    given, else the fp32 artifact of the same model (same format and default runtime first)."""
    me = rows[i]
    keras = [j for j, r in enumerate(rows) if r["runtime"] == "keras" and j in probs]
    for j in keras:
        if rows[j]["model"] in (None, me["model"]) or len({r["model"] for r in rows if r["runtime"] != "keras"}) == 1:
            return j
    cands = [j for j, r in enumerate(rows) if r["runtime"] != "keras" and r["precision"] == "fp32"
             and r["model"] == me["model"] and j in probs]
    if not cands:
        return None

    def rank(j: int) -> tuple:
        r = rows[j]
        default_rt = SUFFIX_RUNTIME.get(Path(r["artifact"]).suffix.lower())
        return (r["format"] != me["format"], r["runtime"] != default_rt, r["threads"] != me["threads"], j)

    return min(cands, key=rank)


def apply_gate(rows: list[dict[str, Any]], min_bac: float, max_drop: float) -> list[str]:
    """Fill passed_gate / gate_reason in place; return "row: reason" for every failed row."""
    failures = []
    for r in rows:
        reasons = []
        if r.get("error"):
            reasons.append(f"error: {r['error']}")
        else:
            bac = r["balanced_accuracy"]
            if not bac >= min_bac:
                reasons.append(f"balanced accuracy {bac:.4f} < --min-bac {min_bac}")
            drop = r.get("bac_drop")
            if drop is not None and drop > max_drop:
                reasons.append(f"balanced accuracy drop {drop:.4f} vs {r['reference']} > --max-drop {max_drop}")
        r["passed_gate"] = not reasons
        if reasons:
            r["gate_reason"] = "; ".join(reasons)
            failures.append(f"{_row_label(r)}: {r['gate_reason']}")
        else:
            r["gate_reason"] = "ok" if r.get("bac_drop") is not None or r["runtime"] == "keras" \
                else "ok (no float reference: --max-drop not checked)"
    return failures


def run_bench(
    artifacts: Sequence[str | Path] | None = None,
    data: Any = None,
    *,
    runtimes: Sequence[str] | None = None,
    threads: Sequence[int] | None = None,
    batches: Sequence[int] = DEFAULT_BATCHES,
    runs: int = 1000,
    warmup: int = 50,
    budget_s: float = 20.0,
    throughput_s: float = 1.0,
    keras_ref: str | Path | None = None,
    limit: int | None = None,
    split: str | Path | None = None,
    min_bac: float = 0.84,
    max_drop: float = 0.01,
    verify: bool = True,
    allow_no_manifest: bool = False,
    precision: str | None = None,
    isolate: bool = True,
    seed: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Benchmark artifacts on real patches; returns the report dict (see docs in edgecnn.bench).

    ``progress(done, total, label)`` is called before each row and once at the end.
    """
    batches = sorted({int(b) for b in batches})
    if not batches or batches[0] < 1:
        raise BenchError(f"--batch sizes must be positive integers; got {list(batches)}")
    if 1 not in batches:
        batches = [1, *batches]  # latency is always measured at batch 1
    threads = list(dict.fromkeys(int(t) for t in (threads or _default_threads())))
    if any(t < 1 for t in threads):
        raise BenchError(f"--threads must be positive integers; got {threads}")
    if runs < 1 or warmup < 0:
        raise BenchError(f"--runs must be >= 1 and --warmup >= 0; got {runs}, {warmup}")

    paths = discover_artifacts(artifacts)
    ev = load_eval_data(data, limit=limit, split=split, seed=seed)
    planned, skipped = plan_rows(paths, runtimes, threads)
    described = {p: _describe(Path(p)) for p in {r["artifact"] for r in planned}}
    keras = _keras_ref(keras_ref) if keras_ref else None
    if keras:
        planned.insert(0, {"kind": "keras", "artifact": str(keras["path"]), "runtime": "keras", "threads": None})
    if not planned:
        raise BenchError("nothing to run: " + "; ".join(f"{Path(s['artifact']).name}: {s['reason']}" for s in skipped)
                         if skipped else "nothing to run")

    common = {"batches": batches, "runs": runs, "warmup": warmup, "budget_s": budget_s,
              "throughput_s": throughput_s, "verify": verify, "allow_no_manifest": allow_no_manifest}
    rows: list[dict[str, Any]] = []
    probs: dict[int, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="edgecnn-bench-") as tmp:
        tmpdir = Path(tmp)
        data_files: dict[int, Path] = {}

        def data_for(size: int | None) -> tuple[Path, int]:
            size = size or ev.images.shape[1]
            if size not in data_files:
                imgs = ev.images if size == ev.images.shape[1] else _resize(ev.images, size)
                data_files[size] = tmpdir / f"patches_{size}.npy"
                np.save(data_files[size], imgs)
            return data_files[size], size

        for i, plan in enumerate(planned):
            if progress:
                progress(i, len(planned), _row_label(plan))
            if plan["kind"] == "keras":
                d = {"model": keras["model"], "format": "keras", "precision": "fp32",
                     "threshold": keras["threshold"], "input_size": keras["input_size"] or PATCH_SIZE,
                     "size_bytes": keras["path"].stat().st_size}
            else:
                d = described[plan["artifact"]]
            data_file, size = data_for(d["input_size"])
            spec = {**common, **plan, "data": str(data_file),
                    "precision": precision if plan["runtime"] == "openvino" else None}
            result, p = _run_worker(spec, tmpdir / f"row{i:03d}", isolate)
            row = _make_row(plan, d, result, ev, size, batches, isolate)
            if p is not None:
                probs[i] = p
            rows.append(row)
        if progress:
            progress(len(planned), len(planned), "done")

    # The Keras threshold: its run's, else the artifacts' of the same model, else 0.5.
    for i, row in enumerate(rows):
        if row["runtime"] == "keras" and row["threshold"] is None:
            row["threshold"] = next((r["threshold"] for r in rows if r["runtime"] != "keras"
                                     and r["model"] == row["model"]), 0.5)
    for i, row in enumerate(rows):
        if i not in probs:
            continue
        row.update(_metrics(ev.labels, probs[i], row["threshold"]))
    for i, row in enumerate(rows):
        j = _pick_reference(i, rows, probs) if i in probs else None
        if j is None:
            continue
        row["reference"] = _row_label(rows[j])
        row.update(agreement(probs[j], probs[i], threshold=row["threshold"]))
        row["bac_drop"] = rows[j]["balanced_accuracy"] - row["balanced_accuracy"]
    failures = apply_gate(rows, min_bac, max_drop)
    return {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "config": {"runtimes": list(runtimes) if runtimes else None, "threads": threads, "batches": batches,
                   "runs": runs, "warmup": warmup, "budget_s": budget_s, "throughput_s": throughput_s,
                   "min_bac": min_bac, "max_drop": max_drop, "verify": verify, "isolated_rows": isolate,
                   "keras_ref": str(keras_ref) if keras_ref else None,
                   "rss_method": ("peak RSS of a fresh process per row (Python + runtime + model + eval patches)"
                                  if isolate else "peak RSS of the one bench process (rows not isolated)")},
        "data": {"source": ev.source, "n_patches": int(len(ev.labels)), "n_positive": int(ev.labels.sum()),
                 "n_available": ev.n_available, "limit": limit, "split": ev.split, "seed": seed},
        "rows": rows,
        "skipped": skipped,
        "failures": failures,
        "passed": not failures,
    }


def _default_threads() -> list[int]:
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 1
    return [1, n]


def _metrics(labels: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    m = binary_metrics(labels, p, threshold)
    out = {k: m[k] for k in ("accuracy", "balanced_accuracy", "f1", "roc_auc", "recall", "specificity",
                             "confusion_matrix")}
    out["idc_precision"] = m["precision"]  # "precision" in a row is the artifact's numeric precision
    return out


def _make_row(plan: dict, d: dict, result: dict, ev: EvalData, size: int, batches: list[int],
              isolate: bool) -> dict[str, Any]:
    big = max(batches)
    thr = result.get("throughput") or {}
    info = result.get("info") or {}
    return {
        "artifact": plan["artifact"], "name": Path(plan["artifact"]).name, "model": d["model"] or info.get("model_name"),
        "format": d["format"], "precision": d["precision"], "runtime": plan["runtime"], "threads": plan["threads"],
        "batch": big, "input_size": size, "resized_from": ev.images.shape[1] if size != ev.images.shape[1] else None,
        "n_patches": int(len(ev.labels)), "threshold": d["threshold"],
        "accuracy": None, "balanced_accuracy": None, "f1": None, "roc_auc": None,
        "reference": None, "agreement": None, "max_abs_dp": None, "bac_drop": None,
        "latency_ms": result.get("latency_ms"),
        "throughput_per_s": thr.get(str(big)), "throughput": thr,
        "peak_rss_mb": result.get("peak_rss_mb"), "model_rss_mb": result.get("model_rss_mb"),
        "size_bytes": d["size_bytes"], "load_s": result.get("load_s"),
        "inference_precision": info.get("inference_precision"), "providers": info.get("providers"),
        "passed_gate": None, "gate_reason": None, "error": result.get("error"),
    }
