"""`edgecnn scan`, `edgecnn tune` and `edgecnn data mosaic`: thin wrappers over edgecnn.scan
(sources → live pipeline → sinks) and edgecnn.data.mosaic. No TensorFlow at import."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgecnn.clikit import JSON_HELP, Quiet, Verbose, emit_json, err, fail, int_list

SCAN_JSON_HELP = ("Image files: one JSON document (model, and per image: tiles, tissue_tiles, idc_share, "
                  "ms_per_frame, grid) to FILE, or - for stdout. Video, --camera, --watch: JSON lines as frames "
                  "are rendered (one per frame, then {\"summary\": ...} with per-stage p50/p99 and fps).")


@dataclass
class Run:
    """One scan command's state, passed between its steps."""

    scanner: Any
    out: Path
    json_out: Optional[str]
    quiet: bool
    console: Console
    streaming: bool
    records: list[dict[str, Any]] = field(default_factory=list)
    summaries: list[dict[str, Any]] = field(default_factory=list)
    slides: list[dict[str, Any]] = field(default_factory=list)
    cluster: Optional[dict[str, Any]] = None


def scan(
    inputs: Annotated[Optional[list[Path]], typer.Argument(
        help="Images (PNG, JPEG, TIFF, ...) and/or videos (mp4, avi, mkv, mov, ...) to scan. "
             "Leave out with --camera or --watch.", show_default=False)] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for overlays (<image>.overlay.png, "
                                      "<video>.overlay.mp4), or a video file name (.mp4, .avi, .mkv) for the annotated video.")] = Path("scan-out"),
    camera: Annotated[Optional[int], typer.Option("--camera", help="Scan a live camera by index (0 = the first; "
                                                  "/dev/videoN on Linux) until Ctrl-C, --max-frames or --timeout.")] = None,
    watch_dir: Annotated[Optional[Path], typer.Option(
        "--watch", help="Watch this folder and scan each new image as the camera drops it (Ctrl-C stops).")] = None,
    model: Annotated[Optional[Path], typer.Option(
        help="Model artifact (.tflite, .onnx, .xml, .engine) with its .json manifest. Default: the device profile "
             "from `edgecnn tune` if there is one for this machine, else the release model (int8 TFLite, ...).")] = None,
    stride: Annotated[Optional[int], typer.Option(
        help="Pixels between tile corners. Default: the model's patch size (50): non-overlapping tiles. "
             "Smaller = overlapping tiles, averaged in the heat map.")] = None,
    threshold: Annotated[Optional[float], typer.Option(
        help="IDC probability at or above which a tile counts as positive. Default: the model's own (manifest), "
             "or its context stage's.")] = None,
    no_context: Annotated[bool, typer.Option("--no-context", help="Classify each tile alone (patch-level). By default "
                                             "the model's context stage (in its manifest) turns tile probabilities into "
                                             "field-level ones from their neighbours.")] = False,
    context_from: Annotated[Optional[Path], typer.Option("--context-from", help="Run the context stage in this JSON "
                                                         "(`edgecnn context show --json`) instead of the model's.")] = None,
    rescale: Annotated[float, typer.Option(
        help="Resize factor applied to each frame before tiling, to match the dataset's scale "
             "(~2.5x apparent magnification, ~4 um/px; e.g. 0.25 for a 10x frame at 1 um/px).")] = 1.0,
    threads: Annotated[Optional[int], typer.Option("--threads", "-t", help="CPU threads for inference (default: the device profile's, else the runtime's choice).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", "-b", help="Tiles per inference call (default: the device profile's, else 256).")] = None,
    edge: Annotated[str, typer.Option(help="Tiles running past the right/bottom edge: 'drop' them or 'pad' the frame with white.")] = "drop",
    min_tissue: Annotated[float, typer.Option(
        help="Share of a tile's pixels that must be non-background (not near-white/near-black) to scan it.")] = 0.01,
    json_out: Annotated[Optional[str], typer.Option("--json", help=SCAN_JSON_HELP)] = None,
    show: Annotated[bool, typer.Option("--show", help="Also show the overlay in a window (needs a display and opencv-python with GUI; q quits).")] = False,
    max_frames: Annotated[Optional[int], typer.Option(help="Video, --camera, --watch: stop after this many frames.")] = None,
    timeout: Annotated[Optional[float], typer.Option(help="--camera, --watch: stop after this many seconds.")] = None,
    policy: Annotated[Optional[str], typer.Option(
        help="When frames come faster than they are scanned: 'newest' scans the latest and counts the rest as "
             "dropped (default for --camera and --watch); 'all' scans every frame (default for files and videos).")] = None,
    skip_existing: Annotated[bool, typer.Option("--skip-existing", help="--watch: ignore images already in the folder at start.")] = False,
    settle: Annotated[float, typer.Option(help="--watch: seconds a file's size must hold still before it is read.")] = 0.2,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Load the model even if its sha256 differs from the manifest.")] = False,
    max_pixels: Annotated[int, typer.Option("--max-pixels", help="Largest image (width x height) decoded whole "
                                            "(~3 bytes per pixel of memory); above it a clear error. Tiled TIFFs and "
                                            "slides are streamed and need no cap.")] = 250_000_000,
    mpp: Annotated[Optional[float], typer.Option("--mpp", help="Microns per pixel of the input at full resolution. "
                                                 "Slides: overrides the slide's own (needed when it has none). "
                                                 "Images: sets --rescale to mpp/4 (the model's ~4 um/px).")] = None,
    level: Annotated[Optional[int], typer.Option("--level", help="Slides: pyramid level to read (default: the one "
                                                 "closest to the model's scale).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Slides: continue a killed scan from its checkpoint "
                                         "(<out>/<slide>.checkpoint.npz).")] = False,
    checkpoint_every: Annotated[float, typer.Option("--checkpoint-every", help="Slides: seconds between checkpoints "
                                                    "of the tile results (what --resume continues from).")] = 5.0,
    cluster: Annotated[Optional[str], typer.Option("--cluster", help="Slides: scan on Ray (pip install 'edgecnn[cluster]'): "
                                                   "local:N (N worker processes here), auto (the cluster `ray start` made), "
                                                   "ray://HOST:PORT or HOST:PORT. One task per slide; a rerun skips finished "
                                                   "slides (docs/cluster.md).")] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Scan microscope fields of view for IDC: tile each frame into model-sized patches, skip
    background, classify every tissue tile, and write a heat-map overlay (PNG per image, an
    annotated video per video or camera) plus a summary. Video and camera frames go through a
    pipelined loop (capture, scan, render on separate threads).

    Examples: edgecnn scan frame.png --out scans/
              edgecnn scan clip.mp4 --out clip.overlay.mp4 --json clip.jsonl
              edgecnn scan --camera 0 --out live.mp4 --max-frames 300
              edgecnn scan slides/ --out slides-out/ --json slides.json   (whole slides: docs/slides.md)
    """
    _check_args(inputs, camera, watch_dir, policy)
    slides, inputs = _slide_inputs(inputs, max_pixels)
    if mpp is not None and rescale == 1.0:
        rescale = mpp / 4.0
    scanner = _load_scanner(model, threads, batch_size, min_tissue, rescale, threshold, edge, no_verify,
                            None if no_context else (context_from or "auto"), stride)
    streaming = camera is not None or watch_dir is not None or any(_is_video(p) for p in inputs or [])
    to_stdout = json_out == "-"
    run = Run(scanner, out, json_out, quiet, err if to_stdout else Console(), streaming)
    if not quiet:
        d = scanner.describe()
        run.console.print(f"model {d['model']} ({d['runtime']}, {d['threads'] or 'default'} threads, batch {d['batch_size']}"
                          f"{', device profile ' + d['profile'] if d['profile'] else ''})  tile {d['tile_size']}px  "
                          f"threshold {d['threshold']:.3f}", highlight=False)
        run.console.print(f"context: {scanner.context.describe()} (field-level; --no-context for tiles alone)"
                          if scanner.context is not None else f"context: {scanner.context_notice or 'off (--no-context)'}",
                          highlight=False)
    if slides and cluster:
        _run_slides_on_cluster(run, slides, cluster, mpp, level)
    elif slides:
        _run_slides(run, slides, mpp, level, resume, checkpoint_every)
    if slides:
        if not (inputs or camera is not None or watch_dir is not None):
            return _report_slides(run)
    sources = _open_sources(inputs, camera, watch_dir, policy, timeout, skip_existing, settle)
    json_sink = _json_lines(run)
    try:
        for source in sources:
            _run_source(run, source, json_sink, stride, policy, max_frames, show)
    finally:
        if json_sink is not None:
            json_sink.write_summary({"scanner": scanner.describe(), "sources": run.summaries})
            json_sink.finish()
    _report(run)


def _slide_inputs(inputs, max_pixels):
    from edgecnn.scan.image import set_max_pixels
    from edgecnn.scan.slidecli import split_inputs

    try:
        set_max_pixels(max_pixels)
        return split_inputs(inputs, max_pixels)
    except ValueError as e:
        fail(str(e))


def _run_slides(run: Run, slides, mpp, level, resume, checkpoint_every) -> None:
    from edgecnn.scan.slidecli import scan_one

    for path in slides:
        rec = scan_one(path, run.scanner, run.out, mpp=mpp, level=level, rescale=run.scanner.rescale,
                       resume=resume, checkpoint_s=checkpoint_every, console=None if run.quiet else run.console)
        if "error" in rec:
            run.console.print(f"[red]error[/red] {escape(rec['error'])}", highlight=False)
        run.slides.append(rec)


def _run_slides_on_cluster(run: Run, slides, cluster: str, mpp, level) -> None:
    from edgecnn.scan.cluster import ClusterError, scan_slides
    from edgecnn.scan.slidecli import cluster_progress

    try:
        with cluster_progress(None if run.quiet else run.console, len(slides)) as tick:
            result = scan_slides(slides, run.scanner, run.out, cluster, mpp=mpp, level=level,
                                 rescale=run.scanner.rescale, progress=tick)
    except ClusterError as e:
        fail(str(e))
    for rec in result["slides"]:
        if "error" in rec:
            run.console.print(f"[red]error[/red] {escape(rec['error'])}", highlight=False)
    run.slides.extend(result["slides"])
    run.cluster = result["cluster"]


def _report_slides(run: Run) -> None:
    from edgecnn.scan.slidecli import slide_table

    if run.json_out != "-":
        run.console.print(slide_table(run.slides))
        for r in run.slides:
            if "outputs" in r:
                o = r["outputs"]
                run.console.print(f"{escape(Path(r['slide']).name)}: {o['overlay']}, {o['heat']}, {o['geojson']} "
                                  "(QuPath: File > Import objects)", highlight=False)
    doc = {"scanner": run.scanner.describe(), "slides": run.slides}
    if run.cluster is not None:
        doc["cluster"] = run.cluster
        if run.json_out != "-":
            c = run.cluster
            rate = f", {c['tissue_tiles_per_s']:,.0f} tissue tiles/s" if c["tissue_tiles_per_s"] else ""
            run.console.print(f"cluster {escape(c['address'])}: {c['workers']} workers, {c['chunks']} tasks, "
                              f"{c['skipped']} slides already complete, {c['wall_seconds']:.1f} s{rate}", highlight=False)
    emit_json(doc, run.json_out)
    if any("error" in r for r in run.slides):
        raise typer.Exit(1)


def _is_video(path: Path) -> bool:
    from edgecnn.scan.sources import is_video

    return is_video(path)


def _check_args(inputs, camera, watch_dir, policy) -> None:
    if not inputs and camera is None and watch_dir is None:
        fail("give one or more IMAGE or VIDEO files, --camera N, or --watch DIR (see --help)")
    if camera is not None and watch_dir is not None:
        fail("--camera and --watch are two live sources; give one")
    if policy not in (None, "newest", "all"):
        fail(f"--policy must be 'newest' or 'all', not {policy!r}")


def _load_scanner(model, threads, batch_size, min_tissue, rescale, threshold, edge, no_verify, context="auto",
                  stride=None):
    from edgecnn.scan.model import ModelNotFound, default_model_path
    from edgecnn.scan.scanner import Scanner

    try:
        if model is not None and Path(model).is_dir():   # a release folder, as bench takes: its fastest artifact
            model = default_model_path(model)
        scanner = Scanner(model, threads=threads, batch_size=batch_size, min_tissue=min_tissue, rescale=rescale,
                          threshold=threshold, edge=edge, verify=not no_verify, context=context)
        if scanner.context is not None and stride is not None:
            scanner.context.check_geometry(scanner.tile_size, stride, f"--stride {stride}")
        return scanner
    except (ModelNotFound, ValueError, OSError, ImportError, RuntimeError) as e:
        fail(str(e))


def _open_sources(inputs, camera, watch_dir, policy, timeout, skip_existing, settle) -> list:
    from edgecnn.scan.sources import Camera, SourceError, open_inputs
    from edgecnn.scan.watch import FolderWatch

    try:
        sources = open_inputs(inputs or [])
        if camera is not None:
            sources.append(Camera(camera))
        if watch_dir is not None:
            sources.append(FolderWatch(watch_dir, policy=policy or "newest", settle_s=settle,
                                       include_existing=not skip_existing, timeout=timeout))
    except SourceError as e:
        fail(str(e))
    if timeout is not None and camera is not None:
        _stop_after(sources[-1], timeout)
    return sources


def _stop_after(source, seconds: float) -> None:
    import threading

    def stop() -> None:
        source.stopped_by = "timeout"
        source.close()

    threading.Timer(seconds, stop).start()


def _json_lines(run: Run):
    if not run.json_out or not run.streaming:
        return None
    from edgecnn.scan.sinks import JsonLines

    return JsonLines(run.json_out)


def _sinks(run: Run, source, json_sink, show: bool, stop) -> list:
    from edgecnn.scan.sinks import PngFiles, VideoOut, Window, video_target

    sinks: list = [json_sink] if json_sink is not None else []
    if source.kind in ("video", "camera"):
        sinks.append(VideoOut(video_target(run.out, source.name), fps=source.fps))
    else:
        sinks.append(PngFiles(run.out))
    if show:
        try:
            sinks.append(Window(on_quit=stop))
        except (RuntimeError, Exception) as e:  # noqa: BLE001 — cv2.error is not importable without cv2
            fail(str(e))
    return sinks


def _run_source(run: Run, source, json_sink, stride, policy, max_frames, show) -> None:
    from edgecnn.scan.live import LivePipeline

    holder: dict[str, Any] = {}
    sinks = _sinks(run, source, json_sink, show, lambda: holder["p"].stop())
    video = next((s for s in sinks if s.name == "video"), None)

    def on_frame(item, report) -> None:
        if not run.streaming:   # a camera runs for hours: its frames go to the JSON lines, not memory
            run.records.append(_record(item))
        if not run.quiet and run.streaming:
            _print_frame(run.console, item, report)

    pipeline = LivePipeline(source, run.scanner, sinks, policy=policy, stride=stride, max_frames=max_frames,
                            on_frame=on_frame)
    holder["p"] = pipeline
    if not run.quiet and run.streaming:
        run.console.print(f"{source.kind} {source.name} (policy {pipeline.report.policy}; Ctrl-C stops)", highlight=False)
    report = pipeline.run()
    summary = report.summary()
    if video is not None and video.frames:
        summary["video"] = str(video.path)
    run.summaries.append(summary)


def _record(item) -> dict[str, Any]:
    from edgecnn.scan.sinks import frame_record

    rec = frame_record(item, grid=True)
    if "png" in item.outputs:
        rec["overlay"] = str(item.outputs["png"])
    return rec


def _print_frame(console: Console, item, report) -> None:
    f = item.frame
    if not item.ok:
        console.print(f"[red]skipped[/red] {escape(f.name)}: {escape(item.error)}", highlight=False)
        return
    r = item.result
    console.print(f"#{f.index} {escape(f.name)}: {r.tissue_tiles} tissue tiles, IDC {100 * r.idc_share:.1f}%, "
                  f"scan {item.scan_ms:.0f} ms, {report.fps:.1f} fps, dropped {report.dropped}", highlight=False)


def _table(records: list[dict[str, Any]], title: str) -> Table:
    t = Table(title=title)
    for col in ("image", "tiles", "tissue tiles", "IDC-positive share", "ms / frame"):
        t.add_column(col, justify="left" if col == "image" else "right")
    for r in records:
        if "error" in r:
            continue   # listed under the table, whole: a long message does not fit a number's column
        t.add_row(escape(r["name"]), str(r["tiles"]), str(r["tissue_tiles"]),
                  f"{100 * r['idc_share']:.1f}%", f"{r['ms_per_frame']:.1f}")
    return t


def _stream_table(summaries: list[dict[str, Any]]) -> Table:
    from rich import box

    t = Table(title="live loop (ms per frame: p50/p99; bound = 1000 / mean of the slowest stage)", box=box.SIMPLE)
    for col in ("source", "frames", "failed", "dropped", "capture", "scan", "render", "fps", "bound"):
        t.add_column(col, justify="left" if col == "source" else "right", no_wrap=col != "source")
    for s in summaries:
        st = s["stages_ms"]
        cell = [f"{st[k]['p50']:.0f}/{st[k]['p99']:.0f}" if k in st else "-" for k in ("capture", "scan", "render")]
        t.add_row(escape(s["source"]["name"]), str(s["rendered"]), str(s["failed"]), str(s["dropped"]), *cell,
                  f"{s['fps']:.1f}", f"{s['bound_fps']:.1f}" if s["bound_fps"] else "-")
    return t


def _report(run: Run) -> None:
    if run.streaming:
        if not run.quiet or run.json_out != "-":
            run.console.print(_stream_table(run.summaries))
        for s in run.summaries:
            if s.get("video"):
                run.console.print(f"annotated video: {s['video']}", highlight=False)
            if s["source"].get("stopped_by"):
                run.console.print(f"{s['source']['name']}: stopped by {s['source']['stopped_by']}", highlight=False)
        return
    if run.json_out != "-":
        if run.slides:
            from edgecnn.scan.slidecli import slide_table

            run.console.print(slide_table(run.slides))
        run.console.print(_table(run.records, f"scan → {run.out}"))
        overlays = [r["overlay"] for r in run.records if r.get("overlay")]
        for o in overlays[:5]:
            run.console.print(f"overlay: {o}", highlight=False, soft_wrap=True)
        if len(overlays) > 5:
            run.console.print(f"… and {len(overlays) - 5} more overlays in {run.out}", highlight=False)
        for r in run.records:
            if "error" in r:
                run.console.print(f"[red]not scanned[/red] {escape(r['name'])}: {escape(r['error'])}", highlight=False)
    payload = run.scanner.describe() | {"images": run.records, "live": run.summaries[0] if run.summaries else None}
    if run.slides:
        payload["slides"] = run.slides
    emit_json(payload, run.json_out)
    failed = [r for r in run.records + run.slides if "error" in r]
    if failed:
        # Nothing scanned: the inputs were wrong (2, like any bad argument); some scanned: a partial run (1).
        raise typer.Exit(2 if len(failed) == len(run.records + run.slides) else 1)


def tune_command(
    frame: Annotated[Optional[Path], typer.Argument(
        help="A real field of view to time on (PNG/JPEG...). Default: the mosaic of --patient from --data.",
        show_default=False)] = None,
    models: Annotated[Optional[Path], typer.Option("--models", help="Folder of artifacts to compare (default: the release folder).")] = None,
    data: Annotated[Optional[list[str]], typer.Option("--data", "-d", help="Kaggle-layout IDC folder(s) to find --patient in "
                                                      "for the default frame (repeatable). Default: $EDGECNN_DATA (':'-separated).")] = None,
    patient: Annotated[str, typer.Option(help="Patient whose mosaic is the default frame (a full patch grid: 8863, 10253, 10254, 14082).")] = "14082",
    threads: Annotated[Optional[str], typer.Option("--threads", "-t", help="Comma-separated thread counts to try (default: 1 … all cores).")] = None,
    batch_sizes: Annotated[str, typer.Option("--batch-sizes", "-b", help="Comma-separated tile batch sizes to try.")] = "64,256",
    runtimes: Annotated[Optional[str], typer.Option("--runtimes", "-r", help="Comma-separated runtimes (default: every installed one).")] = None,
    max_drop: Annotated[float, typer.Option("--max-drop", help="Accuracy you trade for speed: an artifact may be chosen "
                                            "when its recorded test balanced accuracy is at most this far below the "
                                            "best one's (a student model in the folder then can win).")] = 0.01,
    rounds: Annotated[int, typer.Option(help="Interleaved rounds (A B C A B C ...); the median of round medians ranks.")] = 3,
    runs: Annotated[int, typer.Option(help="Timed scans per candidate per round.")] = 5,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Profile to write (default: ~/.cache/edgecnn/device-profile.json, or $EDGECNN_DEVICE_PROFILE).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Measure and print, but write no profile.")] = False,
    json_out: Annotated[Optional[str], typer.Option("--json", help=JSON_HELP)] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Measure which release artifact, runtime, thread count and batch size scan a real frame
    fastest on this device, and write the device profile that `edgecnn scan` and `Scanner` then
    use (explicit --model/--threads/--batch-size still win).

    Example: edgecnn tune --data ~/idc --threads 1,2
    """
    from edgecnn.scan.tune import save_profile, tune

    image = _tune_frame(frame, data, patient)
    console = err if json_out == "-" else Console()
    try:
        with _status(console, quiet) as say:
            prof = tune(image, models, threads=int_list(threads, "--threads"), batch_sizes=int_list(batch_sizes, "--batch-sizes"),
                        runtimes=runtimes.split(",") if runtimes else None, rounds=rounds, runs=runs, max_drop=max_drop,
                        progress=say)
    except (FileNotFoundError, ValueError) as e:
        fail(str(e))
    if json_out != "-":
        console.print(_tune_table(prof))
    spread = max(r["spread"] for r in prof["rows"])
    if spread > 0.3:
        err.print(f"[yellow]warning:[/] round medians spread up to {100 * spread:.0f}%: the machine was busy, "
                  "so close candidates may be ranked by chance; rerun `edgecnn tune` when it is idle", highlight=False)
    if not dry_run:
        console.print(f"device profile written to {save_profile(prof, out)}", highlight=False)
    emit_json(prof, json_out)


def _tune_frame(frame: Optional[Path], data: Optional[str], patient: str):
    from edgecnn.scan.image import ImageError, read_image

    if frame is not None:
        try:
            return read_image(frame)
        except ImageError as e:
            fail(str(e))
    import os

    from edgecnn.data.layout import DataError
    from edgecnn.data.mosaic import build_mosaic

    roots = [r for d in (data or [os.environ.get("EDGECNN_DATA", "")]) for r in d.split(":") if r]
    if not roots:
        fail("give a FRAME image, or --data (or $EDGECNN_DATA) to build one from a patient's patches")
    folder = next((Path(r) / patient for r in roots if (Path(r) / patient).is_dir()), Path(roots[0]) / patient)
    try:
        return build_mosaic(folder).image
    except DataError as e:
        fail(str(e))


class _status:
    """A one-line rich status ("round 2/3: ...") while tuning; silent with --quiet."""

    def __init__(self, console: Console, quiet: bool):
        self.console, self.quiet, self._st = console, quiet, None

    def __enter__(self):
        if self.quiet:
            return None
        self._st = self.console.status("tuning")
        self._st.__enter__()
        return lambda msg: self._st.update(f"tuning: {msg}")

    def __exit__(self, *exc) -> None:
        if self._st is not None:
            self._st.__exit__(*exc)


def _tune_table(prof: dict[str, Any]) -> Table:
    from rich import box

    t = Table(box=box.SIMPLE, title=f"scan of a {prof['frame']['width']}×{prof['frame']['height']} frame "
                    f"({prof['frame']['tissue_tiles']} tissue tiles), median of {prof['rounds']} round p50s")
    for col in ("artifact", "runtime", "threads", "batch", "ms / frame", "spread", "label diff"):
        t.add_column(col, justify="left" if col in ("artifact", "runtime") else "right", no_wrap=True)
    c = prof["choice"]
    for r in sorted(prof["rows"], key=lambda r: r["ms_per_frame"]):
        mark = "bold green" if all(r[k] == c[k] for k in ("artifact", "runtime", "threads", "batch_size")) else None
        t.add_row(r["artifact"], r["runtime"], str(r["threads"]), str(r["batch_size"]), f"{r['ms_per_frame']:.1f}",
                  f"{100 * r['spread']:.0f}%", f"{100 * r['label_diff']:.2f}%" + ("" if r["eligible"] else " ✗"), style=mark)
    return t


def mosaic_command(
    patient_dir: Annotated[Path, typer.Argument(help="One patient's folder in the Kaggle layout (<patient>/0, <patient>/1).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Mosaic image to write (PNG).")],
    labels_out: Annotated[Optional[Path], typer.Option(
        help="Also write the label mask (PNG, grey: 0 = no patch, 128 = no IDC, 255 = IDC).")] = None,
    overlay_out: Annotated[Optional[Path], typer.Option(
        help="Also write the mosaic with the labels drawn over it (IDC red, outlined; no IDC faint yellow).")] = None,
    json_out: Annotated[Optional[str], typer.Option("--json", help="Write the mosaic's summary to FILE, or '-' for stdout.")] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Rebuild a patient's tissue region from its patches (x/y in the file names give each patch's
    place). Use it to see a real field of view, or to scan it and compare the heat map with the labels.

    Example: edgecnn data mosaic ~/idc/14082 --out 14082.png --overlay-out 14082.labels.png
    """
    from edgecnn.data.layout import DataError
    from edgecnn.data.mosaic import build_mosaic, label_png, save_png
    from edgecnn.scan.overlay import label_overlay

    try:
        m = build_mosaic(patient_dir)
    except DataError as e:
        fail(str(e))
    save_png(out, m.image)
    if labels_out:
        save_png(labels_out, label_png(m.label_mask))
    if overlay_out:
        save_png(overlay_out, label_overlay(m.image, m.label_mask))
    summary = m.summary() | {"image": str(out), "labels": str(labels_out) if labels_out else None,
                             "overlay": str(overlay_out) if overlay_out else None}
    for s in m.skipped:
        err.print(f"[yellow]skipped[/yellow] {escape(s['file'])}: {escape(s['reason'])}", highlight=False)
    if emit_json(summary, json_out):
        return
    if not quiet:
        Console().print(f"{m.patient}: {len(m.tiles)} patches ({summary['idc_patches']} IDC) → "
                        f"{m.image.shape[1]}×{m.image.shape[0]} px, origin {m.origin} → {out}", highlight=False)
