"""Turn whatever a camera or a user hands us into the (H, W, 3) uint8 RGB frame the scanner tiles.

Rules (the same as the patch decoder's, ``edgecnn.data.decode.to_rgb``, so a frame and a
dataset patch go through one conversion):

- 16-bit data (PNG/TIFF ``I;16``, uint16 arrays) is scaled by its full range, 65535 → 255
  (a frame whose values never exceed 255 is taken as 8-bit data in a 16-bit container).
  Not stretched by the frame's own max: that would make exposure changes look like stain changes.
- Grayscale → RGB by repeating the channel; RGBA/LA/palette-with-transparency → composited over
  white, because "no tissue" in brightfield microscopy is bright glass (the tissue mask then
  skips it).
- float arrays are taken as [0, 1] and scaled to 0–255.

Size cap. Pillow refuses images above ~179 MP (``DecompressionBombError``) as a guard against
hostile files. A stitched microscope field is legitimately that big, so while ``read_image`` opens
a file Pillow's guard is raised to our own cap, checked from the header before any pixel is
decoded, and set back after (the rest of the process keeps Pillow's guard): ``MAX_PIXELS`` (default 250 MP,
~750 MB as RGB; CLI ``--max-pixels``, ``set_max_pixels``). Above it: an ImageError naming the file
and the flag. Bigger images belong in a tiled TIFF, which is streamed (``edgecnn.scan.slide``).
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgecnn.data.decode import to_rgb

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")
DEFAULT_MAX_PIXELS = 250_000_000
MAX_PIXELS = DEFAULT_MAX_PIXELS
_PIL_GUARD = threading.Lock()   # Pillow's guard is one module global: change it one call at a time


@contextlib.contextmanager
def _pillow_cap(cap: int):
    """Pillow's bomb guard at ``cap`` for this block only, so our clearer check speaks first."""
    with _PIL_GUARD:
        before = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max(cap, before or 0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                yield
        finally:
            Image.MAX_IMAGE_PIXELS = before


def set_max_pixels(n: int) -> None:
    """The largest image (width × height) ``read_image`` decodes whole; see the module doc."""
    global MAX_PIXELS
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"max_pixels must be a positive number of pixels; got {n!r}")
    MAX_PIXELS = n


def check_pixels(path: Path, width: int, height: int, max_pixels: int | None = None) -> None:
    cap = MAX_PIXELS if max_pixels is None else max_pixels
    if width * height > cap:
        raise ImageError(
            f"{path}: {width}×{height} = {width * height:,} pixels, above the cap of {cap:,} (--max-pixels). "
            f"Pass --max-pixels {width * height} to decode it whole (needs ~{3 * width * height / 1e9:.1f} GB "
            "of memory), or save it as a tiled TIFF, which is streamed tile by tile")


class ImageError(ValueError):
    """A frame that cannot be scanned; the message names the file (or array) and the fix."""


def read_image(path: str | os.PathLike, max_pixels: int | None = None) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB, or raise ImageError naming the file
    (also when it is larger than ``max_pixels``, default ``MAX_PIXELS``)."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such image file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes); was it still being written? Copy it again")
    try:
        with _pillow_cap(MAX_PIXELS if max_pixels is None else max_pixels), Image.open(path) as im:
            check_pixels(path, *im.size, max_pixels)
            im.load()
            return to_rgb(im)
    except ImageError:
        raise
    except UnidentifiedImageError as e:
        raise ImageError(f"{path}: not an image PIL can read (PNG, JPEG, TIFF, BMP, WebP); convert it first") from e
    except (OSError, SyntaxError, ValueError) as e:
        # PIL reports a truncated file as OSError("image file is truncated ...") on load().
        raise ImageError(f"{path}: truncated or corrupt image ({e}); copy or save the file again") from e


def as_rgb8(image: Any, name: str = "image") -> np.ndarray:
    """A path, PIL image or array → (H, W, 3) uint8 RGB (a view when already in that form)."""
    if isinstance(image, (str, os.PathLike)):
        return read_image(image)
    if isinstance(image, Image.Image):
        return to_rgb(image)
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4):
        raise ImageError(f"{name}: expected an H×W, H×W×3 (RGB) or H×W×4 (RGBA) image; got shape {a.shape}")
    a = _to_uint8(a, name)
    c = a.shape[-1]
    if c in (2, 4):
        # Alpha over white, in uint16 to avoid a float copy of the whole frame.
        rgb, alpha = a[..., :-1].astype(np.uint16), a[..., -1:].astype(np.uint16)
        a = ((rgb * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)
        c -= 1
    if c == 1:
        a = np.repeat(a, 3, axis=2)
    return a


def _to_uint8(a: np.ndarray, name: str) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype == np.bool_:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.floating):
        if a.size and (np.nanmin(a) < 0 or np.nanmax(a) > 1):
            raise ImageError(f"{name}: float images must hold values in [0, 1]; got range "
                             f"[{np.nanmin(a):.3g}, {np.nanmax(a):.3g}]. Pass uint8 pixels instead")
        return np.clip(np.nan_to_num(a) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if np.issubdtype(a.dtype, np.integer):
        lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
        if lo < 0 or hi > 65535:
            raise ImageError(f"{name}: integer pixels must lie in 0–65535; got [{lo}, {hi}]")
        if hi <= 255:
            return a.astype(np.uint8)
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    raise ImageError(f"{name}: unsupported pixel type {a.dtype}; pass uint8 or uint16 pixels")


def rescale_frame(frame: np.ndarray, factor: float) -> np.ndarray:
    """Resize by ``factor`` (bilinear with antialias via PIL; >1 enlarges)."""
    if factor == 1.0:
        return frame
    h, w = frame.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR, reducing_gap=None))
