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

from edgecnn.scan.image import IMAGE_SUFFIXES, ImageError, read_image
from edgecnn.scan.scanner import Scanner, ScanResult
from edgecnn.scan.sources import Frame, FrameSource, SourceError

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


class FolderWatch(FrameSource):
    """A folder a camera drops frames into, as a live FrameSource (the module doc's rules).

    Ends after ``timeout`` seconds (``stopped_by = "timeout"``) or when closed; a consumer that
    wants N frames stops iterating. ``dropped`` counts the backlog skipped under "newest".
    """

    kind = "watch"
    live = True

    def __init__(self, folder: str | os.PathLike, *, policy: str = "newest", poll_s: float = 0.05,
                 settle_s: float = 0.2, timeout: float | None = None, include_existing: bool = True):
        self.folder = Path(folder)
        super().__init__(str(self.folder))
        if not self.folder.is_dir():
            raise SourceError(f"{self.folder}: the folder to watch does not exist; create it or point --watch at the camera's output folder")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}; got {policy!r}")
        self.policy, self.poll_s, self.settle_s, self.timeout = policy, poll_s, settle_s, timeout
        self._done: set[tuple[str, int, int]] = set()
        self._pending: dict[str, tuple[tuple[str, int, int], float]] = {}
        self._closed = False
        if not include_existing:
            self._done.update(key for key, _ in _listing(self.folder))

    def close(self) -> None:
        self._closed = True

    @property
    def tracked(self) -> int:
        """Files remembered between polls (taken, or waiting to settle): at most what the folder
        holds, so a folder a camera fills and another process empties costs no growing memory."""
        return len(self._done) + len(self._pending)

    def _frames(self) -> Iterator[Frame]:
        start = time.monotonic()
        i = 0
        while not self._closed:
            if self.timeout is not None and time.monotonic() - start >= self.timeout:
                self.stopped_by = "timeout"
                return
            ready = _ready(self.folder, self._done, self._pending, self.settle_s)
            if not ready:
                time.sleep(self.poll_s)
                continue
            if self.policy == "newest":
                self.dropped += len(ready) - 1
                for _, _, key in ready[:-1]:
                    self._done.add(key)
                    self._pending.pop(key[0], None)
                ready = ready[-1:]
            for mtime_ns, path, key in ready:
                self._done.add(key)
                self._pending.pop(key[0], None)
                t0 = time.perf_counter()
                try:
                    image, error = read_image(path), None
                except (ImageError, OSError, ValueError) as e:
                    image, error = None, f"{type(e).__name__}: {e}"
                    log.warning("skipped frame %s: %s", path, error)
                yield Frame(i, path.name, image, error, path, (time.perf_counter() - t0) * 1e3, t0,
                            meta={"mtime_ns": mtime_ns, "dropped_so_far": self.dropped})
                i += 1
                if self.timeout is not None and time.monotonic() - start >= self.timeout:
                    self.stopped_by = "timeout"
                    return


def watch(folder: str | os.PathLike, scanner: Scanner, *, stride: int | None = None,
          origin: tuple[int, int] = (0, 0), policy: str = "newest", poll_s: float = 0.05,
          settle_s: float = 0.2, max_frames: int | None = None, timeout: float | None = None,
          include_existing: bool = True, stats: WatchStats | None = None) -> Iterator[FrameEvent]:
    """Yield one FrameEvent per frame taken from ``folder`` (see the module doc for the rules),
    scanning each in this thread (``edgecnn.scan.live`` runs the same source pipelined)."""
    try:
        source = FolderWatch(folder, policy=policy, poll_s=poll_s, settle_s=settle_s, timeout=timeout,
                             include_existing=include_existing)
    except SourceError as e:
        raise FileNotFoundError(str(e)) from None
    stats = stats if stats is not None else WatchStats()
    try:
        for frame in source:
            stats.dropped = source.dropped
            yield _scan_one(scanner, frame, stride, origin, stats)
            if max_frames is not None and stats.scanned + stats.failed >= max_frames:
                stats.stopped_by = "max_frames"
                return
        stats.stopped_by = stats.stopped_by or source.stopped_by
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
    listing = _listing(folder)
    _forget_gone(listing, done, pending)
    for key, mtime_ns in listing:
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


def _forget_gone(listing: list, done: set, pending: dict) -> None:
    """Drop what is remembered about files no longer in the folder (moved away, deleted, or
    rewritten: a rewritten file has a new key), so the memory follows the folder, not the run."""
    keys = {key for key, _ in listing}
    done.intersection_update(keys)
    for name in [n for n, (key, _) in pending.items() if key not in keys]:
        del pending[name]


def _scan_one(scanner: Scanner, frame: Frame, stride: int | None, origin: tuple[int, int],
              stats: WatchStats) -> FrameEvent:
    t0 = time.perf_counter()
    result: ScanResult | None = None
    error = frame.error
    if error is None:
        try:
            result = scanner.scan(frame.image, stride=stride, origin=origin, source=str(frame.path))
        except Exception as e:  # noqa: BLE001 — one bad frame must not stop a live loop
            error = f"{type(e).__name__}: {e}"
            log.warning("skipped frame %s: %s", frame.path, error)
    if error is None:
        stats.scanned += 1
    else:
        stats.failed += 1
    latency_ms = frame.capture_ms + (time.perf_counter() - t0) * 1e3
    age_ms = max(0.0, time.time() * 1e3 - frame.meta["mtime_ns"] / 1e6)
    return FrameEvent(frame.path, stats.scanned + stats.failed, result, error, latency_ms, frame.capture_ms, age_ms,
                      stats.dropped, frame.image if result is not None else None)
