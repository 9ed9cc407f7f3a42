"""Heat-map overlay of a scan on its frame, in numpy + PIL only (no matplotlib on the device).

Colour: yellow (p = 0) → red (p = 1), blended over the tissue tiles with an opacity that grows
with p (0.15 … 0.6), so low-probability tissue stays readable. Tiles at or above the threshold
get a dark-red outline around their union. Background tiles are left untouched.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from edgecnn.scan.image import as_rgb8
from edgecnn.scan.scanner import ScanResult

OUTLINE_RGB = (150, 0, 0)
ALPHA_MIN, ALPHA_MAX = 0.15, 0.6


def _fit(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a per-pixel float map to ``size`` (w, h) by nearest neighbour (heat of a rescaled scan)."""
    if (a.shape[1], a.shape[0]) == size:
        return a
    return np.asarray(Image.fromarray(a.astype(np.float32)).resize(size, Image.Resampling.NEAREST))


def outline(mask: np.ndarray, width: int = 2) -> np.ndarray:
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


def blend(frame: np.ndarray, heat: np.ndarray, threshold: float, line: int = 2) -> np.ndarray:
    """(H, W, 3) uint8: ``heat`` (NaN = leave the pixel alone) blended over ``frame``."""
    out = frame.astype(np.float32)
    valid = ~np.isnan(heat)
    p = np.where(valid, heat, 0.0)
    alpha = np.where(valid, ALPHA_MIN + (ALPHA_MAX - ALPHA_MIN) * np.clip(p, 0, 1), 0.0)[..., None]
    out = out * (1.0 - alpha) + colorize(p) * alpha
    edge = outline(valid & (p >= threshold), line)
    out[edge] = OUTLINE_RGB
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def overlay(image: Any, result: ScanResult, threshold: float | None = None, legend: bool = True) -> Image.Image:
    """The frame (path, PIL image or array as given to ``scan``) with the scan's heat map over it."""
    frame = as_rgb8(image)
    threshold = result.threshold if threshold is None else float(threshold)
    heat = _fit(result.heat, (frame.shape[1], frame.shape[0]))
    im = Image.fromarray(blend(frame, heat, threshold))
    if legend:
        draw_legend(im, threshold, result)
    return im


def draw_legend(im: Image.Image, threshold: float, result: ScanResult | None = None) -> None:
    """A small colour bar with the threshold and the positive share, top-left."""
    w = min(160, im.width - 8)
    if w < 40 or im.height < 40:
        return
    draw = ImageDraw.Draw(im)
    x0, y0 = 4, 4
    draw.rectangle([x0, y0, x0 + w + 8, y0 + 34], fill=(255, 255, 255))
    ramp = colorize(np.linspace(0, 1, w)).astype(np.uint8)[None].repeat(8, axis=0)
    im.paste(Image.fromarray(ramp), (x0 + 4, y0 + 4))
    tx = x0 + 4 + int(round(threshold * (w - 1)))
    draw.line([tx, y0 + 2, tx, y0 + 13], fill=OUTLINE_RGB, width=2)
    text = f"p(IDC) 0..1  thr {threshold:.2f}"
    if result is not None:
        text += f"  IDC {100 * result.positive_share:.0f}%"
    draw.text((x0 + 4, y0 + 16), text, fill=(0, 0, 0))


def label_overlay(image: np.ndarray, label_mask: np.ndarray) -> Image.Image:
    """Ground truth drawn like a scan: IDC patches red with an outline, non-IDC patches faint yellow."""
    heat = np.where(label_mask < 0, np.nan, label_mask.astype(np.float32))
    return Image.fromarray(blend(image, heat, threshold=0.5))
