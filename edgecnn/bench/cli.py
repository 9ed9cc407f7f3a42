"""``edgecnn bench``: a plain function the main typer app registers (``app.command("bench")(bench)``).

No TensorFlow at import (only the --keras-ref row imports it, in its own process).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape


def _ints(text: Optional[str], opt: str) -> Optional[list[int]]:
    if text is None:
        return None
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{opt} takes comma-separated integers, e.g. 1,2; got {text!r}") from None
    if not vals or min(vals) < 1:
        raise typer.BadParameter(f"{opt} takes positive integers; got {text!r}")
    return vals


def bench(
    artifacts: Optional[List[Path]] = typer.Argument(
        None, show_default=False,
        help="Artifact files (.tflite, .onnx, .xml, .engine) or export folders. Default: the release model "
             "folder (exported/release, or $EDGECNN_RELEASE_DIR)."),
    data: str = typer.Option(..., "--data", "-d", help="Evaluation patches: Kaggle-layout IDC folder or zip, or an "
                             ".npz with 'images' (N×S×S×3 uint8) and 'labels'."),
    runtimes: Optional[str] = typer.Option(None, "--runtimes", "-r", help="Comma-separated runtimes to try, e.g. "
                                           "litert,onnxruntime,openvino. Default: every installed runtime that runs each "
                                           "artifact (.onnx runs on onnxruntime and openvino)."),
    threads: Optional[str] = typer.Option(None, "--threads", "-t", help="Comma-separated thread counts, one row each "
                                          "(default: 1 and all usable cores)."),
    batch: str = typer.Option("1,64", "--batch", "-b", help="Batch sizes: latency is measured at 1, throughput at the "
                              "largest."),
    runs: int = typer.Option(1000, "--runs", help="Timed batch-1 calls per row (after --warmup); see --budget."),
    warmup: int = typer.Option(50, "--warmup", help="Untimed calls before timing (caches, thread pools, JIT)."),
    budget: float = typer.Option(20.0, "--budget", help="Seconds a row's latency loop may take; it stops early only "
                                 "after 100 samples, so p99 stays meaningful."),
    keras_ref: Optional[Path] = typer.Option(None, "--keras-ref", help="Run folder (model.keras) or .keras file: adds the "
                                             "float Keras model as the seed ran it (model.predict) and makes it the "
                                             "reference for agreement and --max-drop. Needs TensorFlow."),
    limit: Optional[int] = typer.Option(None, "--limit", "-n", help="Use a seeded random subset of this many patches."),
    split: Optional[Path] = typer.Option(None, "--split", help="split.json (or run folder): score only its test patients."),
    min_bac: float = typer.Option(0.84, "--min-bac", help="Gate: every row needs at least this balanced accuracy."),
    max_drop: float = typer.Option(0.01, "--max-drop", help="Gate: largest allowed balanced-accuracy drop vs the float "
                                   "reference (Keras with --keras-ref, else the fp32 artifact of the same model)."),
    ov_precision: Optional[str] = typer.Option(None, "--ov-precision", help="OpenVINO inference precision: f32 "
                                               "(default) or bf16."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Load artifacts even if their sha256 differs from the manifest."),
    allow_no_manifest: bool = typer.Option(False, "--allow-no-manifest", help="Run artifacts without a manifest "
                                           "(preprocessing pixel/255, threshold 0.5)."),
    in_process: bool = typer.Option(False, "--in-process", help="Run rows in this process (faster start; peak RSS is then "
                                    "the whole bench's, not per row)."),
    json_out: Optional[str] = typer.Option(None, "--json", help="Write the full report (machine + rows) as JSON to FILE, "
                                           "or - for stdout only."),
    md: Optional[Path] = typer.Option(None, "--md", help="Write the table as Markdown to FILE."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG of latency p50 vs balanced accuracy to FILE."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or table."),
):
    """Benchmark exported models on real patches: accuracy, agreement with the float model, batch-1
    latency (p50/p90/p99), throughput, peak memory, size and load time — one row per artifact ×
    runtime × thread count, each measured in a fresh process.

    Exits 1 when a row fails the accuracy gate (--min-bac, --max-drop) or errors; 2 on bad input.

    Example: edgecnn bench exported/basic --data ~/idc --split runs/basic --threads 1,2 --md bench.md --plot bench.png
    """
    from edgecnn.bench.harness import BenchError, run_bench
    from edgecnn.bench.report import rich_table, write_markdown, write_plot, write_report_json

    err = Console(stderr=True)
    to_stdout = json_out == "-"
    show = not quiet and not to_stdout
    thread_list = _ints(threads, "--threads")
    batches = _ints(batch, "--batch")
    runtime_list = [r.strip() for r in runtimes.split(",") if r.strip()] if runtimes else None

    def go(progress_cb):
        return run_bench(artifacts or None, data, runtimes=runtime_list, threads=thread_list, batches=batches,
                         runs=runs, warmup=warmup, budget_s=budget, keras_ref=keras_ref, limit=limit, split=split,
                         min_bac=min_bac, max_drop=max_drop, verify=not no_verify,
                         allow_no_manifest=allow_no_manifest, precision=ov_precision, isolate=not in_process,
                         progress=progress_cb)

    try:
        if show:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=err, transient=True) as bar:
                task = bar.add_task("bench", total=None)

                def cb(done: int, total: int, label: str) -> None:
                    bar.update(task, completed=done, total=total, description=f"bench {escape(label)}")

                result = go(cb)
        else:
            result = go(None)
    except (BenchError, ValueError, FileNotFoundError) as e:
        err.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2)

    if show:
        Console().print(rich_table(result))
        for s in result["skipped"]:
            err.print(f"[yellow]skipped[/] {escape(Path(s['artifact']).name)} on {s['runtime']}: {escape(s['reason'])}", highlight=False, soft_wrap=True)
    if json_out:
        if to_stdout:
            from edgecnn.bench.report import _sanitize

            sys.stdout.write(json.dumps(_sanitize(result), indent=2) + "\n")
        else:
            write_report_json(result, json_out)
            err.print(f"JSON written to {json_out}", soft_wrap=True)
    if md:
        write_markdown(result, md)
        err.print(f"Markdown written to {md}", soft_wrap=True)
    if plot:
        write_plot(result, plot)
        err.print(f"Plot written to {plot}", soft_wrap=True)
    if result["failures"]:
        for f in result["failures"]:
            err.print(f"[bold red]gate failed:[/] {escape(f)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)
    if show:
        err.print(f"[green]all {len(result['rows'])} rows passed the gate[/] "
                  f"(balanced accuracy >= {min_bac}, drop <= {max_drop})"
                  + (f"; {len(result['skipped'])} skipped" if result["skipped"] else ""))
