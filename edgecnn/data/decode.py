"""Decode one patch PNG to a uint8 RGB array of the model's patch size.

Border rule. The Kaggle patches tile each whole-slide image from its top-left corner, so the
last row/column of a slide yields patches cut short (50x42, 50x1, ...). ``border="pad"`` keeps
them, placing the pixels at the top-left and filling the rest with 255 (white): the missing
part lies off the scanned region, and in brightfield histology "no tissue" is bright glass,
which is what a model sees everywhere else as background. Black (0) would be an artefact that
never occurs in a full patch and could become a shortcut feature. ``border="drop"`` discards
them instead (as many published pipelines do).
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

BORDER_RULES = ("pad", "drop")
PAD_VALUE = 255


@dataclass
class Decoded:
    image: np.ndarray | None      # (S, S, 3) uint8, or None when skipped/dropped
    width: int = 0
    height: int = 0
    padded: bool = False
    dropped: bool = False
    reason: str | None = None     # why it was skipped (unreadable, empty, too large)


def to_rgb(im: Image.Image) -> np.ndarray:
    """Any PIL mode -> (H, W, 3) uint8 RGB. Transparency is composited over white (see PAD_VALUE)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(im, dtype=np.float64)
        hi = 65535.0 if a.max() > 255 else 255.0
        g = np.clip(a / hi * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=2)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (PAD_VALUE, PAD_VALUE, PAD_VALUE, 255))
        im = Image.alpha_composite(bg, rgba)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def decode_patch(data: bytes, patch_size: int = 50, border: str = "pad") -> Decoded:
    if border not in BORDER_RULES:
        raise ValueError(f"border must be one of {BORDER_RULES}, not {border!r}")
    if len(data) == 0:
        return Decoded(None, reason="empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            w, h = im.size
            if w > patch_size or h > patch_size:   # from the header: a decompression bomb is never decoded
                return Decoded(None, w, h, reason=f"{w}x{h} is larger than the {patch_size}x{patch_size} patch size")
            im.load()
            rgb = to_rgb(im)
    except UnidentifiedImageError:
        return Decoded(None, reason="not an image (unrecognised format)")
    except Image.DecompressionBombError as e:   # Pillow's guard, from the header: nothing was decoded
        return Decoded(None, reason=f"larger than the {patch_size}x{patch_size} patch size ({e})")
    except (OSError, SyntaxError, ValueError) as e:
        # PIL raises OSError for truncated data and SyntaxError/ValueError for corrupt chunks.
        return Decoded(None, reason=f"unreadable image ({type(e).__name__}: {e})")
    h, w = rgb.shape[:2]
    if h > patch_size or w > patch_size:
        return Decoded(None, w, h, reason=f"{w}x{h} is larger than the {patch_size}x{patch_size} patch size")
    if h == patch_size and w == patch_size:
        return Decoded(np.ascontiguousarray(rgb), w, h)
    if border == "drop":
        return Decoded(None, w, h, dropped=True)
    out = np.full((patch_size, patch_size, 3), PAD_VALUE, dtype=np.uint8)
    out[:h, :w] = rgb
    return Decoded(out, w, h, padded=True)
