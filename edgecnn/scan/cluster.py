"""Scan slide archives on a Ray cluster: one task per slide, or per band range of a slide when
there are fewer slides than workers.

The driver (``edgecnn scan --cluster``) opens each slide only to size its grid, puts the model's
files into Ray's object store once, and submits chunks of tile rows (``plan_chunks``). A worker (any Ray worker
process with ``edgecnn[cluster,slides]`` installed and the slides at the same path) writes the
model to a local cache once per process, builds the same TensorFlow-free ``Scanner`` with the
context stage off, and returns the chunk's raw grids. The driver stitches the chunks into the
slide's grid and finishes it with the very code of a local scan (``slidescan.finish_slide``:
context stage over the whole slide, summary, heat map, overlay, GeoJSON, atomic writes), so the
outputs are the local scan's. Chunks start on band boundaries, so they read the bands a local
scan reads.

Faults: a chunk is a pure function of (slide, rows), so Ray's task retries (a worker or node
lost mid-chunk) recompute it whole; the driver keeps one result per chunk, so a tile is neither
lost nor counted twice. A slide that cannot be read becomes an error record, the others finish.
A rerun skips slides whose ``<stem>.summary.json`` says their outputs are complete.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from edgecnn.scan.slidescan import (BAND_ROWS, completed_summary, empty_state, finish_slide, new_slide_state,
                                    scan_rows, slide_grid)

TASK_RETRIES = 3
_SPEC = re.compile(r"^(auto|local(?::(\d+))?|ray://[^\s/]+:\d+|[^\s/:]+:\d+)$")


class ClusterError(RuntimeError):
    """The cluster cannot be reached or used; the message says what to install or pass."""


@dataclass
class Chunk:
    slide: int           # index into the slide list
    r0: int              # first grid row
    r1: int              # one past the last


@dataclass
class SlideJob:
    """One slide on the driver: its grid size until its first chunk returns, then its grids.
    No reader stays open between steps: an archive may hold thousands of slides."""

    path: Path
    rows: int = 0
    cols: int = 0
    state: Any = None
    chunks_left: int = 0
    seconds: float = 0.0
    workers: set = field(default_factory=set)
    error: str | None = None
    record: dict[str, Any] | None = None


def parse_cluster(spec: str) -> dict[str, Any]:
    """``ray.init`` arguments for ``--cluster``: ``auto`` (the cluster `ray start` made here, or
    RAY_ADDRESS), ``ray://HOST:PORT`` (Ray Client), ``HOST:PORT`` (a head's GCS address) or
    ``local[:N]`` (a private cluster of N worker slots on this machine, on 127.0.0.1)."""
    m = _SPEC.match(spec.strip())
    if not m:
        raise ClusterError(f"--cluster {spec!r}: expected auto, local:N, ray://HOST:PORT or HOST:PORT "
                           "(the address `ray start --head` prints)")
    if m.group(1).startswith("local"):
        n = int(m.group(2) or os.cpu_count() or 1)
        if n < 1:
            raise ClusterError(f"--cluster {spec!r}: local needs at least one worker slot")
        return {"num_cpus": n, "include_dashboard": False, "_node_ip_address": "127.0.0.1"}
    return {"address": m.group(1)}


def _ray():
    try:
        import ray
    except ImportError as e:
        raise ClusterError("--cluster needs Ray: pip install 'edgecnn[cluster]' (on the driver and every "
                           "worker node)") from e
    return ray


def model_files(scanner) -> dict[str, bytes]:
    """The artifact's files (model, manifest, OpenVINO weights), shipped once to every worker."""
    path = Path(scanner.backend.path)
    names = [path, path.with_name(path.name + ".json")]
    if path.suffix == ".xml":
        names.append(path.with_suffix(".bin"))
    return {p.name: p.read_bytes() for p in names if p.is_file()}


_WORKER_SCANNERS: dict[str, Any] = {}


def worker_scanner(files: dict[str, bytes], settings: dict[str, Any]):
    """This worker process's scanner for the shipped model: written once to a local cache
    (content-addressed, so workers of several drivers never clash) and built once per process."""
    from edgecnn.fsutil import write_bytes
    from edgecnn.scan.scanner import Scanner

    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + files[name])
    key = h.hexdigest()[:16] + repr(sorted(settings.items()))
    if key not in _WORKER_SCANNERS:
        folder = Path(tempfile.gettempdir()) / "edgecnn-cluster-models" / h.hexdigest()[:16]
        for name, data in files.items():
            if not (folder / name).is_file():
                folder.mkdir(parents=True, exist_ok=True)
                write_bytes(folder / name, data)
        model = next(folder / n for n in files if not n.endswith((".json", ".bin")))
        _WORKER_SCANNERS[key] = Scanner(model, profile=None, context=None, rescale=1.0, **settings)
    return _WORKER_SCANNERS[key]


def scan_chunk(files: dict[str, bytes], settings: dict[str, Any], path: str, reader_kw: dict[str, Any],
               r0: int, r1: int, band_rows: int) -> dict[str, Any]:
    """Worker side: the raw grids of rows [r0, r1) of one slide (no context stage: the driver runs
    it once over the whole slide)."""
    from edgecnn.scan.slide import open_slide

    t0 = time.perf_counter()
    scanner = worker_scanner(files, settings)
    reader = open_slide(path, **reader_kw)
    try:
        state = new_slide_state(reader, scanner)
        scan_rows(reader, scanner, state, r0, r1, band_rows)
    finally:
        reader.close()
    k = state.k
    return {"r0": r0, "r1": r1, "probs": state.probs[r0:r1], "tissue": state.tissue[r0:r1],
            "frac": state.frac[r0:r1], "thumb": state.thumb[r0 * k:r1 * k],
            "seconds": time.perf_counter() - t0, "worker": f"{os.uname().nodename}:{os.getpid()}"}


def plan_chunks(rows: list[int], workers: int, band_rows: int = BAND_ROWS) -> list[Chunk]:
    """Tasks of at most about a (2 × workers)-th of all rows each, on band boundaries: one per slide
    when slides are alike, and a slide much larger than the rest (or a lone slide) in several
    row ranges, so no single task keeps the other workers waiting. Largest first."""
    share = max(1, -(-sum(rows) // (2 * max(workers, 1))))    # rows per task, about
    cap = -(-share // band_rows) * band_rows                    # on band boundaries
    chunks = []
    for i in sorted(range(len(rows)), key=lambda j: -rows[j]):
        bands = -(-rows[i] // band_rows)
        n = max(1, min(bands, round(rows[i] / cap)))
        edges = [round(b * bands / n) * band_rows for b in range(n + 1)]
        chunks += [Chunk(i, a, min(b, rows[i])) for a, b in zip(edges, edges[1:]) if a < rows[i]]
    return chunks


def _open_jobs(slides, scanner, out: Path, reader_kw) -> list[SlideJob]:
    """Size every slide's grid; a slide whose outputs are complete gets its earlier summary."""
    jobs = []
    for p in slides:
        job = SlideJob(Path(p))
        try:
            with _reader(job.path, reader_kw) as reader:
                done = completed_summary(reader, scanner, out)
                if done is not None:
                    job.record = {**done, "skipped": "outputs complete"}
                else:
                    job.rows, job.cols = slide_grid(reader, scanner)
        except _read_errors() as e:
            job.record = {"slide": str(p), "error": str(e)}
        jobs.append(job)
    return jobs


@contextmanager
def _reader(path: Path, reader_kw: dict[str, Any]):
    from edgecnn.scan.slide import open_slide

    reader = open_slide(path, **reader_kw)
    try:
        yield reader
    finally:
        reader.close()


def _read_errors() -> tuple[type[BaseException], ...]:
    from edgecnn.scan.checkpoint import CheckpointError
    from edgecnn.scan.image import ImageError
    from edgecnn.scan.slide import SlideError

    return SlideError, CheckpointError, ImageError, ValueError, OSError


def _cause(e: BaseException) -> str:
    cause = getattr(e, "cause", None)
    return str(cause if cause is not None else e).strip().splitlines()[-1]


def _merge(job: SlideJob, res: dict[str, Any], tile: int) -> None:
    if job.state is None:
        job.state = empty_state(job.rows, job.cols, tile)
    s, r0, r1, k = job.state, res["r0"], res["r1"], job.state.k
    s.probs[r0:r1], s.tissue[r0:r1], s.frac[r0:r1] = res["probs"], res["tissue"], res["frac"]
    s.thumb[r0 * k:r1 * k] = res["thumb"]
    job.seconds += res["seconds"]
    job.workers.add(res["worker"])


def _finish(job: SlideJob, scanner, out: Path, reader_kw: dict[str, Any]) -> None:
    """All of a slide's chunks are in: the local scan's finishing step, or its error record."""
    if job.error is None:
        try:
            with _reader(job.path, reader_kw) as reader:
                job.record = finish_slide(reader, scanner, job.state, out, job.path.stem, job.seconds)
            job.record["cluster"] = {"workers": sorted(job.workers)}
        except _read_errors() as e:
            job.error = str(e)
    if job.error is not None:
        job.record = {"slide": str(job.path), "error": job.error}
    job.state = None


def _run_chunks(ray, jobs: list[SlideJob], chunks: list[Chunk], scanner, out: Path, settings, reader_kw,
                band_rows: int, progress: Callable[[int, int], None] | None) -> None:
    remote = ray.remote(num_cpus=1, max_retries=TASK_RETRIES)(scan_chunk)
    files_ref = ray.put(model_files(scanner))   # once; every task gets the reference
    pending = {}
    for c in chunks:
        job = jobs[c.slide]
        job.chunks_left += 1
        # Absolute: a worker's working folder is not the driver's (slides must sit at the same path).
        pending[remote.remote(files_ref, settings, str(job.path.resolve()), reader_kw, c.r0, c.r1, band_rows)] = c
    total, done = sum(jobs[c.slide].cols * (c.r1 - c.r0) for c in chunks), 0
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        for ref in ready:
            c = pending.pop(ref)
            job = jobs[c.slide]
            try:
                res = ray.get(ref)
                if job.error is None:
                    _merge(job, res, scanner.tile_size)
            except Exception as e:  # noqa: BLE001 — a task error (bad slide, retries spent) fails its slide only
                cause = _cause(e)
                job.error = job.error or (cause if job.path.name in cause else f"{job.path}: {cause}")
            job.chunks_left -= 1
            done += job.cols * (c.r1 - c.r0)
            if job.chunks_left == 0:
                _finish(job, scanner, out, reader_kw)
        if progress is not None:
            progress(done, total)


def scan_slides(slides: list[Path], scanner, out: str | Path, cluster: str, *, mpp=None, level=None,
                rescale: float = 1.0, band_rows: int = BAND_ROWS,
                progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Scan ``slides`` on the cluster ``cluster`` (``parse_cluster``); write each slide's outputs
    to ``out`` as a local scan does. Returns {"slides": [summary or error per slide, in order],
    "cluster": {workers, chunks, wall seconds, ...}}."""
    ray = _ray()
    init = parse_cluster(cluster)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    reader_kw = {"mpp": mpp, "level": level, "rescale": rescale}
    settings = {"threads": 1, "batch_size": scanner.batch_size, "min_tissue": scanner.min_tissue,
                "edge": scanner.edge, "white_level": scanner.white_level, "black_level": scanner.black_level}
    t0 = time.perf_counter()
    jobs = _open_jobs(slides, scanner, out, reader_kw)
    todo = [i for i, j in enumerate(jobs) if j.record is None]
    workers, chunks, startup = 0, [], 0.0
    if todo:
        t_init = time.perf_counter()
        try:
            ray.init(**init, log_to_driver=False, configure_logging=False)
            startup = time.perf_counter() - t_init
        except Exception as e:  # noqa: BLE001 — Ray raises ConnectionError, RuntimeError, ValueError by case
            raise ClusterError(f"--cluster {cluster}: cannot start or reach the Ray cluster: {_cause(e)}") from e
        try:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
            chunks = plan_chunks([jobs[i].rows for i in todo], workers, band_rows)
            for c in chunks:
                c.slide = todo[c.slide]
            _run_chunks(ray, jobs, chunks, scanner, out, settings, reader_kw, band_rows, progress)
        finally:
            ray.shutdown()
    wall = time.perf_counter() - t0
    scanned = [j.record for j in jobs if "tissue_tiles" in j.record and "skipped" not in j.record]
    return {"slides": [j.record for j in jobs],
            "cluster": {"address": cluster, "workers": workers, "chunks": len(chunks), "wall_seconds": wall,
                        "startup_seconds": startup,
                        "slides_scanned": len(scanned),
                        "skipped": sum(1 for j in jobs if "skipped" in j.record),
                        "tissue_tiles_per_s": sum(r["tissue_tiles"] for r in scanned) / wall if scanned else None}}


__all__ = ["ClusterError", "parse_cluster", "plan_chunks", "scan_chunk", "scan_slides"]
