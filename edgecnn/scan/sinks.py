"""Where the live loop's rendered frames go: overlay PNGs, an annotated video, JSON lines, a
window. Each is a ``edgecnn.scan.live.Sink``; a frame one cannot take is a counted ``SinkSkip``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any, Callable

import numpy as np

from edgecnn.fsutil import dumps_strict, temp_beside
from edgecnn.scan.live import Scanned, Sink, SinkSkip
from edgecnn.scan.sources import cv2_module

# Container → codec OpenCV's FFmpeg writes without extra libraries.
FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}
DEFAULT_FPS = 10.0


def frame_record(item: Scanned, grid: bool = True) -> dict[str, Any]:
    """One frame as a JSON object: the scan's summary (and grid), or its error."""
    f = item.frame
    rec: dict[str, Any] = {"frame": f.index, "name": f.name, "source": str(f.path) if f.path else f.name}
    if not item.ok:
        return rec | {"error": item.error}
    rec |= item.result.summary(grid=grid)
    rec["source"] = str(f.path) if f.path else f.name
    rec.update(capture_ms=f.capture_ms, scan_ms=item.scan_ms, **f.meta)
    return rec


class JsonLines(Sink):
    """One strict-JSON line per frame as it is rendered (a reader can follow the file), then the
    run's summary as the last line ``{"summary": ...}`` (``write_summary``)."""

    name = "json"
    needs_image = False

    def __init__(self, dest: str, grid: bool = True, extra: Callable[[Scanned], dict] | None = None):
        self.dest = dest
        self.grid = grid
        self.extra = extra
        if dest == "-":
            import sys

            self._fh: IO[str] = sys.stdout
        else:
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(dest, "w", encoding="utf-8", buffering=1)

    def _line(self, obj: Any) -> None:
        self._fh.write(dumps_strict(obj, indent=None) + "\n")
        self._fh.flush()

    def write(self, item: Scanned, image: np.ndarray | None) -> None:
        rec = frame_record(item, self.grid)
        if self.extra is not None:
            rec.update(self.extra(item))
        self._line(rec)

    def write_summary(self, summary: dict[str, Any]) -> None:
        self._line({"summary": summary})

    def close(self) -> None:
        """End of one source: flush only. One file may take several sources; ``finish`` closes it."""
        self._fh.flush()

    def finish(self) -> None:
        if self.dest != "-":
            self._fh.close()


class PngFiles(Sink):
    """``<out>/<stem>.overlay.png`` per frame (unique stems), written atomically; the path goes
    to the frame (``item.outputs["png"]``), so the sink keeps nothing per frame but the stems it
    used (~100 bytes, beside the PNG of tens of KB each frame leaves on disk)."""

    name = "png"

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.used: set[str] = set()

    def target(self, item: Scanned) -> Path:
        f = item.frame
        base = f.path.stem if f.path is not None and f.name == f.path.name else f.name.replace("#", "-")
        stem, i = base, 1
        while stem in self.used:
            i += 1
            stem = f"{base}-{i}"
        self.used.add(stem)
        return self.folder / f"{stem}.overlay.png"

    def write(self, item: Scanned, image: np.ndarray | None) -> None:
        if image is None:
            return
        from edgecnn.data.mosaic import save_png

        path = self.target(item)
        save_png(path, image)
        item.outputs[self.name] = path


class VideoOut(Sink):
    """The annotated video: every rendered frame, at the source's rate (else 10 fps).

    Written under a temporary name and renamed on close, so the file at ``path`` is always a
    finished video (a killed write leaves the old file, or none); it holds every good frame up to
    the last one. Its size is the first frame's; a frame of another size is skipped (counted)
    rather than stretched.
    """

    name = "video"

    def __init__(self, path: str | os.PathLike, fps: float | None = None):
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else DEFAULT_FPS
        suffix = self.path.suffix.lower()
        if suffix not in FOURCC:
            raise ValueError(f"{self.path}: the annotated video must end in one of {', '.join(FOURCC)}")
        self._cv2 = cv2_module()
        self._writer = None
        self._size: tuple[int, int] | None = None
        self._tmp: Path | None = None
        self.frames = 0

    def _open(self, w: int, h: int) -> None:
        cv2 = self._cv2
        # Hidden and named after this process: the next writer of the same video removes what a
        # killed one left (fsutil.remove_orphaned_temps) instead of piling up partial copies.
        self._tmp = temp_beside(self.path)
        fourcc = cv2.VideoWriter_fourcc(*FOURCC[self.path.suffix.lower()])
        self._writer = cv2.VideoWriter(str(self._tmp), fourcc, self.fps, (w, h))
        if not self._writer.isOpened():
            self._tmp.unlink(missing_ok=True)
            raise OSError(f"{self.path}: OpenCV cannot write this video format here; use .avi (MJPG) or .mp4")
        self._size = (w, h)

    def write(self, item: Scanned, image: np.ndarray | None) -> None:
        if image is None:
            return
        h, w = image.shape[:2]
        if self._writer is None:
            self._open(w, h)
        if (w, h) != self._size:
            raise SinkSkip(f"frame is {w}×{h} but the video is {self._size[0]}×{self._size[1]}")
        self._writer.write(np.ascontiguousarray(image[..., ::-1]))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self._tmp, self.path)


class Window(Sink):
    """A live window (``--show``): needs a display and OpenCV with GUI support (opencv-python,
    not -headless). ``q`` or Esc in the window stops the loop through ``on_quit``."""

    name = "show"

    def __init__(self, title: str = "edgecnn scan", on_quit: Callable[[], None] | None = None):
        cv2 = cv2_module()
        if os.name != "nt" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise RuntimeError("--show needs a display (no DISPLAY/WAYLAND_DISPLAY here); write --out VIDEO instead")
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            raise RuntimeError("--show needs OpenCV with GUI support: pip install opencv-python "
                               f"(the -headless build has none): {e}") from None
        self._cv2, self.title, self.on_quit = cv2, title, on_quit

    def write(self, item: Scanned, image: np.ndarray | None) -> None:
        if image is None:
            return
        self._cv2.imshow(self.title, image[..., ::-1])
        if self._cv2.waitKey(1) & 0xFF in (ord("q"), 27) and self.on_quit:
            self.on_quit()

    def close(self) -> None:
        self._cv2.destroyWindow(self.title)


def video_target(out: Path, source_name: str) -> Path:
    """``--out``: a video file name as given, else ``<out>/<source stem>.overlay.mp4``."""
    if out.suffix.lower() in FOURCC:
        return out
    return out / f"{Path(source_name).stem or source_name}.overlay.mp4"
