"""Where frames come from: image files, a folder a camera drops frames into, a video file, a live
camera. One interface, so the scan loop never asks which: iterate a ``FrameSource`` and get
``Frame`` objects, each with its pixels as (H, W, 3) uint8 RGB or the reason it has none.

- ``live`` sources (a camera, a watched folder) make frames in real time whatever the consumer
  does; a consumer slower than them keeps only the newest frame (``edgecnn.scan.live``).
  Other sources (files, a video file) are read at the consumer's pace, every frame.
- A frame that cannot be read is a ``Frame`` with ``error`` set, never an exception: one bad
  frame must not end a live loop. A source that cannot be opened at all raises
  ``SourceError`` naming it and the fix.
- Another kind of source (e.g. regions of a whole-slide image) is one more subclass: implement
  ``_frames()`` and set ``kind``/``name``; ``Frame.meta`` carries whatever it needs to say
  about a frame (an offset in the slide, a level, a timestamp).

OpenCV (``opencv-python-headless``, in ``edgecnn[edge]``) is imported only by video and camera
sources. No TensorFlow here.
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np

from edgecnn.scan.image import IMAGE_SUFFIXES, ImageError, as_rgb8, read_image

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".ts")


class SourceError(ValueError):
    """A source that cannot be opened (missing file, not a video, no such camera); names the fix."""


@dataclass
class Frame:
    index: int                       # 0-based position in its source (video frame number, file order)
    name: str                        # for reports and output names: "a.png", "clip.mp4#12", "camera0#3"
    image: np.ndarray | None         # (H, W, 3) uint8 RGB; None when the frame could not be read
    error: str | None = None
    path: Path | None = None         # the file a frame came from, if it came from one
    capture_ms: float = 0.0          # time spent getting this frame (decode, camera wait)
    t_captured: float = field(default_factory=time.perf_counter)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None and self.image is not None


class FrameSource:
    """Base class: iterate for Frames; ``close()`` (or ``with``) releases the device or file."""

    kind = "frames"
    live = False

    def __init__(self, name: str):
        self.name = name
        self.fps: float | None = None       # the source's nominal rate, when it has one
        self.read = 0                       # frames handed out (good or bad)
        self.failed = 0                     # frames handed out with an error
        self.dropped = 0                    # frames the source itself skipped (watched-folder backlog)
        self.stopped_by = ""                # why iteration ended early ("timeout", "truncated", ...)

    def _frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Frame]:
        for frame in self._frames():
            self.read += 1
            self.failed += frame.error is not None
            yield frame

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "live": self.live, "fps": self.fps, "read": self.read,
                "failed": self.failed, "dropped": self.dropped, "stopped_by": self.stopped_by}


def _timed(index: int, name: str, path: Path | None, load) -> Frame:
    t0 = time.perf_counter()
    try:
        image, error = load(), None
    except (ImageError, OSError, ValueError) as e:
        image, error = None, str(e)
    return Frame(index, name, image, error, path, (time.perf_counter() - t0) * 1e3)


class ImageFiles(FrameSource):
    """Image files in the order given; an unreadable one is a Frame with its error."""

    kind = "images"

    def __init__(self, paths: Iterable[str | os.PathLike]):
        self.paths = [Path(p) for p in paths]
        super().__init__(f"{len(self.paths)} image(s)")

    def _frames(self) -> Iterator[Frame]:
        for i, path in enumerate(self.paths):
            yield _timed(i, path.name, path, lambda p=path: read_image(p))


class ArrayFrames(FrameSource):
    """Frames already in memory (arrays, PIL images), e.g. from a camera SDK that is not OpenCV."""

    kind = "arrays"

    def __init__(self, frames: Iterable[Any], name: str = "arrays", live: bool = False):
        super().__init__(name)
        self._items = frames
        self.live = live

    def _frames(self) -> Iterator[Frame]:
        for i, item in enumerate(self._items):
            yield _timed(i, f"{self.name}#{i}", None, lambda a=item, i=i: as_rgb8(a, name=f"{self.name}#{i}"))


def cv2_module():
    """OpenCV, quiet unless asked (its own warnings go to stderr), or an install hint."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    try:
        import cv2
    except ImportError as e:
        raise SourceError("video and camera input need OpenCV: pip install 'edgecnn[edge]' "
                          "(or pip install opencv-python-headless)") from e
    return cv2


def cv2_to_rgb(a: np.ndarray, name: str) -> np.ndarray:
    """What OpenCV hands over (BGR, BGRA, grey, 16-bit) → (H, W, 3) uint8 RGB by as_rgb8's rules."""
    if a.ndim == 3 and a.shape[2] == 3:
        a = a[..., ::-1]
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[..., [2, 1, 0, 3]]
    return np.ascontiguousarray(as_rgb8(a, name=name))


class _Capture(FrameSource):
    """An OpenCV VideoCapture read on one thread: ``close()`` from another thread only asks the
    reader to stop, and the capture is released by the reader (releasing it under a running
    ``read()`` can crash OpenCV)."""

    _cap: Any = None
    _closed = False
    _reading = False

    def _read_loop(self) -> Iterator[Frame]:
        raise NotImplementedError

    def _frames(self) -> Iterator[Frame]:
        self._reading = True
        try:
            for frame in self._read_loop():
                if self._closed:
                    return
                yield frame
        finally:
            self._reading = False
            self._cap.release()

    def close(self) -> None:
        self._closed = True
        if not self._reading and self._cap is not None:
            self._cap.release()


class VideoFile(_Capture):
    """Every frame of a video file (anything FFmpeg reads: mp4, avi, mkv, mov, ...).

    A file that ends before its header's frame count (truncated, or a decode error midway) ends
    the source with ``stopped_by = "truncated at frame N of M"``: the frames before it were good.
    """

    kind = "video"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        super().__init__(self.path.name)
        if not self.path.is_file():
            raise SourceError(f"{self.path}: no such video file")
        cv2 = cv2_module()
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise SourceError(f"{self.path}: OpenCV/FFmpeg cannot open it as a video (unsupported codec, "
                              "not a video, or an empty file); re-encode it, e.g. ffmpeg -i IN -c:v libx264 OUT.mp4")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None
        n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = n if n > 0 else None

    def _read_loop(self) -> Iterator[Frame]:
        i = 0
        while True:
            t0 = time.perf_counter()
            ok, a = self._cap.read()
            ms = (time.perf_counter() - t0) * 1e3
            if not ok or a is None:
                if self.frame_count is not None and i < self.frame_count:
                    self.stopped_by = f"truncated at frame {i} of {self.frame_count}"
                return
            name = f"{self.path.name}#{i}"
            try:
                yield Frame(i, name, cv2_to_rgb(a, name), None, self.path, ms, meta={"pos_ms": self._pos_ms()})
            except ImageError as e:
                yield Frame(i, name, None, str(e), self.path, ms)
            i += 1

    def _pos_ms(self) -> float:
        return float(self._cap.get(0))   # cv2.CAP_PROP_POS_MSEC == 0


def camera_devices() -> list[str]:
    return sorted(glob.glob("/dev/video*"))


class Camera(_Capture):
    """A live camera by index (OpenCV's V4L2 on Linux, its default elsewhere); frames as they come.

    ``width``/``height``/``fps`` are requests the driver may round. After ``max_failures``
    consecutive failed reads (unplugged camera) the source ends with ``stopped_by`` saying so;
    a single failed read is a Frame with its error.
    """

    kind = "camera"
    live = True

    def __init__(self, index: int, width: int | None = None, height: int | None = None,
                 fps: float | None = None, max_failures: int = 30):
        super().__init__(f"camera{index}")
        cv2 = cv2_module()
        self.index = int(index)
        self.max_failures = max_failures
        self._cap = cv2.VideoCapture(self.index)
        if not self._cap.isOpened():
            self._cap.release()
            present = camera_devices()
            raise SourceError(f"camera {index}: cannot open it (no such camera, or it is busy). "
                              f"Video devices here: {', '.join(present) if present else 'none'}. "
                              "Pass --camera with one of their numbers, or check the cable and permissions")
        for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width), (cv2.CAP_PROP_FRAME_HEIGHT, height),
                            (cv2.CAP_PROP_FPS, fps)):
            if value:
                self._cap.set(prop, value)
        got = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(got) if got and got > 0 else None

    def _read_loop(self) -> Iterator[Frame]:
        i = failures = 0
        while not self._closed:
            t0 = time.perf_counter()
            ok, a = self._cap.read()
            ms = (time.perf_counter() - t0) * 1e3
            name = f"{self.name}#{i}"
            if not ok or a is None:
                failures += 1
                if failures >= self.max_failures:
                    self.stopped_by = f"{failures} failed reads in a row (camera unplugged?)"
                    return
                yield Frame(i, name, None, f"{name}: the camera returned no frame", None, ms)
            else:
                failures = 0
                try:
                    yield Frame(i, name, cv2_to_rgb(a, name), None, None, ms)
                except ImageError as e:
                    yield Frame(i, name, None, str(e), None, ms)
            i += 1


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def open_inputs(paths: Iterable[str | os.PathLike]) -> list[FrameSource]:
    """The CLI's positional inputs as sources: each video its own source, runs of images one source."""
    sources: list[FrameSource] = []
    images: list[Path] = []
    for p in map(Path, paths):
        if is_video(p):
            if images:
                sources.append(ImageFiles(images))
                images = []
            sources.append(VideoFile(p))
        else:
            images.append(p)
    if images:
        sources.append(ImageFiles(images))
    return sources


__all__ = ["ArrayFrames", "Camera", "Frame", "FrameSource", "IMAGE_SUFFIXES", "ImageFiles", "SourceError",
           "VIDEO_SUFFIXES", "VideoFile", "camera_devices", "cv2_to_rgb", "is_video", "open_inputs"]
