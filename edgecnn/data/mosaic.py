"""Rebuild a patient's tissue region from its patches: a real field of view with known labels.

In the Kaggle layout the name ``<patient>_idx5_x<X>_y<Y>_class<k>.png`` gives the pixel offset of
the patch's top-left corner in the downsampled slide (X, Y ≡ 1 mod 50 in the real data: the grid
starts at pixel 1). Where a patient's full grid is present (in the shared subset: 8863, 10253,
10254, 14082) pasting every patch at (X − x0, Y − y0) reassembles the region, with
(x0, y0) = the smallest X and Y, so the patch grid starts at pixel (0, 0) of the mosaic and a
scan at stride 50 lines up with it.

The canvas spans whole patch cells (width = max X − x0 + 50): a border patch (50×42, 50×1, …)
is pasted at its real size at its corner and the rest of its cell stays white, as do cells with
no patch (glass, or tissue the dataset left out). ``label_mask`` is −1 there and the patch's
class elsewhere. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from edgecnn import PATCH_SIZE
from edgecnn.data.decode import PAD_VALUE, Decoded, decode_patch
from edgecnn.data.layout import DataError, layout_help, parse_patch_name
from edgecnn.fsutil import atomic_path

NO_PATCH = -1


@dataclass
class Mosaic:
    image: np.ndarray                       # (H, W, 3) uint8, white where no patch
    label_mask: np.ndarray                  # (H, W) int8: -1 no patch, 0 no IDC, 1 IDC
    origin: tuple[int, int]                 # (x0, y0): slide pixel of the mosaic's (0, 0)
    patch_size: int
    tiles: list[tuple[int, int, int, str]]  # (x, y, label, file) in slide pixels, as named
    patient: str = ""
    skipped: list[dict] = field(default_factory=list)   # {"file", "reason"}: unreadable patches

    @property
    def grid_aligned(self) -> bool:
        """Every patch sits on the patch_size grid from the origin (a stride-50 scan lines up)."""
        x0, y0 = self.origin
        s = self.patch_size
        return all((x - x0) % s == 0 and (y - y0) % s == 0 for x, y, _, _ in self.tiles)

    def cell(self, x: int, y: int) -> tuple[int, int]:
        """(row, col) of the grid cell holding the patch whose slide corner is (x, y)."""
        return (y - self.origin[1]) // self.patch_size, (x - self.origin[0]) // self.patch_size

    def summary(self) -> dict:
        labels = [t[2] for t in self.tiles]
        return {
            "patient": self.patient, "width": int(self.image.shape[1]), "height": int(self.image.shape[0]),
            "origin": list(self.origin), "patch_size": self.patch_size, "patches": len(self.tiles),
            "idc_patches": int(sum(labels)), "grid_aligned": self.grid_aligned, "skipped": self.skipped,
        }


def build_mosaic(patient_dir: str | os.PathLike, patch_size: int = PATCH_SIZE) -> Mosaic:
    """Paste every patch under ``patient_dir`` (``<patient>/<0|1>/*.png``) at its slide offset."""
    patient_dir = Path(patient_dir)
    if not patient_dir.is_dir():
        raise DataError(f"{patient_dir}: not a folder. Give one patient's folder.\n" + layout_help(patient_dir.parent))
    entries = []
    for label_dir in ("0", "1"):
        for f in sorted((patient_dir / label_dir).glob("*.png")):
            parsed = parse_patch_name(f.name)
            if parsed is not None and str(parsed[3]) == label_dir:
                entries.append((parsed[1], parsed[2], parsed[3], f))
    if not entries:
        raise DataError(f"{patient_dir}: no patch files <patient>_idx5_x<X>_y<Y>_class<0|1>.png in 0/ or 1/; "
                        "point at one patient's folder.\n" + layout_help(patient_dir.parent))
    x0 = min(e[0] for e in entries)
    y0 = min(e[1] for e in entries)
    width = max(e[0] for e in entries) - x0 + patch_size
    height = max(e[1] for e in entries) - y0 + patch_size
    image = np.full((height, width, 3), PAD_VALUE, dtype=np.uint8)
    labels = np.full((height, width), NO_PATCH, dtype=np.int8)
    tiles, skipped = [], []
    for x, y, label, f in entries:
        # decode_patch: one reading of every patch (size from the header before decoding, bombs refused).
        try:
            d = decode_patch(f.read_bytes(), patch_size, border="pad")
        except OSError as e:
            d = Decoded(None, reason=f"unreadable file ({e.strerror or e})")
        if d.image is None:
            skipped.append({"file": str(f), "reason": d.reason})
            continue
        h, w = d.height, d.width
        rgb = d.image[:h, :w]
        c, r = x - x0, y - y0
        image[r:r + h, c:c + w] = rgb
        labels[r:r + h, c:c + w] = label
        tiles.append((x, y, label, str(f)))
    return Mosaic(image, labels, (x0, y0), patch_size, tiles, patient_dir.name, skipped)


def save_png(path: str | os.PathLike, array: np.ndarray | Image.Image) -> Path:
    """Write a PNG atomically (a killed process never leaves half an image)."""
    im = array if isinstance(array, Image.Image) else Image.fromarray(array)
    with atomic_path(path, suffix=".png") as tmp:
        im.save(tmp, format="PNG")
    return Path(path)


def label_png(label_mask: np.ndarray) -> np.ndarray:
    """Label mask as an 8-bit grey image: 0 = no patch, 128 = no IDC, 255 = IDC."""
    out = np.zeros(label_mask.shape, dtype=np.uint8)
    out[label_mask == 0] = 128
    out[label_mask == 1] = 255
    return out
