"""A synthetic stand-in for the IDC data, in the exact Kaggle layout, for offline demos and CI.

It is NOT histology: pink "stroma" noise with purple "nuclei" blobs. IDC patches are denser,
larger and darker-purple blob fields, so a model can learn the difference quickly. Each
patient's patches tile a small grid with a blob-shaped IDC region (so a mosaic shows a focus),
and the bottom row of the first patients is cut short like real slide-border patches.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from edgecnn.data.layout import DataError, KAGGLE_URL

README = """SYNTHETIC DATA - NOT REAL HISTOLOGY
=====================================
Made by `edgecnn data synth` (edgecnn.data.synth.make_synthetic, seed={seed}).

{patients} fake patients x {per} patches, 50x50 RGB PNG, in the Kaggle "Breast Histopathology
Images" layout:  <patient>/<0|1>/<patient>_idx5_x<X>_y<Y>_class<0|1>.png
Class 1 ("IDC") patches show denser, darker purple blobs than class 0. {n_border} border
patches are shorter than 50 px, like the real archive's slide-edge patches.

Use it to try the pipeline offline. Numbers measured on it mean nothing about cancer.
The real data: {url}
"""

SYNTH_PATIENT_BASE = 90000
_STROMA = np.array([236, 178, 208], np.float32)   # eosin pink
_NUCLEUS = np.array([120, 70, 150], np.float32)   # haematoxylin purple
_NUCLEUS_IDC = np.array([78, 38, 118], np.float32)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    coarse = rng.random((cells, cells)).astype(np.float32)
    im = Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC)
    return np.asarray(im, np.float32) / 255.0


def synth_patch(rng: np.random.Generator, idc: bool, size: int = 50) -> np.ndarray:
    """One 50x50 uint8 RGB patch; ``idc`` patches are crowded with big dark nuclei."""
    tex = 0.6 * _smooth_noise(rng, size, 6) + 0.4 * _smooth_noise(rng, size, 13)
    img = _STROMA[None, None, :] * (0.88 + 0.2 * tex[..., None])
    # A little white "lumen/fat" in benign tissue, none in the solid IDC sheets.
    if not idc:
        white = _smooth_noise(rng, size, 4) > 0.72
        img[white] = 0.5 * img[white] + 0.5 * 245
    n, (rmin, rmax), color = ((rng.integers(28, 40), (3.0, 5.0), _NUCLEUS_IDC) if idc
                              else (rng.integers(4, 10), (1.8, 3.0), _NUCLEUS))
    for _ in range(int(n)):
        cy, cx = rng.uniform(0, size, 2)
        ry, rx = rng.uniform(rmin, rmax, 2)
        theta = rng.uniform(0, math.pi)
        shade = color * rng.uniform(0.85, 1.1)
        # Only the blob's bounding box is touched (the mask is 0 beyond 1.5 radii).
        r = int(math.ceil(1.6 * max(rx, ry)))
        y0, y1 = max(0, int(cy) - r), min(size, int(cy) + r + 1)
        x0, x1 = max(0, int(cx) - r), min(size, int(cx) + r + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        c, s = math.cos(theta), math.sin(theta)
        u = ((xx - cx) * c + (yy - cy) * s) / rx
        v = (-(xx - cx) * s + (yy - cy) * c) / ry
        mask = np.clip(1.5 - (u * u + v * v), 0.0, 1.0)[..., None]
        win = img[y0:y1, x0:x1]
        img[y0:y1, x0:x1] = win * (1 - 0.9 * mask) + shade * 0.9 * mask
    img += rng.normal(0, 4.0, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def make_synthetic(out: str | os.PathLike, patients: int = 12, patches_per_patient: int = 40, seed: int = 0,
                   border_patches: bool = True) -> Path:
    """Write a synthetic Kaggle-layout folder at ``out`` (which must not exist or be empty)."""
    out = Path(out).expanduser()
    if patients < 1 or patches_per_patient < 1:
        raise ValueError("patients and patches_per_patient must be >= 1")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} already exists and is not empty; pick a new folder for the synthetic data")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    rng = np.random.default_rng(seed)
    n_border = 0
    try:
        cols = max(1, math.ceil(math.sqrt(patches_per_patient)))
        rows = math.ceil(patches_per_patient / cols)
        for p in range(patients):
            pid = str(SYNTH_PATIENT_BASE + p)
            # About a quarter IDC overall like the real data; some patients have none at all.
            radius = 0.0 if p % 4 == 3 else rng.uniform(0.4, 0.8) * math.hypot(rows, cols) / 2
            cy, cx = rng.uniform(0, rows), rng.uniform(0, cols)
            for k in range(patches_per_patient):
                r, c = divmod(k, cols)
                label = int(math.hypot(r + 0.5 - cy, c + 0.5 - cx) < radius)
                patch = synth_patch(rng, bool(label))
                if border_patches and p < 3 and r == rows - 1 and c == 0:
                    patch = patch[: int(rng.integers(5, 45))]  # cut short at the slide's bottom edge
                    n_border += 1
                x, y = 1 + 50 * c, 1 + 50 * r
                d = tmp / pid / str(label)
                d.mkdir(parents=True, exist_ok=True)
                Image.fromarray(patch).save(d / f"{pid}_idx5_x{x}_y{y}_class{label}.png")
        (tmp / "README.txt").write_text(README.format(seed=seed, patients=patients, per=patches_per_patient,
                                                      n_border=n_border, url=KAGGLE_URL))
        if out.exists():
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def is_synthetic(path: str | os.PathLike) -> bool:
    readme = Path(path) / "README.txt"
    try:
        return readme.is_file() and readme.read_text(errors="replace").startswith("SYNTHETIC DATA")
    except OSError:
        return False
