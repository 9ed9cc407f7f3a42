"""The live loop: capture, scan and render on three threads joined by bounded queues, so the
frame rate approaches 1 / (slowest stage), not 1 / (sum of the stages).

    capture ──q(2)──▶ scan ──q(2)──▶ render (overlay + sinks: video, JSON lines, window, PNGs)

Falling behind. ``policy="newest"`` (the default for live sources: a camera, a watched folder):
when the scan stage is busy and the capture queue is full, the oldest waiting frame is dropped
for the new one, so what is shown is never more than a queue behind the camera; drops are
counted. ``policy="all"`` (the default for files and videos) makes capture wait instead: every
frame is scanned and the annotated video is complete.

Failures. A frame the source could not read, or the scanner rejected (too small, bad pixels),
is counted and passed to the sinks as a failed frame (a JSON line with its error); the loop
goes on. A sink that fails on a frame (e.g. a frame of another size for the video) counts a
skip and says why. Ctrl-C (or ``stop()``) ends the loop after the frames in flight.

Timing per stage (ms, p50/p99/mean) and the delivered frame rate go into ``LiveReport``:
capture = getting the frame (decode, camera wait), scan = ``Scanner.scan``, render = overlay +
every sink. The loop's ceiling is 1000 / mean(slowest stage) frames per second.

Running for days. Nothing in the loop grows with the number of frames: each stage keeps an exact
count, mean, min and max and a uniform sample of at most ``stage_samples`` times for the
percentiles (``StageTimes``), and a frame is gone once its sinks have it. Every ``trim_every_s``
(None or 0: never) the driver hands glibc's free heap pages back to the system (``malloc_trim``):
frame-sized buffers freed on three threads otherwise leave per-thread arenas that grow in steps
for the first thousands of frames (measured in docs/reliability.md, "Soak").
"""

from __future__ import annotations

import dataclasses
import logging
import math
import queue
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np

from edgecnn.bench.latency import Latency
from edgecnn.memtrim import trim_heap
from edgecnn.scan.overlay import overlay_array
from edgecnn.scan.scanner import Scanner, ScanResult
from edgecnn.scan.sources import Frame, FrameSource

log = logging.getLogger("edgecnn.scan")

POLICIES = ("newest", "all")
STAGES = ("capture", "scan", "render")
STAGE_SAMPLES = 10_000
TRIM_EVERY_S = 5.0
_END = object()


class StageTimes:
    """One stage's times (ms): exact count, mean, min and max, and a uniform random sample
    (reservoir) of at most ``keep`` of them for the percentiles. Keeping every time would grow by
    ~100 bytes a frame over three stages for as long as a camera runs; with ``keep`` = 10,000
    the percentiles of a longer run are estimates from 10,000 of its frames."""

    def __init__(self, keep: int = STAGE_SAMPLES, seed: int = 0):
        if keep < 1:
            raise ValueError(f"keep must be >= 1; got {keep}")
        self.keep, self.n, self.total = keep, 0, 0.0
        self.lo, self.hi = math.inf, -math.inf
        self.kept: list[float] = []
        self._rng = random.Random(seed)    # seeded: the same run gives the same report

    def append(self, ms: float) -> None:
        self.n += 1
        self.total += ms
        self.lo, self.hi = min(self.lo, ms), max(self.hi, ms)
        if len(self.kept) < self.keep:
            self.kept.append(ms)
            return
        j = self._rng.randrange(self.n)      # Algorithm R: every time so far equally likely kept
        if j < self.keep:
            self.kept[j] = ms

    def __len__(self) -> int:
        return self.n

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    def latency(self) -> Latency:
        """Percentiles and stdev from the sample; n, mean, min and max exact."""
        lat = Latency.from_samples(self.kept)
        return dataclasses.replace(lat, n=self.n, mean=self.mean, min=self.lo, max=self.hi)


@dataclass
class Scanned:
    """What the render stage gets: the frame, and its scan or the reason it has none."""

    frame: Frame
    result: ScanResult | None
    error: str | None
    scan_ms: float = 0.0
    outputs: dict[str, Any] = field(default_factory=dict)   # what sinks wrote for it (e.g. "png": path)

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass
class LiveReport:
    source: dict[str, Any] = field(default_factory=dict)
    policy: str = "all"
    captured: int = 0
    scanned: int = 0
    failed: int = 0                  # frames the source or the scanner could not use
    dropped: int = 0                 # frames dropped for newer ones (queue and source backlog)
    rendered: int = 0
    sink_skips: dict[str, int] = field(default_factory=dict)
    elapsed_s: float = 0.0
    stopped_by: str = ""
    stage_ms: dict[str, StageTimes] = field(default_factory=lambda: {s: StageTimes() for s in STAGES})

    t_start: float = 0.0

    @property
    def fps(self) -> float:
        """Frames delivered (rendered) per second, start to last render (so far, while running)."""
        elapsed = self.elapsed_s or (time.perf_counter() - self.t_start if self.t_start else 0.0)
        return self.rendered / elapsed if elapsed > 0 else 0.0

    def stages(self) -> dict[str, dict[str, float]]:
        return {s: v.latency().as_dict() for s, v in self.stage_ms.items() if v}

    def bound_fps(self) -> float | None:
        """1000 / mean time of the slowest stage: what a perfect pipeline would deliver."""
        means = [v.mean for v in self.stage_ms.values() if v]
        return 1000.0 / max(means) if means and max(means) > 0 else None

    def summary(self) -> dict[str, Any]:
        bound = self.bound_fps()
        stages = self.stages()
        slowest = max(stages, key=lambda s: stages[s]["mean"]) if stages else None
        return {"source": self.source, "policy": self.policy, "captured": self.captured, "scanned": self.scanned,
                "failed": self.failed, "dropped": self.dropped, "rendered": self.rendered,
                "sink_skips": dict(self.sink_skips), "elapsed_s": self.elapsed_s, "fps": self.fps,
                "bound_fps": bound, "fps_vs_bound": self.fps / bound if bound else None,
                "slowest_stage": slowest, "stages_ms": stages, "stopped_by": self.stopped_by}


class Sink:
    """Where rendered frames go. ``needs_image``: the render stage makes the overlay only if a sink
    wants it. ``write`` raises ``SinkSkip`` to skip one frame (counted), anything else is a bug."""

    name = "sink"
    needs_image = True

    def write(self, item: Scanned, image: np.ndarray | None) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class SinkSkip(Exception):
    """This sink cannot take this frame (the message says why); the loop goes on."""


class LivePipeline:
    """Run ``source`` through ``scanner`` into ``sinks`` on three threads (see the module doc)."""

    def __init__(self, source: FrameSource, scanner: Scanner, sinks: Iterable[Sink] = (), *,
                 policy: str | None = None, queue_size: int = 2, stride: int | None = None,
                 origin: tuple[int, int] = (0, 0), max_frames: int | None = None, legend: bool = True,
                 on_frame: Callable[[Scanned, "LiveReport"], None] | None = None, stage_samples: int = STAGE_SAMPLES,
                 trim_every_s: float | None = TRIM_EVERY_S):
        policy = policy or ("newest" if source.live else "all")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}; got {policy!r}")
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1; got {queue_size}")
        self.source, self.scanner, self.sinks = source, scanner, list(sinks)
        self.stride, self.origin, self.max_frames, self.legend = stride, origin, max_frames, legend
        self.on_frame, self.trim_every_s = on_frame, trim_every_s
        self.report = LiveReport(policy=policy)
        self.report.stage_ms = {s: StageTimes(stage_samples) for s in STAGES}
        self._q_scan: queue.Queue = queue.Queue(queue_size)
        self._q_render: queue.Queue = queue.Queue(queue_size)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._errors: list[BaseException] = []

    def stop(self) -> None:
        self._stop.set()
        self.source.close()

    # --- stages ---------------------------------------------------------------------------
    def _capture(self) -> None:
        r = self.report
        try:
            for frame in self.source:
                if self._stop.is_set():
                    break
                r.stage_ms["capture"].append(frame.capture_ms)
                r.captured += 1
                self._offer(frame)
                if self.max_frames is not None and r.captured >= self.max_frames:
                    r.stopped_by = r.stopped_by or "max_frames"
                    break
        finally:
            r.stopped_by = r.stopped_by or self.source.stopped_by
            self._put(self._q_scan, _END, force=True)

    def _offer(self, frame: Frame) -> None:
        if self.report.policy == "all":
            self._put(self._q_scan, frame)
            return
        while True:
            try:
                self._q_scan.put_nowait(frame)
                return
            except queue.Full:
                try:
                    self._q_scan.get_nowait()          # the oldest waiting frame gives way
                    with self._lock:
                        self.report.dropped += 1
                except queue.Empty:
                    pass

    def _scan(self) -> None:
        r = self.report
        while True:
            frame = self._q_scan.get()
            if frame is _END:
                break
            error, result, ms = frame.error, None, 0.0
            if error is None:
                t0 = time.perf_counter()
                try:
                    result = self.scanner.scan(frame.image, stride=self.stride, origin=self.origin, source=frame.name)
                except Exception as e:  # noqa: BLE001 — one bad frame must not stop a live loop
                    error = str(e) if str(e).startswith(frame.name) else f"{frame.name}: {e}"
                ms = (time.perf_counter() - t0) * 1e3
                r.stage_ms["scan"].append(ms)
            if error is None:
                r.scanned += 1
            else:
                with self._lock:
                    r.failed += 1
                log.warning("skipped frame %s", error)
            self._put(self._q_render, Scanned(frame, result, error, ms))
        self._put(self._q_render, _END, force=True)

    def _render(self) -> None:
        r = self.report
        want_image = any(s.needs_image for s in self.sinks)
        while True:
            item = self._q_render.get()
            if item is _END:
                break
            t0 = time.perf_counter()
            image = None
            if item.ok and want_image:
                image = overlay_array(item.frame.image, item.result, legend=self.legend)
            for sink in self.sinks:
                try:
                    sink.write(item, image)
                except SinkSkip as e:
                    r.sink_skips[sink.name] = r.sink_skips.get(sink.name, 0) + 1
                    log.warning("%s: skipped %s: %s", sink.name, item.frame.name, e)
            if item.ok:
                r.stage_ms["render"].append((time.perf_counter() - t0) * 1e3)
                r.rendered += 1
            if self.on_frame is not None:
                self.on_frame(item, r)

    def _put(self, q: queue.Queue, item: Any, force: bool = False) -> None:
        """Blocking put that still notices stop() (force: the end marker must always get through)."""
        while True:
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                if self._stop.is_set() and not force:
                    return
                if self._stop.is_set():   # make room for the end marker: drop what is waiting
                    try:
                        q.get_nowait()
                    except queue.Empty:
                        pass

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as e:  # noqa: BLE001 — re-raised in run() on the caller's thread
                self._errors.append(e)
                self.stop()
                for q in (self._q_scan, self._q_render):
                    self._put(q, _END, force=True)
        return run

    # --- driver ---------------------------------------------------------------------------
    def _wait(self, last: threading.Thread) -> None:
        """Wait for the render thread, trimming the heap now and then (module doc: running for days)."""
        next_trim = time.monotonic() + (self.trim_every_s or math.inf)
        while last.is_alive():
            last.join(0.2)
            if time.monotonic() >= next_trim:
                trim_heap()
                next_trim = time.monotonic() + self.trim_every_s

    def run(self) -> LiveReport:
        """Run to the end of the source (or max_frames, stop(), Ctrl-C); returns the report."""
        threads = [threading.Thread(target=self._guard(fn), name=f"edgecnn-{name}", daemon=True)
                   for name, fn in (("capture", self._capture), ("scan", self._scan), ("render", self._render))]
        t0 = self.report.t_start = time.perf_counter()
        for t in threads:
            t.start()
        try:
            self._wait(threads[-1])
        except KeyboardInterrupt:
            self.report.stopped_by = "interrupt"
            self.stop()
            threads[-1].join(10)
        finally:
            self.report.elapsed_s = time.perf_counter() - t0
            for sink in self.sinks:
                sink.close()
            self.source.close()
        self.report.dropped += self.source.dropped
        self.report.source = self.source.describe()
        if self._errors:
            raise self._errors[0]
        return self.report


def run_live(source: FrameSource, scanner: Scanner, sinks: Iterable[Sink] = (), **kwargs) -> LiveReport:
    """``LivePipeline(source, scanner, sinks, **kwargs).run()``."""
    return LivePipeline(source, scanner, sinks, **kwargs).run()
