"""`export_run`: one run folder → artifacts + manifests in exported/<run>/, each checked on the
run's test patients before its manifest is final."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from edgecnn.export.errors import ExportError, ToolMissing
from edgecnn.formats import FormatSpec, format_names, formats_for, get_format
from edgecnn.manifest import manifest_path, write_manifest
from edgecnn.progress import Bar
from edgecnn.quantize.rundata import as_run
from edgecnn.train.run import RunError, RunFolder


class ExportResults(list):
    """The manifests written (a list), plus ``skipped``: [{"key", "reason"}] for rows not made."""

    def __init__(self, *a):
        super().__init__(*a)
        self.skipped: list[dict[str, str]] = []


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
        raise ExportError(f"--batch must be a positive integer or 'dynamic'; got {batch!r}") from None
    if b < 1:
        raise ExportError(f"--batch must be a positive integer or 'dynamic'; got {b}")
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
    """Export a trained run; returns the manifests written (``.skipped`` lists rows not made and why).

    formats: tflite | onnx | openvino | trt | all.  precision: a precision of that format
    (see edgecnn.formats; ``int8`` picks the format's best int8), None = every precision.
    io: float | int8 | uint8 input/output of int8 TFLite graphs.  batch: None (resizable / dynamic),
    "dynamic", or a fixed batch size.  ``limit`` caps patches per split part (quick checks, tests).
    With ``formats="all"``, rows that need TensorRT on a machine without it, or a QAT model the
    run does not have, are skipped with the reason; asked for by name, they are errors.
    """
    from edgecnn.export.context import CALIB_SIZE, ExportContext
    from edgecnn.export.manifests import build_manifest
    from edgecnn.export.tflite import IO_TYPES
    from edgecnn.export.verify import check_artifact

    if io not in IO_TYPES:
        raise ExportError(f"--io must be one of {', '.join(IO_TYPES)}, not {io!r}")
    batch = parse_batch(batch)
    specs = select_specs(formats, precision)
    run = as_run(run)
    run.require_model()
    run.model_info()
    out_dir = Path(out) if out is not None else default_out(run)
    results = ExportResults()
    everything = formats.lower() == "all"

    # Cheap checks for every artifact first: nothing is converted until all of them pass.
    if any(s.needs_gpu for s in specs):
        from edgecnn.export.tensorrt import preflight

        try:
            preflight()
        except ToolMissing as e:
            if not everything:
                raise
            results.skipped += [{"key": s.key, "reason": str(e)} for s in specs if s.needs_gpu]
            specs = [s for s in specs if not s.needs_gpu]
    if any(s.needs_qat for s in specs) and not run.qat_model_path.exists():
        reason = f"{run.path}: no QAT model; run `edgecnn quantize {run.path}` first"
        if not everything:
            raise RunError(reason + " (or pick a non-QAT precision such as int8-ptq)")
        results.skipped += [{"key": s.key, "reason": reason} for s in specs if s.needs_qat]
        specs = [s for s in specs if not s.needs_qat]
    if io != "float" and not any(s.format == "tflite" and s.precision.startswith("int8") for s in specs):
        raise ExportError(f"--io {io} applies to int8 TFLite graphs only; the other formats take float input")
    model_name = run.model_name
    targets = [(s, out_dir / s.filename(model_name)) for s in specs]
    if not force:
        existing = [p for _, p in targets if p.exists() or manifest_path(p).exists()]
        if existing:
            raise ExportError(f"{', '.join(str(p) for p in existing)} already exist(s); pass force=True (--force) "
                              "to overwrite, or choose another --out folder")

    ctx = ExportContext(run, out_dir, io=io, batch=batch, data=data, limit=limit,
                        calib_size=CALIB_SIZE if calib_size is None else calib_size, seed=seed, console=console)
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    bar = Bar(TextColumn("export"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
              TimeElapsedColumn(), total=len(targets), enabled=progress)
    try:
        with bar:
            for spec, path in targets:
                bar.describe(f"{spec.key} → {path.name}")
                extra = _exporter(spec)(ctx, spec, path)
                manifest = build_manifest(ctx, spec, extra)
                # Written once before the check so the runtime reads (and sha256-verifies) what a device will.
                write_manifest(path, manifest)
                manifest["metrics"] = check_artifact(ctx, path, ctx.threshold(spec), check_parts)
                write_manifest(path, manifest)
                from edgecnn.manifest import read_manifest

                results.append(read_manifest(path))
                bar.advance()
    finally:
        ctx.close()
    return results
