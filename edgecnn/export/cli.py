"""`edgecnn quantize` and `edgecnn export`: thin wrappers over quantize_run / export_run.

Registered on the main app by edgecnn/cli.py:  app.command("quantize")(quantize); app.command("export")(export)
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, List, Optional

import typer

from edgecnn.clikit import JSON_HELP, MULTI_DATA_HELP, Quiet, Verbose, data_spec, emit_json, fail
from edgecnn.formats import FORMATS

# Indented like the docstring it is appended to, so the help's dedent keeps the columns aligned.
_FORMAT_TABLE = "".join(f"\n      {f.format:<9} {f.precision:<9} {f.description}" for f in FORMATS)
LIMIT_HELP = "Use at most this many patches per split part (quick try); as `bench -n`."


def quantize(
    run: Annotated[Path, typer.Argument(help="Run folder made by `edgecnn train` (holds model.keras).")],
    epochs: Annotated[int, typer.Option(help="QAT fine-tuning epochs (early stopping on val balanced accuracy).")] = 3,
    lr: Annotated[float, typer.Option(help="Learning rate; keep it low, the float model is already trained.")] = 1e-5,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", help="Patches per training step.")] = 64,
    bn: Annotated[str, typer.Option(help="BatchNorm during QAT: freeze (default: inference mode, stats kept), "
                                         "reestimate (train, then recompute stats) or train.")] = "freeze",
    data: Annotated[Optional[List[Path]], typer.Option("--data", "-d", help="Data folder, if not the one in the run's config.json." + MULTI_DATA_HELP)] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", help=LIMIT_HELP)] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted QAT run from <run>/qat/ckpt.")] = False,
    activations: Annotated[str, typer.Option("--activations", help="Activation ranges: asymmetric (TFLite's int8) or "
                                             "symmetric (TensorRT's INT8; `export --precision int8-trt` then uses this "
                                             "QAT model).")] = "asymmetric",
    json_out: Annotated[Optional[str], typer.Option("--json", help=JSON_HELP)] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Quantization-aware fine-tuning of a trained run (8-bit, per-channel conv weights).

    Fine-tunes the run's best float model on the run's own training patients, keeps the epoch
    with the best validation balanced accuracy and writes <run>/qat/ (model.keras, model.json
    with the new threshold and any ops that stay float, metrics.json). Then:
    `edgecnn export RUN --format tflite --precision int8`.

    Example: edgecnn quantize runs/basic --epochs 3
    """
    from rich.console import Console

    from edgecnn.quantize import quantize_run
    from edgecnn.train.run import RunError

    silent = quiet or json_out == "-"
    console = Console(stderr=True)
    try:
        m = quantize_run(run, epochs=epochs, lr=lr, batch_size=batch_size, data=data_spec(data), progress=not silent,
                         resume=resume, bn=bn, activations=activations, limit=limit,
                         console=None if silent else console)
    except (RunError, ValueError) as e:
        fail(e)
    if emit_json(m, json_out):
        return
    console.print(f"val balanced accuracy: float {m['val_bac_float']:.4f} → QAT {m['val_bac_qat']:.4f} "
                  f"(training-mode estimate {m['val_bac_train_mode']:.4f}); test {m['test']['balanced_accuracy']:.4f}")
    if m["float_ops"]:
        console.print(f"[yellow]ops that stay float in the int8 graph: {', '.join(m['float_ops'])}")


def export(
    run: Annotated[Optional[Path], typer.Argument(help="Run folder made by `edgecnn train` (and `edgecnn quantize` "
                                                       "for QAT); with --format vela, also a shipped int8 "
                                                       "TFLite file.")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="tflite | onnx | openvino | trt | all.")] = "all",
    precision: Annotated[Optional[str], typer.Option(
        "--precision", "-p", help="fp32, fp16, dynamic, int8-qat, int8-ptq, int8-trt (TensorRT's symmetric INT8 ONNX), or int8 (the format's best int8). "
                                  "Default: every precision of the format.")] = None,
    io: Annotated[str, typer.Option(help="Input/output type of int8 TFLite graphs: float, int8, uint8 (uint8 takes "
                                         "raw pixels), or uint8-int8 (raw pixels in, int8 out: integer-only NPUs "
                                         "such as Ethos-U run the whole graph).")] = "float",
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default exported/<run name>).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite artifacts that already exist.")] = False,
    batch: Annotated[Optional[str], typer.Option("--batch-size", "-b", help="Batch size baked into the graph: an "
                                                 "integer, or 'dynamic' (default: resizable/dynamic).")] = None,
    batch_alias: Annotated[Optional[str], typer.Option("--batch", hidden=True)] = None,  # the old spelling
    data: Annotated[Optional[List[Path]], typer.Option("--data", "-d", help="Data folder, if not the one in the run's config.json." + MULTI_DATA_HELP)] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", "-n", help="Check on at most this many patches per split "
                                                                   "part (quick try); as `bench -n`.")] = None,
    check_trt: Annotated[Optional[Path], typer.Option("--check-trt", help="Only check an ONNX file against TensorRT's "
                                                      "explicit-quantization rules and list the violations (no RUN); "
                                                      "exit 1 when there are any.")] = None,
    json_out: Annotated[Optional[str], typer.Option("--json", help=JSON_HELP)] = None,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Export a trained run to deployable artifacts, each checked on the run's test patients.

    Writes <model>-<precision><suffix> plus a manifest (<file>.json: input shape/dtype/quantization,
    preprocessing, threshold, source run and split, test metrics, agreement with the float model,
    sha256, tool versions). With --format all, TensorRT rows are skipped on machines without an
    NVIDIA GPU + TensorRT, and QAT rows when the run has no QAT model. All or nothing: the
    artifacts are made in a hidden folder and moved into the output folder only when every one passed.

    Example: edgecnn export runs/basic --format tflite --precision int8 --out exported/basic
    Example: edgecnn export --check-trt exported/release/basic_cnn-int8-trt.onnx
    Example: edgecnn export exported/release/basic_cnn-int8-qat.tflite --format vela --data ~/idc
    (an Ethos-U NPU file from a shipped int8 TFLite: same weights, uint8 pixels in, int8 scores out)

    Formats × precisions (--format, --precision):
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from edgecnn.export import ExportError, export_run
    from edgecnn.train.run import RunError

    as_json = json_out == "-"
    console = Console(stderr=as_json)
    if check_trt is not None:
        return _check_trt(check_trt, json_out, console)
    if run is None:
        fail("give a RUN folder to export (e.g. edgecnn export runs/basic), or --check-trt FILE.onnx to check one")
    try:
        if run.is_file():
            res = _vela_from_file(run, format, data, out, force, limit, progress=not (quiet or as_json))
        else:
            res = export_run(run, format, precision, out=out, force=force, io=io, batch=batch or batch_alias,
                             data=data_spec(data), progress=not (quiet or as_json), limit=limit,
                             console=None if as_json else console)
    except (ExportError, RunError, ValueError, OSError) as e:
        fail(e)
    if emit_json({"out": str(res.out), "artifacts": list(res), "skipped": res.skipped}, json_out):
        return
    table = Table(title=f"exported {len(res)} artifact(s)")
    for col in ("file", "size", "test BAC", "agreement", "max |Δp|", "float ops"):
        table.add_column(col, justify="left" if col in ("file", "float ops") else "right")
    for m in res:
        test, ag = m["metrics"]["test"], m["metrics"]["agreement"]
        fo = m.get("float_ops")
        table.add_row(m["file"], f"{m['size_bytes'] / 1e6:.2f} MB", f"{test['balanced_accuracy']:.4f}",
                      f"{ag['agreement']:.4f}", f"{ag['max_abs_dp']:.4f}", "—" if fo is None else (", ".join(fo) or "none"))
    console.print(table)
    for reason, keys in skipped_by_reason(res.skipped).items():
        console.print(f"[yellow]skipped {', '.join(keys)}:[/] {escape(reason)}", soft_wrap=True)
    console.print(f"Output folder: [bold]{escape(str(res.out))}[/] ({len(res)} artifact(s), each with its .json manifest)",
                  soft_wrap=True)


def _vela_from_file(path: Path, fmt: str, data, out, force: bool, limit, progress: bool):
    import os

    from edgecnn.export.vela_artifact import vela_from_artifact

    if fmt.lower() != "vela":
        fail(f"{path} is a file: only --format vela starts from a shipped artifact; give the RUN folder "
             "(made by `edgecnn train`) for the other formats")
    spec = data_spec(data) or os.environ.get("EDGECNN_DATA")
    return vela_from_artifact(path, spec, out=out, force=force, limit=limit, progress=progress)


def _check_trt(path: Path, json_out: Optional[str], console) -> None:
    from edgecnn.export.trt_check import check_trt_onnx

    try:
        rep = check_trt_onnx(path)
    except ValueError as e:
        fail(e)
    if not emit_json(rep.as_dict(), json_out):
        console.print(rep.text(), highlight=False, soft_wrap=True, markup=False)
    if not rep.ok:
        raise typer.Exit(1)


def skipped_by_reason(skipped: list[dict]) -> dict[str, list[str]]:
    """One line per reason (three TensorRT rows share one), in first-seen order."""
    out: dict[str, list[str]] = {}
    for s in skipped:
        out.setdefault(s["reason"], []).append(s["key"])
    return out


export.__doc__ += _FORMAT_TABLE
