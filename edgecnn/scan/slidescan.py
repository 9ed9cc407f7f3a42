"""Scan a whole slide (or a huge TIFF) band by band and write what a pathologist opens.

The slide is streamed as bands of ``band_rows`` tile rows at the model's scale
(``edgecnn.scan.slide``); each band is one frame for ``Scanner.scan``, at stride = tile size, so
its tiles are exactly the tiles the same pixels give as one image, and the band results stack
into the slide's grid. Memory: a few bands plus the (rows, cols) grids and a thumbnail.

Outputs, in ``out``: ``<stem>.heat.png`` (one pixel per tile, yellow→red by IDC probability,
transparent where no tissue), ``<stem>.overlay.png`` (a thumbnail with the heat map over it),
``<stem>.geojson`` (IDC regions for QuPath, ``edgecnn.scan.geojson``), and the summary returned
(tissue area mm², IDC area mm², IDC share, tiles, seconds, tiles/s). Areas are tissue pixels, not
whole tiles: the sum over tiles of (tile area × the tile's tissue share).

``resume=True`` continues from ``<stem>.checkpoint.npz`` (``edgecnn.scan.checkpoint``), saved at
most every ``checkpoint_s`` seconds and removed on completion, and skips a slide whose
``<stem>.summary.json`` (written last) says its outputs are complete for the same settings.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from edgecnn.fsutil import write_json
from edgecnn.scan import checkpoint as ckpt
from edgecnn.scan.slide import MODEL_MPP, SlideSource

BAND_ROWS = 8
THUMB_MAX = 1600           # longest side of the thumbnail overlay, pixels
CHECKPOINT_S = 5.0


@dataclass
class SlideState:
    """The slide's grid, filled band by band."""

    probs: np.ndarray
    tissue: np.ndarray
    frac: np.ndarray
    thumb: np.ndarray
    k: int                  # thumbnail pixels per tile


def _grid_shape(reader, tile: int, edge: str) -> tuple[int, int]:
    if edge == "pad":
        return -(-reader.height // tile), -(-reader.width // tile)
    return reader.height // tile, reader.width // tile


def empty_state(rows: int, cols: int, tile: int) -> SlideState:
    k = max(1, min(tile, THUMB_MAX // max(rows, cols, 1)))
    return SlideState(np.full((rows, cols), np.nan, np.float32), np.zeros((rows, cols), bool),
                      np.zeros((rows, cols), np.float32), np.full((rows * k, cols * k, 3), 255, np.uint8), k)


def _thumb_band(band: np.ndarray, nrows: int, cols: int, tile: int, k: int) -> np.ndarray:
    """The band's tiles (``nrows`` × ``cols``, white past the edge) shrunk to ``k`` px per tile."""
    h, w = nrows * tile, cols * tile
    if band.shape[:2] != (h, w):
        pad = np.full((h, w, 3), 255, np.uint8)
        hh, ww = min(h, band.shape[0]), min(w, band.shape[1])
        pad[:hh, :ww] = band[:hh, :ww]
        band = pad
    return np.asarray(Image.fromarray(band).resize((cols * k, nrows * k), Image.Resampling.BOX))


def scan_slide(reader, scanner, out: str | Path, *, resume: bool = False, band_rows: int = BAND_ROWS,
               progress: Callable[[int, int], None] | None = None, checkpoint_s: float = CHECKPOINT_S,
               stem: str | None = None) -> dict[str, Any]:
    """Scan ``reader`` (``edgecnn.scan.slide.open_slide``) with ``scanner``; write the outputs to
    ``out`` and return the slide summary. ``progress(done_tiles, total_tiles)`` after every band."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or reader.path.stem
    state = new_slide_state(reader, scanner)
    done = completed_summary(reader, scanner, out, stem) if resume else None
    if done is not None:
        return {**done, "skipped": "outputs complete"}
    ck_path = out / f"{stem}.checkpoint.npz"
    fp = ckpt.fingerprint(reader.path, scanner.describe(), reader.describe())
    start_y, elapsed0 = 0, 0.0
    saved = ckpt.load(ck_path, fp) if resume else None
    if saved is not None:
        start_y, elapsed0 = saved["next_y"], saved["elapsed_s"]
        state.probs, state.tissue, state.frac = saved["probs"], saved["tissue"], saved["frac"]
        state.thumb = saved.get("thumb", state.thumb)
    t0 = time.perf_counter()
    # The reader already resampled to the model's scale: the scanner must not rescale bands again.
    rescale, scanner.rescale = scanner.rescale, 1.0
    try:
        _scan_bands(reader, scanner, state, start_y, elapsed0, band_rows, ck_path, fp, progress, checkpoint_s)
    finally:
        scanner.rescale = rescale
    summary = finish_slide(reader, scanner, state, out, stem, elapsed0 + time.perf_counter() - t0, start_y)
    ck_path.unlink(missing_ok=True)
    return summary


def slide_grid(reader, scanner) -> tuple[int, int]:
    """(rows, cols) of ``reader``'s slide at ``scanner``'s tile size; a ValueError when the slide
    is smaller than one tile."""
    tile = scanner.tile_size
    rows, cols = _grid_shape(reader, tile, scanner.edge)
    if rows < 1 or cols < 1:
        raise ValueError(f"{reader.path}: {reader.width}×{reader.height} px at the model's scale is smaller than "
                         f"one {tile}px tile; check --mpp / --rescale")
    return rows, cols


def new_slide_state(reader, scanner) -> SlideState:
    """The empty grids and thumbnail of ``reader``'s slide at ``scanner``'s tile size."""
    return empty_state(*slide_grid(reader, scanner), scanner.tile_size)


def finish_slide(reader, scanner, state: SlideState, out: Path, stem: str, seconds: float,
                 resumed_from_y: int = 0) -> dict[str, Any]:
    """Context stage, summary and outputs of a filled grid; ``<stem>.summary.json`` is written last,
    so its presence (``completed_summary``) means every output is complete."""
    # Bands are scanned tile by tile; the context stage runs once over the whole slide's grid, so
    # tiles on a band's edge see their neighbours in the next band (the checkpoint keeps the tiles').
    state.probs = scanner.field_map(state.probs, state.tissue, scanner.tile_size)
    summary = _summary(reader, scanner, state, seconds, resumed_from_y)
    summary["outputs"] = write_outputs(reader, scanner, state, out, stem, summary)
    summary["fingerprint"] = outputs_fingerprint(reader, scanner)
    write_json(out / f"{stem}.summary.json", summary)
    return summary


def outputs_fingerprint(reader, scanner) -> str:
    """What a slide's outputs depend on: the checkpoint's fingerprint plus the context stage and
    the tissue rule, which change the heat map but not the raw tiles."""
    d = scanner.describe()
    extra = {"context": d.get("context"), "min_tissue": scanner.min_tissue, "edge": scanner.edge}
    return ckpt.fingerprint(reader.path, d, reader.describe()) + json.dumps(extra, sort_keys=True, default=str)


def completed_summary(reader, scanner, out: str | Path, stem: str | None = None) -> dict[str, Any] | None:
    """The summary of an earlier scan of this slide with these settings whose outputs are all in
    ``out``, else None (no scan, another model or setting, or an output missing)."""
    stem = stem or reader.path.stem
    path = Path(out) / f"{stem}.summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if summary.get("fingerprint") != outputs_fingerprint(reader, scanner):
        return None
    if not all(Path(p).is_file() for p in (summary.get("outputs") or {"missing": ""}).values()):
        return None
    return summary


def scan_rows(reader, scanner, state: SlideState, r0: int, r1: int, band_rows: int = BAND_ROWS,
              on_band: Callable[[int, int], None] | None = None) -> None:
    """Fill grid rows [r0, r1) of ``state`` band by band (``r0`` a multiple of ``band_rows``, so the
    bands are the ones a whole-slide scan reads); ``on_band(y_next, rows_done_to)`` after each.
    The reader must already give the model's scale (``scanner.rescale`` 1)."""
    tile, edge = scanner.tile_size, scanner.edge
    band_h, k = band_rows * tile, state.k
    r1 = min(r1, state.probs.shape[0])
    for frame in SlideSource(reader, band_h, r0 * tile):
        y = frame.meta["y"]
        top = y // tile
        if top >= r1:
            break
        band = frame.image[:min(band_rows, r1 - top) * tile] if edge == "drop" else frame.image
        res = scanner.scan(band, stride=tile, source=frame.name, context=False)
        n = min(res.prob_map.shape[0], r1 - top)
        state.probs[top:top + n], state.tissue[top:top + n], state.frac[top:top + n] = \
            res.prob_map[:n], res.tissue_mask[:n], res.tissue_fraction[:n]
        state.thumb[top * k:(top + n) * k] = _thumb_band(band, n, state.probs.shape[1], tile, k)[:n * k]
        if on_band is not None:
            on_band(y + band_h, top + n)


def _scan_bands(reader, scanner, state: SlideState, start_y: int, elapsed0: float, band_rows: int,
                ck_path: Path, fp: str, progress, checkpoint_s: float) -> None:
    """Fill ``state`` band by band from ``start_y``; checkpoint at most every ``checkpoint_s``."""
    rows, cols = state.probs.shape
    t0 = last_save = time.perf_counter()

    def on_band(next_y: int, done_rows: int) -> None:
        nonlocal last_save
        if time.perf_counter() - last_save >= checkpoint_s and done_rows < rows:
            ckpt.save(ck_path, fp, next_y, elapsed0 + time.perf_counter() - t0, probs=state.probs,
                      tissue=state.tissue, frac=state.frac, thumb=state.thumb)
            last_save = time.perf_counter()
        if progress is not None:
            progress(done_rows * cols, rows * cols)

    scan_rows(reader, scanner, state, start_y // scanner.tile_size, rows, band_rows, on_band)


def _tile_mm2(reader, tile: int) -> tuple[float, bool]:
    """Area of one tile in mm², and whether the scale was assumed (an image with no mpp given)."""
    assumed = getattr(reader, "mpp", None) is None
    side_mm = tile * MODEL_MPP / 1000.0
    return side_mm * side_mm, assumed


def _summary(reader, scanner, state: SlideState, seconds: float, resumed_from_y: int) -> dict[str, Any]:
    tile = scanner.tile_size
    tile_mm2, assumed = _tile_mm2(reader, tile)
    with np.errstate(invalid="ignore"):
        positive = state.tissue & (state.probs >= scanner.threshold)
    tissue_n, pos_n = int(state.tissue.sum()), int(positive.sum())
    return {
        "slide": str(reader.path), "reader": reader.describe(), "tile_size": tile, "model_mpp": MODEL_MPP,
        "mpp_assumed": assumed, "rows": int(state.probs.shape[0]), "cols": int(state.probs.shape[1]),
        "tiles": int(state.probs.size), "tissue_tiles": tissue_n, "positive_tiles": pos_n,
        "idc_share": pos_n / tissue_n if tissue_n else 0.0, "threshold": scanner.threshold,
        "context": scanner.context.describe() if scanner.context is not None else None,
        "tissue_area_mm2": float(state.frac[state.tissue].sum()) * tile_mm2,
        "idc_area_mm2": float(state.frac[positive].sum()) * tile_mm2, "tile_mm2": tile_mm2,
        # What the GeoJSON outlines enclose: whole positive tiles (idc_area_mm2 counts their tissue pixels only).
        "idc_region_area_mm2": pos_n * tile_mm2,
        "seconds": seconds, "tiles_per_s": tissue_n / seconds if seconds > 0 else None,
        "grid_tiles_per_s": state.probs.size / seconds if seconds > 0 else None,
        "resumed_from_y": resumed_from_y or None,
    }


def heat_png(probs: np.ndarray) -> np.ndarray:
    """(rows, cols, 4) RGBA at one pixel per tile; transparent where no tissue."""
    from edgecnn.scan.overlay import colorize

    valid = ~np.isnan(probs)
    rgb = colorize(np.where(valid, probs, 0.0))
    return np.concatenate([np.clip(rgb + 0.5, 0, 255).astype(np.uint8),
                           (valid * 255).astype(np.uint8)[..., None]], axis=-1)


def write_outputs(reader, scanner, state: SlideState, out: Path, stem: str, summary: dict) -> dict[str, str]:
    from edgecnn.data.mosaic import save_png
    from edgecnn.fsutil import write_bytes
    from edgecnn.scan.geojson import feature_collection
    from edgecnn.scan.overlay import blend, paste_legend

    k = state.k
    heat_px = np.repeat(np.repeat(state.probs, k, axis=0), k, axis=1)
    over = blend(state.thumb, heat_px, scanner.threshold, line=1)
    over = np.ascontiguousarray(over)
    paste_legend(over, scanner.threshold, summary["idc_share"])
    paths = {"heat": out / f"{stem}.heat.png", "overlay": out / f"{stem}.overlay.png",
             "geojson": out / f"{stem}.geojson"}
    save_png(paths["heat"], heat_png(state.probs))
    save_png(paths["overlay"], over)
    with np.errstate(invalid="ignore"):
        positive = state.tissue & (state.probs >= scanner.threshold)
    fc = feature_collection(positive, state.probs, scanner.tile_size, reader.to_level0(), summary["tile_mm2"])
    write_bytes(paths["geojson"], json.dumps(fc).encode())
    return {k_: str(v) for k_, v in paths.items()}


__all__ = ["BAND_ROWS", "SlideState", "completed_summary", "empty_state", "finish_slide", "heat_png", "new_slide_state", "scan_rows",
           "slide_grid",
           "scan_slide", "write_outputs"]
