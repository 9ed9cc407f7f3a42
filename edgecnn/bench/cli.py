"""``edgecnn bench``: a plain function the main typer app registers (``app.command("bench")(bench)``).

A thin wrapper over edgecnn.bench.run_bench: parse the flags, run with a progress bar, print the
table, write the reports, exit 1 on a failed gate. No TensorFlow at import.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from edgecnn.clikit import JSON_HELP, MULTI_DATA_HELP, Quiet, Verbose, emit_json, err, fail, int_list


def bench(
    artifacts: Optional[List[Path]] = typer.Argument(
        None, show_default=False,
        help="Artifact files (.tflite, .onnx, .xml, .engine) or export folders. Default: the release model "
             "folder (exported/release, or $EDGECNN_RELEASE_DIR). Temporary files left by an interrupted "
             "export are never taken as artifacts."),
    data: Optional[List[str]] = typer.Option(
        None, "--data", "-d", help="Evaluation patches: Kaggle-layout IDC folder or zip, or an .npz with 'images' "
                                   "(N×S×S×3 uint8) and 'labels'. Default: $EDGECNN_DATA." + MULTI_DATA_HELP),
    split: Optional[Path] = typer.Option(None, "--split", help="split.json (or run folder): score only its test "
                                         "patients. The release folder has one: exported/release/split.json."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Use a seeded random subset of this many patches."),
    runtimes: Optional[str] = typer.Option(None, "--runtimes", "-r", help="Comma-separated runtimes, e.g. "
                                           "litert,onnxruntime,openvino. Default: every installed runtime that runs "
                                           "each artifact (.onnx runs on onnxruntime and openvino)."),
    threads: Optional[str] = typer.Option(None, "--threads", "-t", help="Comma-separated thread counts, one row each "
                                          "(default: 1 and all usable cores)."),
    batch_sizes: str = typer.Option("1,64", "--batch-sizes", "-b", help="Comma-separated batch sizes: latency at 1, "
                                    "throughput at each larger one (the table shows the largest)."),
    rounds: int = typer.Option(5, "--rounds", help="Interleaved rounds (A B C A B C …), each row in a fresh process "
                               "per round. p50 is the median of the round medians; more rounds, steadier numbers."),
    runs: int = typer.Option(1000, "--runs", help="Timed batch-1 calls per row, split over the rounds; see --budget."),
    warmup: int = typer.Option(50, "--warmup", help="Untimed calls at the start of every round (caches, thread pools)."),
    budget: float = typer.Option(20.0, "--budget", help="Seconds a row's latency loops may take in all; they stop "
                                 "early only after 100 samples, so p99 stays meaningful."),
    tta: bool = typer.Option(False, "--tta", help="Also measure each artifact with test-time augmentation (the mean "
                             "over 8 flips/rotations, 8× the work): extra rows show its cost and accuracy."),
    keras_ref: Optional[Path] = typer.Option(None, "--keras-ref", help="Run folder (model.keras) or .keras file, e.g. "
                                             "exported/release/basic_cnn-fp32.keras: adds the float Keras model as a "
                                             "row and makes it the float reference. Needs TensorFlow (in its own "
                                             "process)."),
    min_bac: Optional[float] = typer.Option(None, "--min-bac", help="Gate: an explicit floor every row must reach "
                                            "(off by default)."),
    tolerance: float = typer.Option(0.02, "--tolerance", help="Gate: how far a row may fall below its model's "
                                    "recorded test score (manifest), or the float reference's score when none is "
                                    "recorded. Widened to 2 standard errors on small data."),
    max_drop: float = typer.Option(0.01, "--max-drop", help="Gate: largest balanced-accuracy drop vs the float "
                                   "reference (Keras with --keras-ref, else another fp32 row; never the row itself)."),
    ov_precision: Optional[str] = typer.Option(None, "--ov-precision", help="OpenVINO inference precision: f32 "
                                               "(default) or bf16."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Load artifacts even if their sha256 differs from the "
                                   "manifest."),
    allow_no_manifest: bool = typer.Option(False, "--allow-no-manifest", help="Run artifacts without a manifest "
                                           "(preprocessing pixel/255, threshold 0.5)."),
    pin: bool = typer.Option(True, "--pin/--no-pin", help="Run a row with fewer threads than CPUs on that many CPUs "
                             "(steadier latency on a busy machine); --no-pin lets the OS place its threads."),
    wide: bool = typer.Option(False, "--wide", "-w", help="Print every column (accuracy, F1, AUC, agreement, p90, "
                              "spread, size, load time, gate floor); lines may be longer than the terminal."),
    json_out: Optional[str] = typer.Option(None, "--json", help=JSON_HELP),
    md: Optional[str] = typer.Option(None, "--md", help="Write the full table as Markdown to FILE, or - for stdout."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG of latency p50 vs balanced accuracy to FILE."),
    quiet: Quiet = False,
    verbose: Verbose = False,
):
    """Benchmark exported models on real patches: balanced accuracy (BAC) and its change vs the float
    model, batch-1 latency (p50/p99), throughput, peak memory, size and load time — one row per
    artifact × runtime × thread count, measured in interleaved rounds, each in a fresh process.

    Gate: each row must stay within --tolerance of its model's recorded test score and within
    --max-drop of the float reference. Exits 1 when a row fails the gate or errors; 2 on bad input.

    Examples: edgecnn bench exported/release --data ~/idc --split exported/release/split.json
              edgecnn bench exported/basic --threads 1,2 --rounds 9 --tta --md bench.md --plot bench.png
    """
    opts = _library_args(locals())
    to_stdout = "-" in (json_out, md)
    result = _run(opts, show_progress=not quiet and not to_stdout, verbose=verbose)
    if not to_stdout:
        _print_results(result, wide=wide, verbose=verbose)
    _write_outputs(result, json_out, md, plot)
    _finish(result, quiet=quiet or to_stdout)


def _library_args(a: dict[str, Any]) -> dict[str, Any]:
    """The CLI's flags as run_bench's keyword arguments (exits 2 on bad input)."""
    from edgecnn.data.source import resolve_data

    try:
        data = resolve_data(a["data"], allow_download=False, allow_synthetic=False).spec
    except ValueError as e:
        fail(e)
    runtimes = [r.strip() for r in a["runtimes"].split(",") if r.strip()] if a["runtimes"] else None
    return dict(artifacts=a["artifacts"] or None, data=data, runtimes=runtimes,
                threads=int_list(a["threads"], "--threads"), batches=int_list(a["batch_sizes"], "--batch-sizes"),
                rounds=a["rounds"], runs=a["runs"], warmup=a["warmup"], budget_s=a["budget"], tta=a["tta"],
                keras_ref=a["keras_ref"], limit=a["limit"], split=a["split"], min_bac=a["min_bac"],
                tolerance=a["tolerance"], max_drop=a["max_drop"], verify=not a["no_verify"],
                allow_no_manifest=a["allow_no_manifest"], precision=a["ov_precision"], pin=a["pin"])


def _run(opts: dict[str, Any], show_progress: bool, verbose: bool) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from edgecnn.bench.data import BenchError
    from edgecnn.bench.harness import run_bench
    from edgecnn.progress import Bar

    bar = Bar(TextColumn("bench"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
              TextColumn("{task.description}"), total=None, enabled=show_progress, console=err)

    started = []

    def progress(done: int, total: int, label: str) -> None:
        if not started:  # started at the first row, so the data's own decoding bar can show before it
            started.append(bar.__enter__())
        bar.progress.update(bar.task, completed=done, total=total, description=escape(label))

    def log(text: str) -> None:
        err.print(escape(text), style="dim", highlight=False)

    try:
        return run_bench(**opts, progress=progress if show_progress else None, log=log if verbose else None)
    except (BenchError, ValueError, FileNotFoundError) as e:
        fail(e)
    finally:
        if started:
            bar.__exit__(None, None, None)


def _print_results(result: dict[str, Any], wide: bool, verbose: bool) -> None:
    from edgecnn.bench.gate import row_label
    from edgecnn.bench.report import print_table

    print_table(result, Console(), wide=wide)
    if verbose:
        for r in result["rows"]:
            lat = r.get("latency_ms") or {}
            if lat.get("p50_rounds"):
                err.print(escape(f"{row_label(r)}: round p50 ms " + ", ".join(f"{v:.3f}" for v in lat["p50_rounds"])),
                          highlight=False)
    for s in result["skipped"]:
        err.print(f"[yellow]skipped[/] {escape(Path(s['artifact']).name)} on {s['runtime']}: {escape(s['reason'])}",
                  highlight=False)
    for w in result["warnings"]:
        err.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)


def _write_outputs(result: dict[str, Any], json_out: Optional[str], md: Optional[str], plot: Optional[Path]) -> None:
    from edgecnn.bench.report import markdown, report_json, write_markdown, write_plot

    emit_json(report_json(result), json_out)
    if md == "-":
        sys.stdout.write(markdown(result))
    elif md:
        write_markdown(result, md)
        err.print(f"Markdown written to {md}")
    if plot:
        try:
            write_plot(result, plot)
        except ImportError:  # the device install (edgecnn[edge]) has no matplotlib
            fail(f"--plot {plot} needs matplotlib: pip install matplotlib (the other reports were written)")
        err.print(f"Plot written to {plot}")


def _finish(result: dict[str, Any], quiet: bool) -> None:
    for f in result["failures"]:
        err.print(f"[bold red]gate failed:[/] {escape(f)}", highlight=False)
    if result["failures"]:
        raise typer.Exit(1)
    if not quiet:
        ungated = sum(1 for r in result["rows"] if r["gate_reason"] != "ok")
        err.print(f"[green]all {len(result['rows'])} rows passed the gate[/]"
                  + (f" ({ungated} not gated: nothing to compare with)" if ungated else "")
                  + (f"; {len(result['skipped'])} skipped" if result["skipped"] else ""))
