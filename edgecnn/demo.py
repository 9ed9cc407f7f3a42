"""`edgecnn demo`: the whole pipeline on the default data, through the same commands a user runs.

Each step is the CLI command itself (invoked in-process), so the demo shows exactly what
`edgecnn train`, `quantize`, `export`, `bench` and `scan` print and write.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True, soft_wrap=True)

# Patients of the shared data whose complete patch grid rebuilds a tissue region.
FULL_GRID_PATIENTS = ("10253", "8863", "10254", "14082")


def _step(app, title: str, args: list[str], allow_fail: bool = False) -> int:
    console.rule(f"[bold]{title}[/]")
    console.print(f"$ edgecnn {shlex.join(args)}", style="dim")
    try:
        rc = app(args, standalone_mode=False)
    except SystemExit as e:  # typer.Exit inside a command surfaces as SystemExit in some paths
        rc = e.code
    rc = int(rc or 0)
    if rc and not allow_fail:
        console.print(f"[bold red]demo stopped:[/] step '{title}' failed (exit {rc})")
        raise typer.Exit(rc)
    return rc


def _mosaic_patient(data: Path) -> Optional[Path]:
    for pid in FULL_GRID_PATIENTS:
        if (data / pid).is_dir():
            return data / pid
    # Any data (e.g. the synthetic stand-in): the patient with the most patches.
    patients = [p for p in data.iterdir() if p.is_dir()] if data.is_dir() else []
    if not patients:
        return None
    return max(patients, key=lambda p: sum(1 for _ in p.glob("*/*.png")))


def demo(
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Folder for every result of the demo."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Data folder. Default: $EDGECNN_DATA, else Kaggle download, else synthetic."),
    epochs: int = typer.Option(4, help="Training epochs (a short demo schedule; the release model uses 40 with early stopping)."),
    qat_epochs: int = typer.Option(1, "--qat-epochs", help="QAT fine-tuning epochs."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete --out first (otherwise finished steps are reused)."),
    quick: bool = typer.Option(False, "--quick", help="Shorter benchmark (1 thread, fewer runs), for smoke tests."),
):
    """Run data → train → quantize → export → bench → scan end to end and print where the results are."""
    import shutil

    from edgecnn.cli import app
    from edgecnn.data.source import resolve_data

    t0 = time.perf_counter()
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    src = resolve_data(data)
    console.print(f"data: [bold]{src.path}[/] ({src.kind})")
    d = str(src.path)
    run = out / "run"
    exported = out / "exported"

    _step(app, "1/6 data", ["data", "info", d, "--json", str(out / "data.json")])
    if not (run / "metrics.json").exists():
        if (run / "ckpt" / "state.json").exists():
            _step(app, "2/6 train (resume)", ["train", "--out", str(run), "--resume"])
        else:
            if run.exists():
                shutil.rmtree(run)
            _step(app, "2/6 train", ["train", "--data", d, "--out", str(run), "--epochs", str(epochs),
                                     "--json", str(out / "train.json")])
    if not (run / "qat" / "model.keras").exists() and not (run / "qat" / "model.h5").exists():
        _step(app, "3/6 quantize", ["quantize", str(run), "--epochs", str(qat_epochs), "--json", str(out / "qat.json")])
    _step(app, "4/6 export", ["export", str(run), "--format", "all", "--out", str(exported), "--force",
                              "--json", str(out / "export.json")])
    gate = _step(app, "5/6 bench", ["bench", str(exported), "--data", d, "--split", str(run / "split.json"),
                                    "--threads", "1" if quick else "1,2", "--runs", "100" if quick else "300",
                                    "--json", str(out / "bench.json"),
                                    "--md", str(out / "bench.md"), "--plot", str(out / "bench.png")], allow_fail=True)
    patient = _mosaic_patient(Path(d))
    scan_note = "no patient folder to rebuild a field of view from"
    if patient is not None:
        mosaic = out / f"mosaic-{patient.name}.png"
        _step(app, "6/6 scan", ["data", "mosaic", str(patient), "--out", str(mosaic),
                                "--overlay-out", str(out / f"mosaic-{patient.name}.labels.png")])
        model = exported / "basic_cnn-int8-qat.tflite"
        args = ["scan", str(mosaic), "--out", str(out / "scan"), "--json", str(out / "scan.json")]
        if model.exists():
            args[2:2] = ["--model", str(model)]
        _step(app, "6/6 scan", args)
        scan_note = f"{out / 'scan'} (heat-map overlay of patient {patient.name})"

    t = Table(title=f"edgecnn demo finished in {time.perf_counter() - t0:.0f} s — results")
    t.add_column("what"); t.add_column("where")
    t.add_row("data", f"{src.path} ({src.kind})")
    t.add_row("trained run (model, split, metrics, plots)", str(run))
    t.add_row("QAT model", str(run / "qat"))
    t.add_row("exported artifacts + manifests", str(exported))
    t.add_row("benchmark (table, JSON, plot)" + (" — accuracy gate FAILED" if gate else ""),
              f"{out / 'bench.md'}, {out / 'bench.json'}, {out / 'bench.png'}")
    t.add_row("field-of-view scan", scan_note)
    Console().print(t)
    if src.kind == "synthetic":
        console.print("[bold yellow]These numbers come from SYNTHETIC data[/]: set EDGECNN_DATA to the real IDC "
                      "patches for real results.")
