"""Heat-map overlay of a scan on its frame, in numpy + PIL only (no matplotlib on the device).

Colour: yellow (p = 0) → red (p = 1), blended over the tissue tiles with an opacity that grows
with p (0.15 … 0.6), so low-probability tissue stays readable. Tiles at or above the threshold
get a dark-red outline (2 px) around their union. Background tiles are left untouched.

Speed. The heat map is constant over cells of g×g pixels (g = gcd(tile, stride); 50 at the
default stride), so colour, opacity and the outline are decided per cell, not per pixel: only the
tissue cells' pixels are touched, by one float32 multiply-add (the per-pixel rule's own
arithmetic, so the bytes are the same), and the outline of a cell depends only on which of its 8 neighbours
are positive, so it is a stamp (one of ≤ 256, computed once by the per-pixel rule) pasted on
the cells at the border of the positive region. Background cells are never touched. A 1080p
frame costs a few ms instead of 100–500. A scan made with ``rescale`` ≠ 1 (heat pixels are not
frame pixels) or with cells under 3 px takes the per-pixel path (``blend``), the reference.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edgecnn.scan.image import as_rgb8
from edgecnn.scan.scanner import ScanResult

OUTLINE_RGB = (150, 0, 0)
ALPHA_MIN, ALPHA_MAX = 0.15, 0.6
LINE = 2


def _fit(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a per-pixel float map to ``size`` (w, h) by nearest neighbour (heat of a rescaled scan)."""
    if (a.shape[1], a.shape[0]) == size:
        return a
    return np.asarray(Image.fromarray(a.astype(np.float32)).resize(size, Image.Resampling.NEAREST))


def outline(mask: np.ndarray, width: int = LINE) -> np.ndarray:
    """Pixels of ``mask`` within ``width`` px of its border (4-neighbour erosion by array shifts)."""
    inner = mask.copy()
    for _ in range(width):
        shrunk = inner.copy()
        shrunk[1:] &= inner[:-1]
        shrunk[:-1] &= inner[1:]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        shrunk[0, :] = shrunk[-1, :] = False
        shrunk[:, 0] = shrunk[:, -1] = False
        inner = shrunk
    return mask & ~inner


def colorize(p: np.ndarray) -> np.ndarray:
    """(…) probabilities → (…, 3) float RGB on the yellow→red ramp."""
    p = np.clip(p, 0.0, 1.0)
    return np.stack([np.full_like(p, 255.0), 255.0 * (1.0 - p), np.zeros_like(p)], axis=-1)


def blend(frame: np.ndarray, heat: np.ndarray, threshold: float, line: int = LINE) -> np.ndarray:
    """(H, W, 3) uint8: ``heat`` (NaN = leave the pixel alone) blended over ``frame``, pixel by pixel."""
    out = frame.astype(np.float32)
    valid = ~np.isnan(heat)
    p = np.where(valid, heat, 0.0)
    alpha = np.where(valid, ALPHA_MIN + (ALPHA_MAX - ALPHA_MIN) * np.clip(p, 0, 1), 0.0)[..., None]
    out = out * (1.0 - alpha) + colorize(p) * alpha
    edge = outline(valid & (p >= threshold), line)
    out[edge] = OUTLINE_RGB
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


# 8-neighbour order of a cell's outline code: bit i set when neighbour i is positive.
_NEIGHBOURS = ((-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))
_ALL_POSITIVE = 255


@lru_cache(maxsize=1024)
def _stamp(code: int, g: int, line: int) -> np.ndarray:
    """(g, g) bool: the outline pixels of a positive cell whose positive neighbours are ``code``,
    by the per-pixel rule on a 3×3-cell canvas (the centre cannot see the canvas edge when g > line)."""
    canvas = np.zeros((3 * g, 3 * g), bool)
    canvas[g:2 * g, g:2 * g] = True
    for bit, (dy, dx) in enumerate(_NEIGHBOURS):
        if code >> bit & 1:
            canvas[(1 + dy) * g:(2 + dy) * g, (1 + dx) * g:(2 + dx) * g] = True
    return outline(canvas, line)[g:2 * g, g:2 * g]


def outline_codes(positive: np.ndarray) -> np.ndarray:
    """(rows, cols) uint8: for each cell, which of its 8 neighbours are positive (outside = not)."""
    padded = np.pad(positive, 1)
    rows, cols = positive.shape
    code = np.zeros((rows, cols), np.uint8)
    for bit, (dy, dx) in enumerate(_NEIGHBOURS):
        code |= padded[1 + dy:1 + dy + rows, 1 + dx:1 + dx + cols].astype(np.uint8) << bit
    return code


def blend_cells(frame: np.ndarray, cells: np.ndarray, g: int, origin: tuple[int, int], threshold: float,
                line: int = LINE) -> np.ndarray:
    """``blend`` for a heat map given per g×g cell (``ScanResult.heat_cells``): the same picture
    pixel for pixel, at the cost of the tissue cells only (see the module doc)."""
    if g <= line:
        raise ValueError(f"cells of {g} px are too small for a {line}-px outline; use blend()")
    h, w = frame.shape[:2]
    ox, oy = origin
    hc, wc = cells.shape
    canvas_h, canvas_w = max(h, oy + hc * g), max(w, ox + wc * g)
    if (canvas_h, canvas_w) == (h, w):
        out = frame.copy()
    else:   # edge='pad': the grid runs past the frame; work on a white canvas, crop at the end
        out = np.full((canvas_h, canvas_w, 3), 255, np.uint8)
        out[:h, :w] = frame
    view = out[oy:oy + hc * g, ox:ox + wc * g].reshape(hc, g, wc, g * 3)
    valid = ~np.isnan(cells)
    rr, cc = np.nonzero(valid)
    if rr.size:
        _blend_tiles(view, rr, cc, cells[rr, cc], cells, valid, g, threshold, line)
    return out[:h, :w]


def _blend_tiles(view, rr, cc, p, cells, valid, g, threshold, line) -> None:
    tiles = view[rr, :, cc, :]                              # (k, g, g*3) copy of the tissue cells only
    p = np.clip(p, 0.0, 1.0).astype(np.float32)
    alpha = ALPHA_MIN + (ALPHA_MAX - ALPHA_MIN) * p
    # v (1 - a) + c a + 0.5 in float32, the per-pixel rule's own operations: the same bytes out.
    acc = tiles.astype(np.float32)
    acc *= (1.0 - alpha)[:, None, None]
    acc += np.tile(colorize(p) * alpha[:, None], g)[:, None, :]
    acc += np.float32(0.5)
    tiles = acc.astype(np.uint8)          # a convex combination of 0–255 values: no clip needed
    with np.errstate(invalid="ignore"):
        positive = valid & (cells >= threshold)
    codes = outline_codes(positive)[rr, cc]
    edge = positive[rr, cc] & (codes != _ALL_POSITIVE)
    if edge.any():
        stamps = np.stack([_stamp(int(c), g, line) for c in codes[edge]])   # (e, g, g)
        sub = tiles[edge].reshape(-1, g, g, 3)
        sub[stamps] = OUTLINE_RGB
        tiles[edge] = sub.reshape(-1, g, g * 3)
    view[rr, :, cc, :] = tiles


def overlay_array(image: Any, result: ScanResult, threshold: float | None = None, legend: bool = True) -> np.ndarray:
    """(H, W, 3) uint8 RGB: the frame with the scan's heat map (and legend) over it."""
    frame = as_rgb8(image)
    threshold = result.threshold if threshold is None else float(threshold)
    cells, g = result.heat_cells
    same_pixels = (result.grid.width, result.grid.height) == (frame.shape[1], frame.shape[0])
    if same_pixels and g > LINE:
        out = blend_cells(frame, cells, g, result.grid.origin, threshold)
    else:
        out = blend(frame, _fit(result.heat, (frame.shape[1], frame.shape[0])), threshold)
    if legend:
        out = np.ascontiguousarray(out)
        paste_legend(out, threshold, result.idc_share)
    return out


def overlay(image: Any, result: ScanResult, threshold: float | None = None, legend: bool = True) -> Image.Image:
    """The frame (path, PIL image or array as given to ``scan``) with the scan's heat map over it."""
    return Image.fromarray(overlay_array(image, result, threshold, legend))


def legend_scale(width: int, height: int) -> float:
    """Legend size relative to its 1× design (160×34 px at 640×480): grows with the frame, never under 1."""
    return max(1.0, min(width / 640, height / 480))


@lru_cache(maxsize=16)
def _font(size: int):
    try:
        return ImageFont.load_default(size=size)     # Pillow's scalable font (needs FreeType)
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


@lru_cache(maxsize=256)
def _legend_pixels(threshold: float, share_pct: int | None, scale: float) -> np.ndarray:
    """Cached: a video's frames mostly repeat the same legend (threshold fixed, share in whole %)."""
    a = np.asarray(legend_image(threshold, None if share_pct is None else share_pct / 100, scale))
    a.setflags(write=False)
    return a


def legend_image(threshold: float, idc_share: float | None, scale: float = 1.0) -> Image.Image:
    """The legend box: the yellow→red ramp, a tick at the threshold and the IDC share, at ``scale``."""
    s = max(1.0, scale)
    w, bar, pad = int(160 * s), max(8, int(8 * s)), max(4, int(4 * s))
    font = _font(max(10, int(11 * s)))
    text = f"p(IDC) 0..1  thr {threshold:.2f}"
    if idc_share is not None:
        text += f"  IDC {100 * idc_share:.0f}%"
    tw = int(ImageDraw.Draw(Image.new("RGB", (1, 1))).textlength(text, font=font))
    width = max(w, tw) + 2 * pad
    text_h = int(font.size * 1.3) if hasattr(font, "size") else 12
    im = Image.new("RGB", (width, pad + bar + pad + text_h + pad), (255, 255, 255))
    ramp = colorize(np.linspace(0, 1, w)).astype(np.uint8)[None].repeat(bar, axis=0)
    im.paste(Image.fromarray(ramp), (pad, pad))
    draw = ImageDraw.Draw(im)
    tx = pad + int(round(threshold * (w - 1)))
    draw.line([tx, max(0, pad - 2), tx, pad + bar + 2], fill=OUTLINE_RGB, width=max(2, int(2 * s)))
    draw.text((pad, pad + bar + pad), text, fill=(0, 0, 0), font=font)
    return im


def paste_legend(out: np.ndarray, threshold: float, idc_share: float | None) -> None:
    """Draw the legend into ``out`` (H, W, 3) top-left, scaled with the frame; skipped below 60×40 px."""
    h, w = out.shape[:2]
    if w < 60 or h < 40:
        return
    share = None if idc_share is None else int(round(100 * idc_share))
    im = _legend_pixels(round(float(threshold), 2), share, legend_scale(w, h))
    m = max(4, int(4 * legend_scale(w, h)))
    ih, iw = min(im.shape[0], h - m), min(im.shape[1], w - m)
    out[m:m + ih, m:m + iw] = im[:ih, :iw]


def draw_legend(im: Image.Image, threshold: float, result: ScanResult | None = None) -> None:
    """The legend drawn onto a PIL image in place (see ``paste_legend``)."""
    a = np.array(im.convert("RGB"))
    paste_legend(a, threshold, result.idc_share if result is not None else None)
    im.paste(Image.fromarray(a))


def label_overlay(image: np.ndarray, label_mask: np.ndarray) -> Image.Image:
    """Ground truth drawn like a scan: IDC patches red with an outline, non-IDC patches faint yellow."""
    heat = np.where(label_mask < 0, np.nan, label_mask.astype(np.float32))
    return Image.fromarray(blend(image, heat, threshold=0.5))
