"""`export_run`: one run folder → artifacts + manifests in exported/<run>/, each checked on the
run's test patients before its manifest is final.

Two exports into one folder at once: the second waits (saying for which process) on an flock
beside the folder (``.<out>.export.lock``, removed when released), then checks for existing
artifacts as if it had started later: without --force it is refused, with --force it replaces
them whole. Without the lock both passed the check, and their files replaced one another one
at a time, so an artifact could end up beside the other export's manifest (a sha256 mismatch).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from edgecnn.export.errors import ExportError, ToolMissing
from edgecnn.formats import FormatSpec, format_names, formats_for, get_format
from edgecnn.fsutil import TEMP_PREFIX, exclusive, pid_alive
from edgecnn.manifest import manifest_path, write_manifest
from edgecnn.progress import Bar
from edgecnn.quantize.rundata import as_run
from edgecnn.train.run import RunError, RunFolder


log = logging.getLogger("edgecnn.export")


class ExportResults(list):
    """The manifests written (a list), plus ``skipped``: [{"key", "reason"}] for rows not made,
    and ``out``: the folder they were written to."""

    def __init__(self, *a):
        super().__init__(*a)
        self.skipped: list[dict[str, str]] = []
        self.out: Path | None = None


def default_out(run: RunFolder) -> Path:
    return Path("exported") / run.name


def select_specs(fmt: str, precision: str | None) -> list[FormatSpec]:
    """Rows of edgecnn.formats for --format/--precision; an unknown pair names the known ones."""
    fmt = fmt.lower()
    try:
        if precision is None:
            return formats_for(fmt)
        if fmt == "all":
            rows = []
            for name in format_names():
                try:
                    rows.append(get_format(name, precision))
                except ValueError:
                    pass
            if not rows:
                raise ValueError(f"no format has precision {precision!r}")
            return rows
        return [get_format(fmt, precision)]
    except ValueError as e:
        raise ExportError(f"{e}. See `edgecnn export --help` for the format × precision table.") from None


def parse_batch(batch: int | str | None) -> int | str | None:
    if batch is None or batch == "dynamic":
        return batch
    try:
        b = int(batch)
    except (TypeError, ValueError):
        raise ExportError(f"--batch-size must be a positive integer or 'dynamic'; got {batch!r}") from None
    if b < 1:
        raise ExportError(f"--batch-size must be a positive integer or 'dynamic'; got {b}")
    return b


def _exporter(spec: FormatSpec):
    module, func = spec.exporter.split(":")
    return getattr(importlib.import_module(module), func)


def export_run(
    run: str | Path | RunFolder,
    formats: str = "all",
    precision: str | None = None,
    out: str | Path | None = None,
    force: bool = False,
    io: str = "float",
    batch: int | str | None = None,
    data: Any = None,
    progress: bool = True,
    *,
    limit: int | None = None,
    calib_size: int | None = None,
    check_parts: tuple[str, ...] = ("val", "test"),
    seed: int = 0,
    console=None,
) -> ExportResults:
    """Export a trained run; returns the manifests written (``.skipped`` lists rows not made and why,
    ``.out`` the folder they are in).

    formats: tflite | onnx | openvino | trt | all.  precision: a precision of that format
    (see edgecnn.formats; ``int8`` picks the format's best int8), None = every precision.
    io: float | int8 | uint8 | uint8-int8 (in-out) types of int8 TFLite graphs.  batch: None (resizable / dynamic),
    "dynamic", or a fixed batch size.  ``limit`` caps patches per split part (quick checks, tests).
    With ``formats="all"``, rows that need TensorRT on a machine without it, or a QAT model the
    run does not have, are skipped with the reason; asked for by name, they are errors.

    All or nothing: every artifact is made and checked in a hidden staging folder beside ``out``
    and moved in only when all of them passed, so a failed export leaves nothing to block a retry.
    """
    from edgecnn.export.tflite import IO_TYPES

    if io not in IO_TYPES:
        raise ExportError(f"--io must be one of {', '.join(IO_TYPES)}, not {io!r}")
    batch = parse_batch(batch)
    run = as_run(run)
    run.require_model()
    run.model_info()
    results = ExportResults()
    specs = _available_specs(run, select_specs(formats, precision), formats.lower() == "all", results.skipped)
    if io != "float" and not any(s.format == "tflite" and s.precision.startswith("int8") for s in specs):
        raise ExportError(f"--io {io} applies to int8 TFLite graphs only; the other formats take float input")
    results.out = Path(out) if out is not None else default_out(run)
    names = [s.filename(run.model_name) for s in specs]
    from edgecnn.export.context import CALIB_SIZE, ExportContext

    with exclusive(out_lock(results.out), on_wait=lambda pid: _say_waiting(pid, results.out)):
        if not force:
            _refuse_existing(results.out, names)
        with staging(results.out) as stage:
            ctx = ExportContext(run, stage, io=io, batch=batch, data=data, limit=limit,
                                calib_size=CALIB_SIZE if calib_size is None else calib_size, seed=seed, console=console)
            try:
                _make_all(ctx, specs, stage, check_parts, progress)
            finally:
                ctx.close()
            publish(stage, results.out)
    from edgecnn.manifest import read_manifest

    results.extend(read_manifest(results.out / name) for name in names)
    return results


def out_lock(out_dir: Path) -> Path:
    """The lock file of exports into ``out_dir``: beside it (the folder may not exist yet), hidden."""
    out_dir = Path(out_dir).resolve()
    return out_dir.parent / f"{TEMP_PREFIX}{out_dir.name}.export.lock"


def _say_waiting(pid: int | None, out_dir: Path) -> None:
    who = f"process {pid}" if pid else "another process"
    log.warning("waiting for %s, which is exporting into %s; this export goes on when it is done", who, out_dir)


def _available_specs(run: RunFolder, specs: list[FormatSpec], everything: bool, skipped: list) -> list[FormatSpec]:
    """Cheap checks before any conversion: rows this machine or run cannot make are skipped
    (``--format all``) or refused (asked for by name)."""
    for needs, preflight in ((lambda s: s.needs_gpu, "edgecnn.export.tensorrt:preflight"),
                             (lambda s: s.format == "vela", "edgecnn.export.vela:preflight")):
        if any(needs(s) for s in specs):
            module, func = preflight.split(":")
            try:
                getattr(importlib.import_module(module), func)()
            except ToolMissing as e:
                if not everything:
                    raise
                skipped += [{"key": s.key, "reason": str(e)} for s in specs if needs(s)]
                specs = [s for s in specs if not needs(s)]
    reason = None
    if any(s.needs_qat for s in specs):
        try:
            run.require_qat_model()
        except RunError as e:       # no QAT model, or one an interrupted quantize left
            reason = str(e)
    if reason:
        if not everything:
            raise RunError(reason + " (or pick a non-QAT precision such as --precision int8-ptq)")
        skipped += [{"key": s.key, "reason": reason} for s in specs if s.needs_qat]
        specs = [s for s in specs if not s.needs_qat]
    return specs


def _refuse_existing(out_dir: Path, names: list[str]) -> None:
    existing = [n for n in names if (out_dir / n).exists() or manifest_path(out_dir / n).exists()]
    if existing:
        raise ExportError(f"{out_dir}: {', '.join(existing)} already exist(s); add --force to overwrite, "
                          "or choose another --out folder")


def _make_all(ctx, specs: list[FormatSpec], stage: Path, check_parts: tuple[str, ...], progress: bool) -> None:
    """Convert, write the manifest, check on the run's patients, rewrite the manifest: per artifact."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from edgecnn.export.manifests import build_manifest
    from edgecnn.export.verify import check_artifact

    bar = Bar(TextColumn("export"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
              TimeElapsedColumn(), total=len(specs), enabled=progress)
    with bar:
        for spec in specs:
            path = stage / spec.filename(ctx.model_name)
            bar.describe(f"{spec.key} → {path.name}")
            extra = _exporter(spec)(ctx, spec, path)
            # An NPU-only file is scored as the integer TFLite it was compiled from (its exporter says which).
            check_path = Path(extra.pop("check_with", path))
            manifest = build_manifest(ctx, spec, extra)
            # Written once before the check so the runtime reads (and sha256-verifies) what a device will.
            write_manifest(path, manifest)
            manifest["metrics"] = check_artifact(ctx, check_path, ctx.threshold(spec), check_parts)
            write_manifest(path, manifest)
            bar.advance()


STAGE_OWNER = "owner"   # the exporting process's pid, inside its staging folder


@contextlib.contextmanager
def staging(out_dir: Path):
    """A hidden folder beside ``out_dir`` (same file system, so moves are renames), removed on exit.
    Its dot name keeps it out of artifact discovery if a killed process leaves it behind, and the
    next export into ``out_dir`` removes what a killed one left (its ``owner`` pid is gone)."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    prefix = f"{TEMP_PREFIX}{out_dir.name}.export-"
    remove_orphaned_stages(out_dir.parent, prefix)
    stage = Path(tempfile.mkdtemp(prefix=prefix, dir=out_dir.parent))
    (stage / STAGE_OWNER).write_text(str(os.getpid()))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def remove_orphaned_stages(parent: Path, prefix: str) -> list[Path]:
    """Staging folders under ``parent`` whose exporting process no longer runs (killed mid-export):
    removed; a concurrent export's own folder is left alone."""
    removed = []
    for d in parent.glob(f"{prefix}*"):
        try:
            pid = int((d / STAGE_OWNER).read_text())
        except (OSError, ValueError):
            pid = None          # an older edgecnn's folder, or killed before writing its owner
        if pid is not None and pid_alive(pid):
            continue
        if pid is None and time.time() - d.stat().st_mtime < 60:
            continue            # may be a concurrent export that has not written its owner yet
        shutil.rmtree(d, ignore_errors=True)
        removed.append(d)
    return removed


def publish(stage: Path, out_dir: Path) -> None:
    """Move every staged file into ``out_dir``: data files first, manifests last, so a manifest
    never names a file that is not there yet."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files = sorted((f for f in stage.iterdir() if f.is_file() and f.name != STAGE_OWNER),
                   key=lambda f: (f.suffix == ".json", f.name))
    for f in files:
        os.replace(f, out_dir / f.name)
