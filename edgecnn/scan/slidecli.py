"""The slide part of `edgecnn scan`: which inputs are streamed as slides, and the loop over them
with a progress bar (tiles, tiles/s, ETA). A thin layer over ``edgecnn.scan.slidescan``."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgecnn.scan.slide import SLIDE_SUFFIXES, TIFF_SUFFIXES, dicom_instance

log = logging.getLogger(__name__)


def wants_streaming(path: Path, max_pixels: int) -> bool:
    """Vendor slides always; a TIFF when it is tiled, a pyramid, or above ``max_pixels``
    (a small striped TIFF frame is still an ordinary image)."""
    suffix = path.suffix.lower()
    if suffix in SLIDE_SUFFIXES:
        return True
    if suffix not in TIFF_SUFFIXES or not path.is_file():
        return False
    try:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            return bool(page.is_tiled or len(tif.pages) > 1 or page.imagewidth * page.imagelength > max_pixels)
    except ImportError:
        # No [slides] extra: PIL reads it whole, under --max-pixels; a tiled or pyramid TIFF then
        # fails or decodes its first page only, so say why once.
        log.warning("%s: tifffile is not installed (pip install 'edgecnn[slides]'), so this TIFF is read as one "
                    "image, not streamed as a slide", path)
        return False
    except Exception:  # noqa: BLE001 — a damaged TIFF: the slide reader names the problem
        return True


def split_inputs(inputs: list[Path] | None, max_pixels: int) -> tuple[list[Path], list[Path]]:
    """(slides, other inputs); a folder contributes its slides, TIFFs and DICOM series (subfolders of
    instances), sorted by name; a folder of DICOM instances is one slide."""
    slides: list[Path] = []
    rest: list[Path] = []
    for p in inputs or []:
        if dicom_instance(p) is not None:          # a DICOM whole slide: a folder of instances
            slides.append(p)
        elif p.is_dir():
            found = sorted(q for q in p.iterdir() if (q.is_file() and q.suffix.lower() in SLIDE_SUFFIXES + TIFF_SUFFIXES)
                           or dicom_instance(q) is not None)
            if not found:
                raise ValueError(f"{p}: a folder with no slides (.svs, .ndpi, .mrxs, .tif, DICOM folders, ...) in it")
            slides.extend(found)
        elif wants_streaming(p, max_pixels):
            slides.append(p)
        else:
            rest.append(p)
    return slides, rest


def _progress(console: Console):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("tiles"),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=console, transient=True)


@contextmanager
def cluster_progress(console: Console | None, n_slides: int):
    """One bar over every slide's grid tiles, advanced as the cluster's tasks return; yields the
    ``progress(done, total)`` callback (None when quiet)."""
    if console is None:
        yield None
        return
    with _progress(console) as bar:
        task = bar.add_task(f"{n_slides} slide{'s' * (n_slides != 1)} on the cluster", total=None, rate="")

        def tick(done: int, total: int) -> None:
            elapsed = bar.tasks[0].elapsed or 0.0
            bar.update(task, completed=done, total=total,
                       rate=f"{done / elapsed:,.0f} grid tiles/s" if elapsed > 0 and done else "")

        yield tick


def scan_one(path: Path, scanner, out: Path, *, mpp, level, rescale, resume, console: Console | None,
             checkpoint_s: float = 5.0) -> dict[str, Any]:
    """One slide → its summary, or {"slide", "error"} for a slide that cannot be read."""
    from edgecnn.scan.checkpoint import CheckpointError
    from edgecnn.scan.image import ImageError
    from edgecnn.scan.slide import SlideError, open_slide
    from edgecnn.scan.slidescan import scan_slide

    try:
        reader = open_slide(path, mpp=mpp, level=level, rescale=rescale)
        try:
            if console is None:
                return scan_slide(reader, scanner, out, resume=resume, checkpoint_s=checkpoint_s)
            with _progress(console) as bar:
                task = bar.add_task(escape(path.name), total=None, rate="")

                def tick(done: int, total: int) -> None:
                    elapsed = bar.tasks[0].elapsed or 0.0
                    bar.update(task, completed=done, total=total,
                               rate=f"{done / elapsed:,.0f} grid tiles/s" if elapsed > 0 else "")

                return scan_slide(reader, scanner, out, resume=resume, progress=tick, checkpoint_s=checkpoint_s)
        finally:
            reader.close()
    except (SlideError, CheckpointError, ImageError, ValueError, OSError) as e:
        return {"slide": str(path), "error": str(e)}


def slide_table(records: list[dict[str, Any]]) -> Table:
    t = Table(title="slides (areas: tissue pixels at the model's 4 µm/px)")
    for col in ("slide", "tiles", "tissue tiles", "tissue mm²", "IDC mm²", "IDC share", "s", "tiles/s"):
        t.add_column(col, justify="left" if col == "slide" else "right", no_wrap=col == "slide")
    for r in records:
        name = escape(Path(r["slide"]).name)
        if "error" in r:
            t.add_row(name, "-", "-", "-", "-", f"[red]{escape(r['error'])}[/red]", "-", "-")
        else:
            t.add_row(name, str(r["tiles"]), str(r["tissue_tiles"]), f"{r['tissue_area_mm2']:.2f}",
                      f"{r['idc_area_mm2']:.2f}", f"{100 * r['idc_share']:.1f}%", f"{r['seconds']:.1f}",
                      f"{r['tiles_per_s'] or 0:.0f}")
    return t


__all__ = ["cluster_progress", "scan_one", "slide_table", "split_inputs", "wants_streaming"]
