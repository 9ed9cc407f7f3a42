"""Scan the frames a camera drops into a folder, as they arrive.

Complete files only. A file is taken when (a) its name is not a temporary one (starting with
``.`` or ending in ``.tmp``, ``.part``, ``.partial``, ``.crdownload``, ``.filepart``: write under
such a name, then rename, and the frame is taken at the next poll) and (b) its size and mtime
have not changed for ``settle_s`` seconds across two polls (catches writers that write in place).
A file rewritten under the same name (size or mtime changes) is a new frame.

Falling behind. With ``policy="newest"`` (default) the loop keeps up with the camera: of all the
frames that became ready since the last one was scanned, only the newest (by mtime, then name)
is scanned and the older ones are counted as dropped. ``policy="all"`` scans every frame in
order of arrival, however far behind that gets.

Failures. A frame that cannot be read or scanned is logged and reported (``FrameEvent.error``)
and the loop goes on. The loop ends after ``max_frames`` frames (scanned or failed; dropped
ones do not count), after ``timeout`` seconds, or on Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from edgecnn.scan.image import IMAGE_SUFFIXES, read_image
from edgecnn.scan.scanner import Scanner, ScanResult

log = logging.getLogger("edgecnn.scan")

POLICIES = ("newest", "all")
TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart")


@dataclass
class FrameEvent:
    path: Path
    index: int                     # 1-based count of frames taken (scanned or failed)
    result: ScanResult | None      # None when the frame failed
    error: str | None
    latency_ms: float              # ready file → result: decode + scan
    decode_ms: float
    age_ms: float                  # file's mtime → result: how stale the shown result is
    dropped: int                   # frames skipped so far under policy "newest"
    frame: np.ndarray | None = None  # the decoded (H, W, 3) frame, for overlays without a second decode

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class WatchStats:
    scanned: int = 0
    failed: int = 0
    dropped: int = 0
    stopped_by: str = ""           # "max_frames", "timeout", "interrupt"


def is_candidate(name: str) -> bool:
    low = name.lower()
    return not low.startswith(".") and not low.endswith(TEMP_SUFFIXES) and low.endswith(IMAGE_SUFFIXES)


def watch(folder: str | os.PathLike, scanner: Scanner, *, stride: int | None = None,
          origin: tuple[int, int] = (0, 0), policy: str = "newest", poll_s: float = 0.05,
          settle_s: float = 0.2, max_frames: int | None = None, timeout: float | None = None,
          include_existing: bool = True, stats: WatchStats | None = None) -> Iterator[FrameEvent]:
    """Yield one FrameEvent per frame taken from ``folder`` (see the module doc for the rules)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: the folder to watch does not exist; create it or point --watch at the camera's output folder")
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}; got {policy!r}")
    stats = stats if stats is not None else WatchStats()
    done: set[tuple[str, int, int]] = set()
    pending: dict[str, tuple[tuple[str, int, int], float]] = {}
    if not include_existing:
        done.update(key for key, _ in _listing(folder))
    start = time.monotonic()
    try:
        while True:
            if timeout is not None and time.monotonic() - start >= timeout:
                stats.stopped_by = "timeout"
                return
            ready = _ready(folder, done, pending, settle_s)
            if not ready:
                time.sleep(poll_s)
                continue
            if policy == "newest":
                stats.dropped += len(ready) - 1
                for _, _, key in ready[:-1]:
                    done.add(key)
                ready = ready[-1:]
            for mtime_ns, path, key in ready:
                done.add(key)
                pending.pop(key[0], None)
                yield _scan_one(scanner, path, mtime_ns, stride, origin, stats)
                if max_frames is not None and stats.scanned + stats.failed >= max_frames:
                    stats.stopped_by = "max_frames"
                    return
                if timeout is not None and time.monotonic() - start >= timeout:
                    stats.stopped_by = "timeout"
                    return
    except KeyboardInterrupt:
        stats.stopped_by = "interrupt"
        return


def _listing(folder: Path) -> list[tuple[tuple[str, int, int], int]]:
    out = []
    for e in os.scandir(folder):
        if not is_candidate(e.name):
            continue
        try:
            if not e.is_file():
                continue
            st = e.stat()
        except FileNotFoundError:  # renamed or deleted between listing and stat
            continue
        out.append(((e.name, st.st_size, st.st_mtime_ns), st.st_mtime_ns))
    return out


def _ready(folder: Path, done: set, pending: dict, settle_s: float) -> list[tuple[int, Path, tuple]]:
    """Files whose size and mtime held still for ``settle_s``, oldest first."""
    now = time.monotonic()
    ready = []
    for key, mtime_ns in _listing(folder):
        if key in done:
            continue
        name, size, _ = key
        prev = pending.get(name)
        if prev is None or prev[0] != key:
            pending[name] = (key, now)
            if settle_s > 0:
                continue
            prev = pending[name]
        if size > 0 and now - prev[1] >= settle_s:
            ready.append((mtime_ns, folder / name, key))
    ready.sort(key=lambda r: (r[0], r[1].name))
    return ready


def _scan_one(scanner: Scanner, path: Path, mtime_ns: int, stride: int | None, origin: tuple[int, int],
              stats: WatchStats) -> FrameEvent:
    t0 = time.perf_counter()
    decode_ms = 0.0
    result: ScanResult | None = None
    error: str | None = None
    frame = None
    try:
        frame = read_image(path)
        decode_ms = (time.perf_counter() - t0) * 1e3
        result = scanner.scan(frame, stride=stride, origin=origin, source=str(path))
        stats.scanned += 1
    except Exception as e:  # noqa: BLE001 — one bad frame must not stop a live loop
        error = f"{type(e).__name__}: {e}"
        stats.failed += 1
        log.warning("skipped frame %s: %s", path, error)
    latency_ms = (time.perf_counter() - t0) * 1e3
    age_ms = max(0.0, time.time() * 1e3 - mtime_ns / 1e6)
    return FrameEvent(path, stats.scanned + stats.failed, result, error, latency_ms, decode_ms, age_ms, stats.dropped,
                      frame if result is not None else None)

