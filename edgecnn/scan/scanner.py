"""Scan a microscope field of view: tile it, skip background, classify every tissue tile in batches.

Magnification. The model only knows the dataset's scale. The Kaggle IDC patches are 50×50 px cut
from whole slides scanned at 40× (Janowczyk & Madabhushi 2016; Cruz-Roa et al. 2014) after the
slides were downsampled by a factor of 16, i.e. about 2.5× apparent magnification (≈ 4 µm per
pixel at a 40× scan's ≈ 0.25 µm/px; one patch spans ≈ 200 µm). A camera frame at another
magnification must be resized to that scale first: ``rescale`` is the factor applied to the frame
(PIL, antialiased) before tiling, e.g. ``rescale=1/4`` for a 10× view at 1 µm/px. Results (grid,
heat map, tile coordinates) are in the pixels of the rescaled frame; ``ScanResult.rescale`` maps
them back.

Tiles are always the model's input size (``backend.input_size``, 50 for the release model): a
model trained at another size sees tiles of its own size, never resized patches.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterable, Iterator

import numpy as np

from edgecnn.scan.image import as_rgb8, rescale_frame
from edgecnn.scan.model import load_backend
from edgecnn.scan.profile import apply_profile
from edgecnn.scan.tiling import (
    BLACK_LEVEL,
    MIN_TISSUE,
    WHITE_LEVEL,
    Grid,
    covered_frame,
    heat_cells,
    heat_map,
    make_grid,
    tile_view,
    tissue_fraction,
)

DEFAULT_BATCH = 256


@dataclass
class ScanResult:
    """One scanned frame. Grid arrays are rows × cols; pixel arrays are in the scanned (rescaled) frame."""

    prob_map: np.ndarray          # (rows, cols) float32 IDC probability, NaN for background tiles
    tissue_mask: np.ndarray       # (rows, cols) bool, tiles sent to the model
    tissue_fraction: np.ndarray   # (rows, cols) float32, share of non-background pixels per tile
    grid: Grid
    threshold: float
    rescale: float = 1.0
    timing: dict[str, float] = field(default_factory=dict)   # ms: prepare, tiling, mask, inference, context, total
    source: str | None = None
    patch_prob_map: np.ndarray | None = None   # the tile model's own probabilities when a context stage ran
    context: str | None = None                 # the stage that made prob_map field-level (None: patch-level)

    @property
    def tile_size(self) -> int:
        return self.grid.size

    @property
    def stride(self) -> int:
        return self.grid.stride

    @property
    def tile_x(self) -> np.ndarray:
        """Left edge of each tile column (scanned-frame pixels; divide by ``rescale`` for the input frame)."""
        return self.grid.xs

    @property
    def tile_y(self) -> np.ndarray:
        return self.grid.ys

    @property
    def origins(self) -> np.ndarray:
        """(rows, cols, 2) top-left (x, y) of every tile, scanned-frame pixels."""
        xx, yy = np.meshgrid(self.grid.xs, self.grid.ys)
        return np.stack([xx, yy], axis=-1)

    @property
    def tiles(self) -> int:
        return int(self.prob_map.size)

    @property
    def tissue_tiles(self) -> int:
        return int(self.tissue_mask.sum())

    @property
    def positive_mask(self) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return self.tissue_mask & (self.prob_map >= self.threshold)

    @property
    def positive_tiles(self) -> int:
        return int(self.positive_mask.sum())

    @property
    def idc_share(self) -> float:
        """IDC-positive tiles / tissue tiles (0.0 when the frame holds no tissue)."""
        n = self.tissue_tiles
        return self.positive_tiles / n if n else 0.0

    @property
    def ms_per_frame(self) -> float:
        """Frame in memory → probabilities: rescale, tiling, mask, inference (not file decoding)."""
        return float(self.timing.get("total", float("nan")))

    @cached_property
    def heat_cells(self) -> tuple[np.ndarray, int]:
        """The heat map at cell resolution and the cell size (``edgecnn.scan.tiling.heat_cells``)."""
        return heat_cells(self.prob_map, self.grid)

    @cached_property
    def heat(self) -> np.ndarray:
        """(H, W) float32 per-pixel probability (mean over overlapping tissue tiles), NaN elsewhere."""
        return heat_map(self.prob_map, self.grid, self.heat_cells)

    def grid_list(self) -> list[list[float | None]]:
        """The probability grid for JSON: rows of floats, None for background tiles."""
        return [[None if np.isnan(v) else round(float(v), 6) for v in row] for row in self.prob_map]

    def summary(self, grid: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "tiles": self.tiles,
            "tissue_tiles": self.tissue_tiles,
            "positive_tiles": self.positive_tiles,
            "idc_share": self.idc_share,
            "threshold": self.threshold,
            "context": self.context,
            "ms_per_frame": self.ms_per_frame,
            "timing_ms": dict(self.timing),
            "tile_size": self.tile_size,
            "stride": self.stride,
            "rows": int(self.grid.rows),
            "cols": int(self.grid.cols),
            "origin": list(self.grid.origin),
            "rescale": self.rescale,
            "frame_size": [self.grid.width, self.grid.height],
        }
        if grid:
            out["grid"] = self.grid_list()
        return out


class Scanner:
    """Tile-and-classify a field of view with one loaded model.

    ``model``: an artifact path (loaded with ``edgecnn.runtime.load``), a loaded Backend, or None
    for the release model (``edgecnn.scan.model.default_model_path``). ``threshold`` defaults to the
    model's own (from its manifest). ``min_tissue`` (the minimum share of non-background
    pixels for a tile to be classified), ``white_level``, ``black_level``: the tissue rule
    (``edgecnn.scan.tiling``). ``edge``: "drop" or "pad" for tiles past the frame's edge.
    ``profile``: with no ``model``, the device profile ``edgecnn tune`` wrote ("auto": the default
    path when it exists and was made on this machine; a path; None: ignore it) picks the artifact,
    runtime, threads and batch size, each only where the caller gave none.
    ``context``: "auto" runs the stage the artifact's manifest carries (patch-level, with
    ``context_notice`` set, when it carries none); a ContextStage or a JSON path runs that one;
    None runs patch-level. Then ``prob_map`` and ``threshold`` are field-level.
    """

    def __init__(self, model: Any = None, threads: int | None = None, batch_size: int | None = None,
                 min_tissue: float = MIN_TISSUE, rescale: float = 1.0, *,
                 threshold: float | None = None, edge: str = "drop", white_level: int = WHITE_LEVEL,
                 black_level: int = BLACK_LEVEL, runtime: str | None = None, verify: bool = True,
                 profile: Any = "auto", context: Any = "auto"):
        if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
        if not 0.0 <= min_tissue <= 1.0:
            raise ValueError(f"min_tissue (--min-tissue) is a share of a tile's pixels, in [0, 1]; got {min_tissue}")
        if not rescale > 0:
            raise ValueError(f"rescale must be a positive factor; got {rescale}")
        self.profile = None
        if model is None and profile is not None:
            model, runtime, threads, batch_size, self.profile = apply_profile(profile, runtime, threads, batch_size)
        # The runtimes' own default (LiteRT: one thread) left half of a 2-core device idle: ~1.5× slower.
        threads = threads or usable_cores()
        self.backend = load_backend(model, threads=threads, runtime=runtime, verify=verify)
        self.batch_size = batch_size or DEFAULT_BATCH
        self.min_tissue = float(min_tissue)
        self.rescale = float(rescale)
        self.context, self.context_notice = resolve_context(context, self.backend)
        default = self.context.threshold if self.context is not None else self.backend.threshold
        self.threshold = float(default if threshold is None else threshold)
        self.edge = edge
        self.white_level = int(white_level)
        self.black_level = int(black_level)
        make_grid(1, 1, 1, 1, edge=edge)  # reject a bad edge rule now, not at the first frame

    def describe(self) -> dict[str, Any]:
        """What runs: artifact, runtime, threads, batch size, threshold, and the device profile used."""
        b = self.backend
        # ONNX Runtime takes CUDA by itself where onnxruntime-gpu sees a GPU: say which one runs.
        providers = [p for p in getattr(b, "provider_list", None) or [] if p != "CPUExecutionProvider"]
        runtime = getattr(b, "runtime", None)
        return {"model": str(getattr(b, "path", b)),
                "runtime": f"{runtime} on {', '.join(providers)}" if providers else runtime,
                "threads": getattr(b, "threads", None), "batch_size": self.batch_size, "threshold": self.threshold,
                "tile_size": self.tile_size, "profile": str(self.profile) if self.profile else None,
                "context": self.context.to_dict() if self.context is not None else None}

    @property
    def tile_size(self) -> int:
        return int(self.backend.input_size)

    def scan(self, image: Any, stride: int | None = None, origin: tuple[int, int] = (0, 0),
             source: str | None = None, context: bool = True) -> ScanResult:
        """Scan one frame (path, PIL image or array). ``stride`` defaults to the tile size;
        ``origin`` (x, y) shifts the tile grid, e.g. to align it with a slide's patch grid.
        ``context=False`` skips the context stage for this frame (a slide band: the stage runs once
        over the whole slide's grid, see ``field_map``)."""
        if source is None and not hasattr(image, "shape") and not hasattr(image, "mode"):
            source = str(image)
        frame = as_rgb8(image, name=source or "image")
        return self._scan_frame(frame, stride, origin, source, context)

    def field_map(self, probs: np.ndarray, tissue: np.ndarray, stride: int) -> np.ndarray:
        """Field-level probabilities of a tile grid (the input itself without a context stage)."""
        if self.context is None:
            return probs
        self.context.check_geometry(self.tile_size, stride, "this scan")
        return self.context.field_probs(probs, tissue).astype(np.float32)

    def scan_frames(self, frames: Iterable[Any], stride: int | None = None,
                    origin: tuple[int, int] = (0, 0)) -> Iterator[ScanResult]:
        """Scan a stream of frames lazily, one result (with its ``ms_per_frame``) per frame."""
        for frame in frames:
            yield self.scan(frame, stride=stride, origin=origin)

    def _scan_frame(self, frame: np.ndarray, stride: int | None, origin: tuple[int, int],
                    source: str | None, context: bool = True) -> ScanResult:
        t0 = time.perf_counter()
        size = self.tile_size
        stride = size if stride is None else int(stride)
        frame = rescale_frame(frame, self.rescale)
        h, w = frame.shape[:2]
        try:
            grid = make_grid(h, w, size, stride, origin, self.edge)
        except ValueError as e:
            raise ValueError(f"{source or 'image'}: {e}") from None
        t1 = time.perf_counter()
        covered = covered_frame(frame, grid)
        frac = tissue_fraction(covered, grid, self.white_level, self.black_level)
        tissue = frac >= self.min_tissue
        t2 = time.perf_counter()
        rr, cc = np.nonzero(tissue)
        batch = tile_view(covered, grid)[rr, cc]  # the one copy: (N, S, S, 3) contiguous, the model's input
        t3 = time.perf_counter()
        probs = np.full((grid.rows, grid.cols), np.nan, dtype=np.float32)
        if rr.size:
            probs[rr, cc] = self.backend.predict(batch, batch_size=self.batch_size)
        t4 = time.perf_counter()
        stage = self.context if context else None
        field_probs = self.field_map(probs, tissue, stride) if stage is not None else probs
        t5 = time.perf_counter()
        timing = {
            "prepare": (t1 - t0) * 1e3,
            "mask": (t2 - t1) * 1e3,
            "tiling": (t3 - t2) * 1e3,
            "inference": (t4 - t3) * 1e3,
            "context": (t5 - t4) * 1e3,
            "total": (t5 - t0) * 1e3,
        }
        threshold = self.threshold if stage is not None or self.context is None else float(self.backend.threshold)
        return ScanResult(field_probs, tissue, frac, grid, threshold, self.rescale, timing, source,
                          patch_prob_map=probs if stage is not None else None,
                          context=stage.describe() if stage is not None else None)


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def resolve_context(context: Any, backend: Any):
    """(stage or None, notice or None) for ``Scanner(context=...)``."""
    from edgecnn.context import ContextStage
    from edgecnn.context.load import stage_of_file, stage_of_manifest

    if context is None or context is False:
        return None, None
    if isinstance(context, ContextStage):
        stage = context
    elif context == "auto":
        name = str(getattr(backend, "path", "the model"))
        stage = stage_of_manifest(getattr(backend, "manifest", None), name)
        if stage is None:
            return None, (f"{name} carries no context stage: tiles are classified alone (patch-level); "
                          "`edgecnn context fit` adds one")
    else:
        stage = stage_of_file(context)
    stage.check_geometry(int(backend.input_size), stage.stride, "the model")
    return stage, None
