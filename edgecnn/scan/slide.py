"""Whole slides and huge images as a stream of horizontal bands at the model's scale.

Scale. The model knows only the dataset's scale: 50 px patches cut from 40× slides (≈ 0.25 µm/px)
downsampled 16:1, i.e. ``MODEL_MPP`` = 4.0 µm per pixel. A slide is read at the pyramid level
whose downsample is the largest one not beyond ``MODEL_MPP / mpp`` and resampled the rest of the
way (PIL, antialiased), so tiles see the dataset's scale whatever the scanner's objective.
``mpp`` is the slide's own (``openslide.mpp-x``) unless ``--mpp`` overrides it; a slide without
one is refused with a message asking for ``--mpp`` (guessing the scale would silently change
every probability).

Readers (one interface: ``width``/``height`` at model scale, ``bands(band_h, start_y)``):

- ``OpenSlideReader``: SVS, NDPI, MRXS, SCN, generic tiled TIFF, ... via ``openslide-python`` +
  ``openslide-bin`` (``pip install 'edgecnn[slides]'``). Each band is read in column chunks, so
  memory is a few bands of tiles at the read level, never the slide.
- ``TiffReader``: any other TIFF (striped or tiled, one level) streamed strip by strip / tile row
  by tile row with ``tifffile``. Its pixels are taken as the model's scale times ``rescale``
  (as for PNG frames), or converted from ``mpp`` when given.

``SlideSource`` wraps a reader as a ``FrameSource``: one Frame per band, ``meta["y"]`` its top
row at model scale. No TensorFlow here.

Damaged files. OpenSlide is C: what it cannot survive ends the process, not a Python exception.
It trusts a TIFF's tile size, so a damaged TileLength makes it allocate hundreds of GB and GLib
abort. Before OpenSlide opens a TIFF-based slide, ``check_tiles`` reads its tags with tifffile
(which allocates nothing for them) and refuses tile sizes no scanner writes, or fewer tiles than
the image needs (found by fuzzing: tests/test_fuzz_readers.py).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from PIL import Image

from edgecnn import PATCH_SIZE
from edgecnn.scan.image import as_rgb8
from edgecnn.scan.sources import Frame, FrameSource, SourceError

MODEL_MPP = 4.0
# Vendor formats only OpenSlide reads; TIFFs are tried with OpenSlide first, then tifffile.
SLIDE_SUFFIXES = (".svs", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif", ".svslide", ".dcm")
TIFF_SUFFIXES = (".tif", ".tiff")
CHUNK_PX = 4096          # widest read at the slide's level, in pixels (bounds memory on wide slides)
MAX_TILE_PX = 8192       # a tile side no slide scanner writes (they use 240–2048); OpenSlide allocates w×h×4


class SlideError(SourceError):
    """A slide that cannot be read as asked (not a slide, no mpp, no such level); names the fix."""


def dicom_instance(folder: str | os.PathLike) -> Path | None:
    """The first instance of the DICOM whole-slide series in ``folder`` (``.dcm``, or the DICM magic:
    instances are often named by UID, 1.2.840...), else None. OpenSlide opens a series from any one of its instances."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    for f in sorted(folder.iterdir()):
        if f.is_file() and (f.suffix.lower() == ".dcm" or _has_dicm_magic(f)):
            return f
    return None


def _has_dicm_magic(f: Path) -> bool:
    try:
        with open(f, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def is_slide_path(path: str | os.PathLike) -> bool:
    """Files scanned by streaming: vendor slide formats and TIFFs."""
    return Path(path).suffix.lower() in SLIDE_SUFFIXES + TIFF_SUFFIXES


def _openslide():
    try:
        import openslide
    except ImportError as e:
        raise SlideError("whole-slide formats need OpenSlide: pip install 'edgecnn[slides]' "
                         "(openslide-python and openslide-bin; no system install)") from e
    return openslide


MAX_UPSAMPLE = 1.5   # the most a slide is enlarged on its own stated pixel size (more needs --mpp)


def check_tiles(file: Path, name: Path | None = None) -> None:
    """Refuse a TIFF-based slide whose tiles OpenSlide would choke on (see the module doc). Files
    that are not TIFFs, or that tifffile cannot parse, are left to OpenSlide's own checks."""
    try:
        with open(file, "rb") as f:
            if f.read(4) not in (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+"):
                return
        import tifffile

        with tifffile.TiffFile(file) as tif:
            problem = next(filter(None, (_tile_problem(p) for p in tif.pages)), None)
    except Exception:  # noqa: BLE001 — not parseable by tifffile: OpenSlide decides (its formats, its errors)
        return
    if problem:
        raise SlideError(f"{name or file}: damaged TIFF: {problem}; copy the file again")


def _tile_problem(page) -> str | None:
    """What is wrong with a page's tiles or strips, from its tags alone (None: nothing). A damaged
    size tag makes the page need millions of segments the file does not list: readers then size
    their tables by the tag (tifffile: a list per segment, 20 GB for one fuzzed file)."""
    planes = int(page.samplesperpixel) if page.planarconfig == 2 else 1
    if getattr(page, "is_tiled", False):
        tw, th = int(page.tilewidth), int(page.tilelength)
        if not (1 <= tw <= MAX_TILE_PX and 1 <= th <= MAX_TILE_PX):
            return f"page {page.index} has {tw}×{th} px tiles (slides have 1 to {MAX_TILE_PX} px a side)"
        need, what = math.ceil(page.imagewidth / tw) * math.ceil(page.imagelength / th) * planes, "tiles"
    else:
        rows = min(int(page.rowsperstrip or page.imagelength), int(page.imagelength)) or 1
        need, what = math.ceil(page.imagelength / rows) * planes, "strips"
    if min(len(page.dataoffsets), len(page.databytecounts)) < need:
        return (f"page {page.index} lists {len(page.dataoffsets)} {what}, its size "
                f"({page.imagewidth}×{page.imagelength} px) needs {need:,}")
    return None


class OpenSlideReader:
    """A slide through OpenSlide, resampled to ``target_mpp``; see the module doc."""

    kind = "openslide"

    def __init__(self, path: str | os.PathLike, mpp: float | None = None, level: int | None = None,
                 target_mpp: float = MODEL_MPP):
        self.path = Path(path)   # a DICOM series is its folder: outputs are named after it
        openslide = _openslide()
        file = dicom_instance(self.path) if self.path.is_dir() else self.path
        if file is None or not file.is_file():
            raise SlideError(f"{self.path}: no such slide file" if file is None or not self.path.is_dir() else
                             f"{self.path}: a folder with no DICOM instances (.dcm) in it")
        check_tiles(file, self.path)
        try:
            self.slide = openslide.OpenSlide(str(file))
        except (openslide.OpenSlideError, OSError) as e:
            raise SlideError(f"{self.path}: not a slide OpenSlide can read, or truncated ({e}); "
                             "formats: SVS, NDPI, MRXS, SCN, DICOM, tiled TIFF. Copy the file again or convert it") from e
        self.mpp = float(mpp) if mpp else self._slide_mpp()
        self.target_mpp = float(target_mpp)
        self.factor = self.target_mpp / self.mpp          # level-0 pixels per model pixel
        if mpp is None and self.factor < 1 / MAX_UPSAMPLE:
            # A generic TIFF's resolution tag is often a print DPI (72 dpi reads as ~353 µm/px):
            # trusting it would blow the image up ~88× into hundreds of thousands of tiles.
            raise SlideError(
                f"{self.path}: its resolution tag says {self.mpp:g} µm/px, so scanning at the model's "
                f"{self.target_mpp:g} µm/px would enlarge it {1 / self.factor:.0f}×. That is usually a print DPI, "
                "not the scan's pixel size: pass --mpp with the real one (0.25 for a 40× scan, 0.5 for 20×)")
        self.level = self._pick_level(level)
        self.level_ds = float(self.slide.level_downsamples[self.level])
        w0, h0 = self.slide.dimensions
        self.width, self.height = int(w0 / self.factor), int(h0 / self.factor)
        if self.width < 1 or self.height < 1:
            raise SlideError(f"{self.path}: {w0}×{h0} px at {self.mpp} µm/px is smaller than one pixel at "
                             f"{self.target_mpp} µm/px; check --mpp")

    def _slide_mpp(self) -> float:
        v = self.slide.properties.get("openslide.mpp-x")
        try:
            mpp = float(v) if v else 0.0
        except ValueError:
            mpp = 0.0
        if not mpp > 0:
            raise SlideError(f"{self.path}: the slide does not say its pixel size (no openslide.mpp-x); "
                             "pass --mpp, e.g. --mpp 0.25 for a 40× scan or --mpp 0.5 for 20×")
        return mpp

    def _pick_level(self, level: int | None) -> int:
        n = self.slide.level_count
        if level is not None:
            if not 0 <= level < n:
                raise SlideError(f"{self.path}: no level {level}; the slide has levels 0–{n - 1} "
                                 f"(downsamples {', '.join(f'{d:g}' for d in self.slide.level_downsamples)}). "
                                 "Pass one of those to --level, or leave --level out")
            return level
        # Level sizes are rounded, so a "16×" level reports 16.05 or so: allow 3% before passing it over.
        ok = [i for i, d in enumerate(self.slide.level_downsamples) if d <= self.factor * 1.03]
        return max(ok, key=lambda i: self.slide.level_downsamples[i]) if ok else 0

    def _read(self, x: int, y: int, w: int, h: int) -> np.ndarray:
        """Model-scale box (x, y, w, h) → (h, w, 3) uint8, read at ``self.level`` and resampled."""
        f, ds = self.factor, self.level_ds
        lx, ly = int(round(x * f)), int(round(y * f))        # level-0 corner
        lw, lh = max(1, int(round(w * f / ds))), max(1, int(round(h * f / ds)))
        try:
            region = self.slide.read_region((lx, ly), self.level, (lw, lh))
        except Exception as e:  # noqa: BLE001 — openslide.OpenSlideError: a damaged tile, a cut-off file
            raise SlideError(f"{self.path}: cannot read level {self.level} at ({lx}, {ly}): {e}; the file is "
                             "truncated or damaged, copy it again") from e
        rgb = as_rgb8(np.asarray(region), name=str(self.path))  # RGBA: alpha 0 past the slide = white glass
        if (lw, lh) != (w, h):
            rgb = np.asarray(Image.fromarray(rgb).resize((w, h), Image.Resampling.BILINEAR, reducing_gap=None))
        return rgb

    def bands(self, band_h: int, start_y: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        # Column chunks end on the model's tile grid, so no tile straddles two resampled chunks.
        step = max(PATCH_SIZE, int(CHUNK_PX * self.level_ds / self.factor) // PATCH_SIZE * PATCH_SIZE)
        for y in range(start_y, self.height, band_h):
            h = min(band_h, self.height - y)
            chunks = [self._read(x, y, min(step, self.width - x), h) for x in range(0, self.width, step)]
            yield y, np.concatenate(chunks, axis=1) if len(chunks) > 1 else chunks[0]

    def to_level0(self) -> float:
        return self.factor

    def describe(self) -> dict[str, Any]:
        return {"reader": self.kind, "path": str(self.path), "mpp": self.mpp, "target_mpp": self.target_mpp,
                "level": self.level, "level_downsample": self.level_ds, "levels": self.slide.level_count,
                "level0_size": list(self.slide.dimensions), "size": [self.width, self.height]}

    def close(self) -> None:
        self.slide.close()


class TiffReader:
    """A one-level TIFF (striped or tiled) streamed with tifffile, segment row by segment row."""

    kind = "tifffile"

    def __init__(self, path: str | os.PathLike, rescale: float = 1.0, mpp: float | None = None,
                 target_mpp: float = MODEL_MPP):
        import tifffile

        self.path = Path(path)
        if not self.path.is_file():
            raise SlideError(f"{self.path}: no such TIFF file")
        self.tif = None
        try:
            self.tif = tifffile.TiffFile(self.path)
            self.page = self.tif.pages.first
            self._shape = self.page.shape
            self.h0, self.w0 = int(self.page.imagelength), int(self.page.imagewidth)
            if self.h0 < 1 or self.w0 < 1:
                raise ValueError(f"{self.w0}×{self.h0} px")
            problem = _tile_problem(self.page)
        except Exception as e:  # noqa: BLE001 — see _segments: a damaged file's tags break tifffile in many ways
            self.close()
            raise SlideError(f"{self.path}: not a TIFF tifffile can read, or truncated ({type(e).__name__}: {e}); "
                             "copy it again") from e
        if problem:
            self.close()
            raise SlideError(f"{self.path}: damaged TIFF: {problem}; copy the file again")
        self.mpp = mpp
        self.target_mpp = target_mpp
        self.rescale = float(mpp / target_mpp) if mpp else float(rescale)
        self.width, self.height = max(1, round(self.w0 * self.rescale)), max(1, round(self.h0 * self.rescale))

    def _rows(self) -> Iterator[np.ndarray]:
        """Full-width rows of the level-0 image, one segment row at a time (a strip or a row of tiles)."""
        p = self.page
        seg_w = p.tilewidth if p.is_tiled else p.imagewidth
        row: dict[int, np.ndarray] = {}
        ncols = math.ceil(p.imagewidth / seg_w)
        for seg, idx, _shape in self._segments():
            if seg is None:
                raise SlideError(f"{self.path}: a strip/tile is missing or truncated; copy the file again")
            x = idx[-2] if p.is_tiled else 0
            try:
                row[x] = seg.reshape(seg.shape[-3:])
                if len(row) == ncols:
                    band = np.concatenate([row[k] for k in sorted(row)], axis=1)[:, :p.imagewidth]
            except ValueError as e:     # segments whose shapes disagree: damaged tile tags
                raise SlideError(f"{self.path}: inconsistent TIFF tiles ({e}); copy the file again") from e
            if len(row) == ncols:
                row = {}
                yield band

    def _segments(self) -> Iterator[tuple]:
        it = self.page.segments()
        while True:
            try:
                item = next(it)
            except StopIteration:
                return
            except Exception as e:  # noqa: BLE001 — tifffile reading a damaged file: a cut-off strip is a
                # codec error (zlib.error, ValueError), a zeroed tag a ZeroDivisionError or TypeError;
                # whatever the library raises, the user's answer is the same: the file is damaged.
                raise SlideError(f"{self.path}: truncated or corrupt TIFF data ({type(e).__name__}: {e}); "
                                 "copy the file again") from e
            yield item

    def bands(self, band_h: int, start_y: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        buf = np.zeros((0, self.w0, 3), np.uint8)
        top, y = 0, 0                       # level-0 row of buf[0]; model-scale row of the next band
        for rows in self._rows():
            buf = np.concatenate([buf, as_rgb8(rows, name=str(self.path))], axis=0)
            while y < self.height:
                h = min(band_h, self.height - y)
                lo, hi = round(y / self.rescale), round((y + h) / self.rescale)
                if hi > top + buf.shape[0] and top + buf.shape[0] < self.h0:
                    break                   # this band needs rows not read yet
                band, buf, top = buf[lo - top:hi - top], buf[hi - top:], hi
                if y >= start_y:
                    yield y, self._resize(band, h)
                y += h

    def _resize(self, band: np.ndarray, h: int) -> np.ndarray:
        if band.shape[:2] == (h, self.width):
            return np.ascontiguousarray(band)
        return np.asarray(Image.fromarray(np.ascontiguousarray(band)).resize(
            (self.width, h), Image.Resampling.BILINEAR, reducing_gap=None))

    def to_level0(self) -> float:
        return 1.0 / self.rescale

    def describe(self) -> dict[str, Any]:
        return {"reader": self.kind, "path": str(self.path), "mpp": self.mpp, "target_mpp": self.target_mpp,
                "rescale": self.rescale, "level0_size": [self.w0, self.h0], "size": [self.width, self.height],
                "tiled": bool(self.page.is_tiled)}

    def close(self) -> None:
        if self.tif is not None:
            self.tif.close()


def open_slide(path: str | os.PathLike, mpp: float | None = None, level: int | None = None,
               rescale: float = 1.0):
    """The reader for ``path``: OpenSlide for vendor formats and the TIFFs it knows (tiled,
    pyramidal), tifffile for other TIFFs."""
    path = Path(path)
    if dicom_instance(path) is not None:
        return OpenSlideReader(path, mpp, level)
    if not path.is_file():
        raise SlideError(f"{path}: no such file")
    if path.suffix.lower() in SLIDE_SUFFIXES:
        return OpenSlideReader(path, mpp, level)
    try:
        fmt = _openslide().OpenSlide.detect_format(str(path))
    except SlideError:
        fmt = None
    if fmt is not None:
        return OpenSlideReader(path, mpp, level)
    if level not in (None, 0):
        raise SlideError(f"{path}: a one-level TIFF has only level 0; leave --level out")
    return TiffReader(path, rescale=rescale, mpp=mpp)


class SlideSource(FrameSource):
    """A reader's bands as Frames (``meta["y"]``: top row at model scale), read at the consumer's pace."""

    kind = "slide"

    def __init__(self, reader, band_h: int, start_y: int = 0):
        super().__init__(reader.path.name)
        self.reader, self.band_h, self.start_y = reader, int(band_h), int(start_y)

    def _frames(self) -> Iterator[Frame]:
        import time

        t0 = time.perf_counter()
        for i, (y, band) in enumerate(self.reader.bands(self.band_h, self.start_y)):
            ms = (time.perf_counter() - t0) * 1e3
            yield Frame(i, f"{self.name}@y{y}", band, None, self.reader.path, ms, meta={"y": y})
            t0 = time.perf_counter()

    def close(self) -> None:
        self.reader.close()


__all__ = ["MODEL_MPP", "OpenSlideReader", "SLIDE_SUFFIXES", "SlideError", "SlideSource", "TiffReader", "check_tiles",
           "dicom_instance", "is_slide_path", "open_slide"]
