"""`edgecnn demo`: the whole pipeline on the default data, through the same commands a user runs.

Each step is the CLI command itself (invoked in-process), so the demo shows exactly what
`edgecnn train`, `quantize`, `export`, `bench` and `scan` print and write.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from edgecnn.clikit import MULTI_DATA_HELP, Quiet, Verbose

console = Console(stderr=True, soft_wrap=True)

# Patients of the shared data whose complete patch grid rebuilds a tissue region.
FULL_GRID_PATIENTS = ("10253", "8863", "10254", "14082")
# A real 1920×1080 field of view shipped with the source (a window of patient 14082's region, CC0):
# the demo's first picture is the release model on real tissue, whatever data the later steps use.
REAL_FIELD = Path(__file__).resolve().parent.parent / "examples" / "field-14082.png"


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


def _reused(title: str, what: Path, how: str) -> None:
    console.rule(f"[bold]{title}[/] [dim](reused)[/]")
    console.print(f"reused {what} from an earlier demo; {how}", highlight=False)


def _class_counts(patient: Path) -> tuple[int, int]:
    return sum(1 for _ in patient.glob("0/*.png")), sum(1 for _ in patient.glob("1/*.png"))


def _mosaic_patient(data: Path) -> Optional[Path]:
    """A patient whose field of view shows IDC next to healthy tissue (a blank overlay shows nothing)."""
    for pid in FULL_GRID_PATIENTS:
        if (data / pid).is_dir() and _class_counts(data / pid)[1] > 0:
            return data / pid
    # Any data (e.g. the synthetic stand-in): both classes present, then the most IDC patches.
    counts = {p: _class_counts(p) for p in data.iterdir() if p.is_dir()} if data.is_dir() else {}
    with_idc = {p: c for p, c in counts.items() if c[1] > 0}
    if not with_idc:
        return None
    return max(with_idc, key=lambda p: (min(with_idc[p]) > 0, with_idc[p][1], sum(with_idc[p])))


def _bench_passed(report: Path) -> bool:
    from edgecnn.fsutil import read_json

    try:
        return bool(read_json(report).get("passed"))
    except (OSError, ValueError):
        return False


def _newer(path: Path, *than: Path) -> bool:
    return path.exists() and all(not t.exists() or path.stat().st_mtime >= t.stat().st_mtime for t in than)


def demo(
    ctx: typer.Context,
    out: Path = typer.Option(Path("demo-out"), "--out", "-o", help="Folder for every result of the demo."),
    data: Optional[List[str]] = typer.Option(None, "--data", "-d", help="Data folder. Default: $EDGECNN_DATA, else a Kaggle "
                                             "download (kagglehub + Kaggle credentials), else a synthetic stand-in." + MULTI_DATA_HELP),
    epochs: int = typer.Option(4, help="Training epochs (a short demo schedule; the release model uses 40 with early stopping)."),
    qat_epochs: int = typer.Option(1, "--qat-epochs", help="QAT fine-tuning epochs."),
    fresh: bool = typer.Option(False, "--fresh", help="Delete --out first (otherwise finished steps are reused)."),
    quick: bool = typer.Option(False, "--quick", help="Shorter benchmark (1 thread, fewer runs), for smoke tests."),
    quiet: Quiet = False,
    verbose: Verbose = False,
):
    """Run data → train → quantize → export → bench → scan end to end and print where the results are.

    Steps whose results are already in --out are reused (and say so); --fresh starts over.

    Example: edgecnn demo --data ~/idc --out demo-out --quick
    """
    import shutil

    from edgecnn.data.source import resolve_data

    t0 = time.perf_counter()
    if fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    src = resolve_data(data)
    console.print(f"data: [bold]{src.spec}[/] ({src.kind})")
    # --verbose already acts process-wide (its option callback); --quiet goes to the steps that take it.
    flags = ["--quiet"] if quiet else []
    run, exported = out / "run", out / "exported"
    steps = _Steps(out, src, flags, _running_cli(ctx))
    real_note = steps.real_field()
    steps.data()
    steps.train(run, epochs)
    steps.quantize(run, qat_epochs)
    steps.export(run, exported)
    gate = steps.bench(run, exported, quick)
    scan_note = steps.scan(exported)
    _summary(out, src, run, exported, gate, scan_note, time.perf_counter() - t0, real_note)


def _running_cli(ctx: typer.Context):
    """The `edgecnn` command this demo was started from (the root of its context): each step calls
    it again in-process, so the demo needs no import of edgecnn.cli, which registers the demo."""
    return ctx.find_root().command


class _Steps:
    """The demo's steps, each the CLI command a user would type."""

    def __init__(self, out: Path, src, flags: list[str], app):
        self.app, self.out, self.src, self.flags = app, out, src, flags
        self.paths = [str(p) for p in (src.paths or (src.path,))]

    def step(self, title: str, args: list[str], allow_fail: bool = False) -> int:
        quiet = self.flags if args[0] in ("data", "train", "quantize", "export") else []
        return _step(self.app, title, args + quiet, allow_fail)

    def real_field(self) -> str:
        """The committed release model on a real field of view (no training, no data needed)."""
        from edgecnn.paths import release_model_dir

        title = "0/6 real tissue, release model"
        if not REAL_FIELD.exists() or not any(release_model_dir().glob("*.tflite")):
            console.rule(f"[bold]{title}[/] [dim](skipped)[/]")
            console.print(f"skipped: {REAL_FIELD.name} or the release model is not here (a source checkout has both)")
            return "skipped (no examples/ or exported/release/ here)"
        done = self.out / "real-field.json"
        if not _newer(done, REAL_FIELD, *release_model_dir().glob("*.json")):
            self.step(title, ["scan", str(REAL_FIELD), "--out", str(self.out / "real-field"), "--json", str(done)])
        else:
            _reused(title, done, "newer than the release model; delete it to scan again")
        from edgecnn.fsutil import read_json

        rec = read_json(done)["images"][0]
        return (f"{rec['overlay']}: {rec['tissue_tiles']} tissue tiles, IDC {100 * rec['idc_share']:.1f} % "
                f"({rec['context'] or 'patch-level'})")

    def data(self) -> None:
        self.step("1/6 data", ["data", "info", *self.paths, "--json", str(self.out / "data.json")])

    def train(self, run: Path, epochs: int) -> None:
        import shutil

        if (run / "metrics.json").exists():
            return _reused("2/6 train", run, "delete it or pass --fresh to train again")
        if (run / "ckpt" / "state.json").exists():
            self.step("2/6 train (resume)", ["train", "--out", str(run), "--resume"])
            return
        if run.exists():
            shutil.rmtree(run)
        data = [a for p in self.paths for a in ("--data", p)]
        self.step("2/6 train", ["train", *data, "--out", str(run), "--epochs", str(epochs),
                                "--json", str(self.out / "train.json")])

    def quantize(self, run: Path, qat_epochs: int) -> None:
        from edgecnn.train.run import RunFolder

        # Finished only with the model.json written after the model (a killed quantize resumes).
        if RunFolder(run).qat_ready() or (run / "qat" / "model.h5").exists():
            return _reused("3/6 quantize", run / "qat", "delete it or pass --fresh to fine-tune again")
        resume = ["--resume"] if (run / "qat" / "ckpt" / "state.json").exists() else []
        self.step("3/6 quantize" + (" (resume)" if resume else ""),
                  ["quantize", str(run), *resume, "--epochs", str(qat_epochs), "--json", str(self.out / "qat.json")])

    def export(self, run: Path, exported: Path) -> None:
        done = self.out / "export.json"
        if _newer(done, run / "model.keras", run / "qat" / "model.keras"):
            return _reused("4/6 export", exported, "newer than the models it came from")
        self.step("4/6 export", ["export", str(run), "--format", "all", "--out", str(exported), "--force",
                                 "--json", str(done)])

    def bench(self, run: Path, exported: Path, quick: bool) -> int:
        out = self.out
        done = out / "bench.json"
        if _newer(done, out / "export.json"):
            _reused("5/6 bench", done, "newer than the export it measured; delete it to measure again")
            return 0 if _bench_passed(done) else 1
        return self.step("5/6 bench", ["bench", str(exported), "--data", self.src.spec, "--split", str(run / "split.json"),
                                       "--threads", "1" if quick else "1,2", "--runs", "100" if quick else "300",
                                       "--rounds", "2" if quick else "5",
                                       "--json", str(done), "--md", str(out / "bench.md"),
                                       "--plot", str(out / "bench.png")], allow_fail=True)

    def scan(self, exported: Path) -> str:
        patient = _mosaic_patient(Path(self.paths[0]))
        if patient is None:
            return "no patient with IDC patches to rebuild a field of view from"
        out = self.out
        n0, n1 = _class_counts(patient)
        note = f"{out / 'scan'} (heat-map overlay of patient {patient.name}: {n1} IDC / {n0 + n1} patches)"
        mosaic = out / f"mosaic-{patient.name}.png"
        if _newer(out / "scan.json", out / "export.json", mosaic):
            _reused("6/6 scan", out / "scan", "newer than the export it used; delete scan.json to scan again")
            return note
        self.step("6/6 scan: rebuild a field of view", ["data", "mosaic", str(patient), "--out", str(mosaic),
                               "--overlay-out", str(out / f"mosaic-{patient.name}.labels.png")])
        model = exported / "basic_cnn-int8-qat.tflite"
        args = ["scan", str(mosaic), "--out", str(out / "scan"), "--json", str(out / "scan.json")]
        if model.exists():
            args[2:2] = ["--model", str(model)]
        self.step("6/6 scan", args)
        return note


def _summary(out: Path, src, run: Path, exported: Path, gate: int, scan_note: str, seconds: float,
             real_note: str) -> None:
    t = Table(title=f"edgecnn demo finished in {seconds:.0f} s — results")
    t.add_column("what"); t.add_column("where")
    t.add_row("real field, release model (examples/field-14082.png)", real_note)
    t.add_row("data", f"{src.spec} ({src.kind})")
    t.add_row("trained run (model, split, metrics, plots)", str(run))
    t.add_row("QAT model", str(run / "qat"))
    t.add_row("exported artifacts + manifests", str(exported))
    t.add_row("benchmark (table, JSON, plot)" + (" — accuracy gate FAILED" if gate else ""),
              f"{out / 'bench.md'}, {out / 'bench.json'}, {out / 'bench.png'}")
    t.add_row(f"field-of-view scan with the model trained above ({src.kind} data)", scan_note)
    Console().print(t)
    if src.kind == "synthetic":
        console.print("[bold yellow]Steps 1–6 ran on SYNTHETIC data[/] (step 0 is real tissue): set EDGECNN_DATA "
                      "to the real IDC patches for real results.")
