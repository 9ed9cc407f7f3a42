"""Tile grid, tissue mask and per-pixel heat, all vectorised over the frame.

Grid. Tiles are ``size``×``size`` (the model's input size), their top-left corners at
``origin + k * stride``. Edge rule ``"drop"`` (default): a tile that would run past the right or
bottom edge is not scanned, so a 1920×1080 frame gives 38×21 = 798 tiles at stride 50 and the
last 20 columns / 30 rows of pixels stay unscored (NaN in the heat map). ``"pad"``: the frame is
extended with white (255) so the last partial row/column is scanned too, as the dataset's own
border patches are (``edgecnn.data.decode``: pixels top-left, white fill).

Tissue mask. A pixel is background when it is near-white (every channel >= ``white_level``,
default 220: bright glass, an empty field, white padding) or near-black (every channel <=
``black_level``, default 25: closed shutter, vignette). A tile is tissue when at least
``min_tissue`` (``Scanner(min_tissue=...)``, CLI ``--min-tissue``; default 0.01, i.e. 25 of
2,500 pixels) of its pixels are not background; only
tissue tiles are sent to the model. The low bar is deliberate: the dataset's border patches can
be a single row of pixels (50×1 padded white = 2% real pixels) and must still count. On the 12,057
real patches (white-padded to 50×50 as ``edgecnn.data.decode`` does) the rule keeps 12,056
(99.99%) and all 99 border patches; the one it skips (10282_idx5_x2051_y1701) is a black
scanner artefact (mean RGB ≈ 5, 1, 4). A 0.02 bar would also lose the 2×26 border patch
9381_idx5_x3751_y2651.

Heat. Every tile's probability is spread over its pixels and averaged where tiles overlap
(stride < size); pixels under no tissue tile are NaN. The work is done on a grid of
``gcd(size, stride)``-pixel cells, so stride 25 costs 4 array adds, not 4 passes over the pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import as_strided

EDGE_RULES = ("drop", "pad")
WHITE_LEVEL = 220
BLACK_LEVEL = 25
MIN_TISSUE = 0.01


@dataclass(frozen=True)
class Grid:
    """Where the tiles of one frame lie (in the pixels of the frame as scanned)."""

    size: int
    stride: int
    rows: int
    cols: int
    origin: tuple[int, int]      # (x, y) of the first tile's top-left corner
    height: int                  # frame size, before any edge padding
    width: int

    @property
    def xs(self) -> np.ndarray:
        return self.origin[0] + self.stride * np.arange(self.cols)

    @property
    def ys(self) -> np.ndarray:
        return self.origin[1] + self.stride * np.arange(self.rows)

    @property
    def span(self) -> tuple[int, int]:
        """(height, width) of the area the tiles cover, counted from the origin."""
        return (self.rows - 1) * self.stride + self.size, (self.cols - 1) * self.stride + self.size


def make_grid(height: int, width: int, size: int, stride: int, origin: tuple[int, int] = (0, 0),
              edge: str = "drop") -> Grid:
    if edge not in EDGE_RULES:
        raise ValueError(f"edge must be one of {EDGE_RULES}; got {edge!r}")
    if not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"stride must be a positive number of pixels; got {stride!r}")
    ox, oy = (int(v) for v in origin)
    if ox < 0 or oy < 0 or ox >= width or oy >= height:
        raise ValueError(f"origin {origin} lies outside the {width}×{height} frame")
    h, w = height - oy, width - ox
    if edge == "drop":
        if h < size or w < size:
            raise ValueError(
                f"the frame is {width}×{height} px (from origin {ox},{oy}) but a tile is {size}×{size}: "
                f"nothing to scan. Use a larger image, --rescale to enlarge it, or edge='pad'")
        rows, cols = (h - size) // stride + 1, (w - size) // stride + 1
    else:
        rows = math.ceil(max(h - size, 0) / stride) + 1
        cols = math.ceil(max(w - size, 0) / stride) + 1
    return Grid(int(size), int(stride), rows, cols, (ox, oy), height, width)


def covered_frame(frame: np.ndarray, grid: Grid) -> np.ndarray:
    """The frame cut at the origin, white-padded where the grid runs past it (edge='pad')."""
    ox, oy = grid.origin
    view = frame[oy:, ox:]
    sh, sw = grid.span
    if sh <= view.shape[0] and sw <= view.shape[1]:
        return view
    out = np.full((max(sh, view.shape[0]), max(sw, view.shape[1]), 3), 255, dtype=np.uint8)
    out[:view.shape[0], :view.shape[1]] = view
    return out


def tile_view(frame: np.ndarray, grid: Grid) -> np.ndarray:
    """(rows, cols, S, S, 3) read-only view of all tiles: no pixel is copied."""
    s0, s1, s2 = frame.strides
    return as_strided(
        frame,
        shape=(grid.rows, grid.cols, grid.size, grid.size, 3),
        strides=(s0 * grid.stride, s1 * grid.stride, s0, s1, s2),
        writeable=False,
    )


def background_pixels(frame: np.ndarray, white_level: int = WHITE_LEVEL, black_level: int = BLACK_LEVEL) -> np.ndarray:
    """(H, W) bool: near-white or near-black pixels (see the module doc)."""
    # Channel planes made contiguous first: min/max over strided channel views is 4x slower.
    r, g, b = np.moveaxis(frame, 2, 0).copy()
    lo = np.minimum(np.minimum(r, g), b)
    hi = np.maximum(np.maximum(r, g), b)
    return (lo >= white_level) | (hi <= black_level)


def _cells(grid: Grid) -> tuple[int, int, int, int, int]:
    """Cell size g = gcd(size, stride), tile extent k and step m in cells, cell-grid shape."""
    g = math.gcd(grid.size, grid.stride)
    sh, sw = grid.span
    return g, grid.size // g, grid.stride // g, sh // g, sw // g


def tissue_fraction(frame: np.ndarray, grid: Grid, white_level: int = WHITE_LEVEL,
                    black_level: int = BLACK_LEVEL) -> np.ndarray:
    """(rows, cols) float32: share of each tile's pixels that are not background.

    ``frame`` is the covered frame (``covered_frame``), so the grid starts at its (0, 0).
    """
    g, k, m, hc, wc = _cells(grid)
    sh, sw = grid.span
    tissue = ~background_pixels(frame[:sh, :sw], white_level, black_level)
    cells = tissue.reshape(hc, g, wc, g).sum(axis=(1, 3), dtype=np.int32)
    if k == m == 1:
        counts = cells
    else:
        # Integral image over the cells: each tile sum is four lookups.
        integral = np.zeros((hc + 1, wc + 1), dtype=np.int64)
        np.cumsum(np.cumsum(cells, axis=0), axis=1, out=integral[1:, 1:])
        r0 = np.arange(grid.rows) * m
        c0 = np.arange(grid.cols) * m
        counts = (integral[np.ix_(r0 + k, c0 + k)] - integral[np.ix_(r0, c0 + k)]
                  - integral[np.ix_(r0 + k, c0)] + integral[np.ix_(r0, c0)])
    return (counts / float(grid.size * grid.size)).astype(np.float32)


def heat_cells(prob_map: np.ndarray, grid: Grid) -> tuple[np.ndarray, int]:
    """The heat map at cell resolution: (hc, wc) float32 mean probability of the tissue tiles over
    each ``g``×``g`` cell (g = gcd(size, stride)), NaN where no tissue tile lies; and ``g``.
    Cell (i, j) covers frame pixels origin + (i*g, j*g) onwards."""
    g, k, m, hc, wc = _cells(grid)
    valid = ~np.isnan(prob_map)
    p = np.where(valid, prob_map, 0.0).astype(np.float32)
    total = np.zeros((hc, wc), dtype=np.float32)
    count = np.zeros((hc, wc), dtype=np.float32)
    rows, cols = prob_map.shape
    for dy in range(k):
        for dx in range(k):
            # Cells at offset (dy, dx) inside every tile; one strided add per offset.
            sl = (slice(dy, dy + rows * m, m), slice(dx, dx + cols * m, m))
            total[sl] += p
            count[sl] += valid
    with np.errstate(invalid="ignore", divide="ignore"):
        cells = np.where(count > 0, total / count, np.float32(np.nan)).astype(np.float32)
    return cells, g


def heat_map(prob_map: np.ndarray, grid: Grid, cells: tuple[np.ndarray, int] | None = None) -> np.ndarray:
    """(H, W) float32 per-pixel probability of the frame: mean over the tissue tiles covering it, NaN elsewhere."""
    cells, g = heat_cells(prob_map, grid) if cells is None else cells
    hc, wc = cells.shape
    ox, oy = grid.origin
    heat = np.full((grid.height, grid.width), np.nan, dtype=np.float32)
    h = min(hc * g, grid.height - oy)
    w = min(wc * g, grid.width - ox)
    up = np.repeat(np.repeat(cells, g, axis=0), g, axis=1) if g > 1 else cells
    heat[oy:oy + h, ox:ox + w] = up[:h, :w]
    return heat
