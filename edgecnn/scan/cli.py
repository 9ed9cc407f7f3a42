"""`edgecnn scan` and `edgecnn data mosaic`: thin wrappers over edgecnn.scan and edgecnn.data.mosaic."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgecnn.fsutil import write_json

err = Console(stderr=True)


def _fail(msg: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {escape(msg)}", highlight=False)
    raise typer.Exit(code)


def _unique_stem(path: Path, used: set[str]) -> str:
    stem, i = path.stem, 1
    while stem in used:
        i += 1
        stem = f"{path.stem}-{i}"
    used.add(stem)
    return stem


def _record(result, overlay_path: Path) -> dict[str, Any]:
    rec = result.summary(grid=True)
    rec["overlay"] = str(overlay_path)
    return rec


def _table(records: list[dict[str, Any]], title: str) -> Table:
    t = Table(title=title)
    for col in ("image", "tiles", "tissue tiles", "IDC-positive share", "ms / frame"):
        t.add_column(col, justify="left" if col == "image" else "right")
    for r in records:
        if "error" in r:
            t.add_row(Path(r["source"]).name, "-", "-", f"[red]{escape(r['error'])}[/red]", "-")
        else:
            t.add_row(Path(r["source"]).name, str(r["tiles"]), str(r["tissue_tiles"]),
                      f"{100 * r['positive_share']:.1f}%", f"{r['ms_per_frame']:.1f}")
    return t


def scan(
    images: Annotated[Optional[list[Path]], typer.Argument(
        help="Images to scan (PNG, JPEG, TIFF, ...). Leave out with --watch.", show_default=False)] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the heat-map overlays (<image>.overlay.png).")] = Path("scan-out"),
    model: Annotated[Optional[Path], typer.Option(
        help="Model artifact (.tflite, .onnx, .xml, .engine) with its .json manifest. "
             "Default: the release model in exported/release (int8 TFLite, else int8 ONNX, else fp32 ONNX).")] = None,
    stride: Annotated[Optional[int], typer.Option(
        help="Pixels between tile corners. Default: the model's patch size (50): non-overlapping tiles. "
             "Smaller = overlapping tiles, averaged in the heat map.")] = None,
    threshold: Annotated[Optional[float], typer.Option(
        help="IDC probability at or above which a tile counts as positive. Default: the model's own (manifest).")] = None,
    rescale: Annotated[float, typer.Option(
        help="Resize factor applied to each frame before tiling, to match the dataset's scale "
             "(~2.5x apparent magnification, ~4 um/px; e.g. 0.25 for a 10x frame at 1 um/px).")] = 1.0,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads for inference (default: the runtime's choice).")] = None,
    batch_size: Annotated[int, typer.Option(help="Tiles per inference call.")] = 256,
    edge: Annotated[str, typer.Option(help="Tiles running past the right/bottom edge: 'drop' them or 'pad' the frame with white.")] = "drop",
    min_tissue: Annotated[float, typer.Option(
        help="Share of a tile's pixels that must be non-background (not near-white/near-black) to scan it.")] = 0.01,
    json_out: Annotated[Optional[str], typer.Option(
        "--json", help="Write per-image results (tiles, tissue_tiles, positive_share, ms_per_frame, grid) to FILE, or '-' for stdout.")] = None,
    watch_dir: Annotated[Optional[Path], typer.Option(
        "--watch", help="Watch this folder and scan each new image as the camera drops it (Ctrl-C stops).")] = None,
    max_frames: Annotated[Optional[int], typer.Option(help="--watch: stop after this many frames.")] = None,
    timeout: Annotated[Optional[float], typer.Option(help="--watch: stop after this many seconds.")] = None,
    policy: Annotated[str, typer.Option(
        help="--watch, when frames arrive faster than they are scanned: 'newest' scans only the latest "
             "and counts the rest as dropped; 'all' scans every frame in order.")] = "newest",
    skip_existing: Annotated[bool, typer.Option(help="--watch: ignore images already in the folder at start.")] = False,
    settle: Annotated[float, typer.Option(help="--watch: seconds a file's size must hold still before it is read.")] = 0.2,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Load the model even if its sha256 differs from the manifest.")] = False,
) -> None:
    """Scan microscope fields of view for IDC: tile each image into model-sized patches, skip
    background, classify every tissue tile, and write a heat-map overlay per image plus a summary
    (tiles, tissue tiles, IDC-positive share, ms per frame)."""
    from edgecnn.data.mosaic import save_png
    from edgecnn.scan.image import ImageError, read_image
    from edgecnn.scan.model import ModelNotFound
    from edgecnn.scan.overlay import overlay
    from edgecnn.scan.scanner import Scanner
    from edgecnn.scan.watch import WatchStats, watch

    images = list(images or [])
    if not images and watch_dir is None:
        _fail("give one or more IMAGE files, or --watch DIR (see --help)", 2)
    if policy not in ("newest", "all"):
        _fail(f"--policy must be 'newest' or 'all', not {policy!r}", 2)
    try:
        scanner = Scanner(model, threads=threads, batch_size=batch_size, tissue_threshold=min_tissue,
                          rescale=rescale, threshold=threshold, edge=edge, verify=not no_verify)
    except (ModelNotFound, ValueError, OSError, ImportError) as e:
        _fail(str(e), 2)
    to_stdout = json_out == "-"
    console = err if to_stdout else Console()
    backend = scanner.backend
    console.print(f"model {getattr(backend, 'path', backend)}  tile {scanner.tile_size}px  "
                  f"threshold {scanner.threshold:.3f}", highlight=False)
    used: set[str] = set()
    records: list[dict[str, Any]] = []

    def emit(source: Path, result, frame: Any) -> dict[str, Any]:
        target = out / f"{_unique_stem(source, used)}.overlay.png"
        save_png(target, overlay(frame, result))
        return _record(result, target)

    stats = WatchStats()
    try:
        for path in images:
            try:
                frame = read_image(path)
                result = scanner.scan(frame, stride=stride, source=str(path))
                records.append(emit(path, result, frame))
            except (ImageError, ValueError) as e:
                records.append({"source": str(path), "error": str(e)})
                err.print(f"[red]skipped[/red] {escape(str(e))}", highlight=False)
        if watch_dir is not None:
            console.print(f"watching {watch_dir} (policy {policy}; Ctrl-C stops)", highlight=False)
            for ev in watch(watch_dir, scanner, stride=stride, policy=policy, settle_s=settle,
                            max_frames=max_frames, timeout=timeout, include_existing=not skip_existing, stats=stats):
                if not ev.ok:
                    records.append({"source": str(ev.path), "error": ev.error})
                    continue
                rec = emit(ev.path, ev.result, ev.frame)
                rec.update(latency_ms=ev.latency_ms, decode_ms=ev.decode_ms, dropped_so_far=ev.dropped)
                records.append(rec)
                console.print(f"#{ev.index} {ev.path.name}: {rec['tissue_tiles']} tissue tiles, "
                              f"IDC {100 * rec['positive_share']:.1f}%, {ev.result.ms_per_frame:.1f} ms scan, "
                              f"{ev.latency_ms:.1f} ms latency, dropped {ev.dropped}", highlight=False)
    except KeyboardInterrupt:
        stats.stopped_by = "interrupt"
    console.print(_table(records, f"scan → {out}"))
    if watch_dir is not None:
        console.print(f"watch: {stats.scanned} scanned, {stats.failed} failed, {stats.dropped} dropped"
                      f"{', stopped by ' + stats.stopped_by if stats.stopped_by else ''}", highlight=False)
    if json_out:
        payload = {
            "model": str(getattr(backend, "path", "")),
            "threshold": scanner.threshold,
            "tile_size": scanner.tile_size,
            "images": records,
        }
        if watch_dir is not None:
            payload["watch"] = {"scanned": stats.scanned, "failed": stats.failed, "dropped": stats.dropped,
                                "stopped_by": stats.stopped_by}
        if to_stdout:
            sys.stdout.write(json.dumps(payload) + "\n")
        else:
            write_json(json_out, payload)
    if any("error" in r for r in records) and not watch_dir:
        raise typer.Exit(1)


def mosaic_command(
    patient_dir: Annotated[Path, typer.Argument(help="One patient's folder in the Kaggle layout (<patient>/0, <patient>/1).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Mosaic image to write (PNG).")],
    labels_out: Annotated[Optional[Path], typer.Option(
        help="Also write the label mask (PNG, grey: 0 = no patch, 128 = no IDC, 255 = IDC).")] = None,
    overlay_out: Annotated[Optional[Path], typer.Option(
        help="Also write the mosaic with the labels drawn over it (IDC red, outlined; no IDC faint yellow).")] = None,
    json_out: Annotated[Optional[str], typer.Option("--json", help="Write the mosaic's summary to FILE, or '-' for stdout.")] = None,
) -> None:
    """Rebuild a patient's tissue region from its patches (x/y in the file names give each patch's
    place). Use it to see a real field of view, or to scan it and compare the heat map with the labels."""
    from edgecnn.data.layout import DataError
    from edgecnn.data.mosaic import build_mosaic, label_png, save_png
    from edgecnn.scan.overlay import label_overlay

    try:
        m = build_mosaic(patient_dir)
    except DataError as e:
        _fail(str(e), 2)
    save_png(out, m.image)
    if labels_out:
        save_png(labels_out, label_png(m.label_mask))
    if overlay_out:
        save_png(overlay_out, label_overlay(m.image, m.label_mask))
    summary = m.summary() | {"image": str(out), "labels": str(labels_out) if labels_out else None,
                             "overlay": str(overlay_out) if overlay_out else None}
    for s in m.skipped:
        err.print(f"[yellow]skipped[/yellow] {escape(s['file'])}: {escape(s['reason'])}", highlight=False)
    if json_out == "-":
        sys.stdout.write(json.dumps(summary) + "\n")
        return
    if json_out:
        write_json(json_out, summary)
    Console().print(f"{m.patient}: {len(m.tiles)} patches ({summary['idc_patches']} IDC) → "
                    f"{m.image.shape[1]}×{m.image.shape[0]} px, origin {m.origin} → {out}", highlight=False)
