"""Write an image as a tiled pyramidal TIFF that OpenSlide reads (and ``edgecnn scan`` streams).

A stitched field bigger than ``--max-pixels`` scans with bounded memory once it is a tiled TIFF:
``write_pyramid(pixels, "field.tif", mpp=4.0)``. Level 0 is the pixels as given; each further
level halves the previous one (2×2 box average) until the image fits in one tile, written as
reduced-resolution pages (NewSubfileType 1) so OpenSlide's generic-tiff reader sees a pyramid.
``mpp`` goes into the TIFF resolution tags (pixels per centimetre), which OpenSlide reports as
``openslide.mpp-x``; without it the file has no scale and a scan asks for ``--mpp``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.fsutil import atomic_path

TILE = 256


def _half(a: np.ndarray) -> np.ndarray:
    h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
    a = a[:h, :w].astype(np.uint16)
    return ((a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2] + 2) // 4).astype(np.uint8)


def write_pyramid(pixels: Any, path: str | os.PathLike, mpp: float | None = None, levels: int | None = None,
                  compression: str = "zlib", tile: int = TILE) -> Path:
    """Write ``pixels`` ((H, W, 3) uint8) as a tiled pyramidal TIFF at ``path`` (atomically);
    ``levels``: how many pyramid levels at most (default: down to one tile)."""
    import tifffile

    a = np.asarray(pixels)
    if a.ndim != 3 or a.shape[2] != 3 or a.dtype != np.uint8:
        raise ValueError(f"write_pyramid needs (H, W, 3) uint8 RGB pixels; got {a.shape} {a.dtype}")
    opts: dict[str, Any] = dict(tile=(tile, tile), photometric="rgb", compression=compression, metadata=None)
    if mpp:
        opts |= dict(resolutionunit="CENTIMETER")
    path = Path(path)
    with atomic_path(path, suffix=path.suffix or ".tif") as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=a.nbytes > 2**31) as tw:
            level, ds = a, 1
            while True:
                res = {"resolution": (1e4 / (mpp * ds), 1e4 / (mpp * ds))} if mpp else {}
                tw.write(level, subfiletype=0 if ds == 1 else 1, **res, **opts)
                if max(level.shape[:2]) <= tile or (levels is not None and ds * 2 >= 2 ** levels):
                    break
                level, ds = _half(level), ds * 2
    return path


__all__ = ["write_pyramid"]
