"""``edgecnn data ...``: inspect the IDC data, make a synthetic stand-in, write patient splits.

Other modules add commands to ``app`` (e.g. ``edgecnn.data.mosaic`` adds ``mosaic``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgecnn.clikit import Quiet, Verbose, emit_json, fail
from edgecnn.data.layout import DataError

app = typer.Typer(
    name="data",
    help="Inspect the IDC patch data (Kaggle layout, folder or zip), make a synthetic stand-in, split by patient.",
    no_args_is_help=True,
    add_completion=False,
)

_out = Console()

PathArg = typer.Argument(
    None,
    help="Data folder(s) or Kaggle zip(s) in the layout <patient>/<0|1>/<patient>_idx5_x<X>_y<Y>_class<0|1>.png; "
    "several are read as one (a patch in two is counted once). "
    "Default: $EDGECNN_DATA (several separated by ':'), else a Kaggle download (kagglehub + credentials), else a synthetic stand-in.",
    show_default=False,
)
BorderOpt = typer.Option("pad", "--border", help="Patches smaller than 50x50 (slide edges): 'pad' with white, or 'drop'.")
StrictOpt = typer.Option(False, "--strict", help="Fail on the first bad file instead of skipping and listing it.")
JsonOpt = typer.Option(None, "--json", help="Also write the result as JSON to FILE ('-' prints JSON only, to stdout).")


def _load(path: Optional[List[Path]], border: str, strict: bool, quiet: bool):
    from edgecnn.data.dataset import load_patches
    from edgecnn.data.source import resolve_data

    src = resolve_data(path, quiet=quiet)
    ps = load_patches(src.spec, border=border, strict=strict, progress=not quiet)
    return src, ps


@app.command()
def info(
    path: Optional[List[Path]] = PathArg,
    border: str = BorderOpt,
    strict: bool = StrictOpt,
    json_out: Optional[str] = JsonOpt,
    max_skipped: int = typer.Option(20, "--max-skipped", help="How many skipped files to list in the table."),
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Load the data (decoding once, then from the cache) and summarise it: patients, patches,
    class balance, patch sizes, skipped files with reasons, duplicates, cache key.

    Example: edgecnn data info ~/idc ~/idc-more --json data.json
    """
    if border not in ("pad", "drop"):
        fail(DataError(f"--border must be 'pad' or 'drop', not {border!r}"))
    try:
        src, ps = _load(path, border, strict, quiet=quiet or json_out == "-")
    except DataError as e:
        fail(e)
    stats = ps.patient_stats()
    report = dict(ps.report, source_kind=src.kind,
                  patients_with_idc=sum(1 for n, pos in stats.values() if pos > 0),
                  patches_per_patient={"min": min(n for n, _ in stats.values()),
                                       "max": max(n for n, _ in stats.values())})
    if emit_json(report, json_out):
        return
    _print_info(report, max_skipped)


def _print_info(r: dict[str, Any], max_skipped: int = 20) -> None:
    cc = r["class_counts"]
    n = max(r["n_patches"], 1)
    t = Table(title=f"IDC data: {escape(r['source'])}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    t.add_row("source", f"{escape(r['source'])} ({r['format']}, {r.get('source_kind', '?')})")
    t.add_row("patients", f"{r['n_patients']} ({r['patients_with_idc']} with IDC patches; "
                          f"{r['patches_per_patient']['min']}-{r['patches_per_patient']['max']} patches each)")
    t.add_row("patches", f"{r['n_patches']:,} from {r['n_files']:,} files")
    t.add_row("class balance", f"no_idc {cc[0]:,} ({cc[0] / n:.1%})   idc {cc[1]:,} ({cc[1] / n:.1%})")
    size = r["patch_size"]
    b = r["border"]
    t.add_row("patch sizes", f"{size}x{size}: {r['sizes'][f'{size}x{size}']:,}   smaller: {b['smaller']:,} "
                             f"(border rule '{b['rule']}': {b['padded']} padded, {b['dropped']} dropped)")
    smaller = {k: v for k, v in r["size_histogram"].items() if k != f"{size}x{size}"}
    if smaller:
        t.add_row("smaller sizes", ", ".join(f"{k}: {v}" for k, v in list(smaller.items())[:12])
                  + (" ..." if len(smaller) > 12 else ""))
    t.add_row("skipped", f"{r['n_skipped']}" + (f" {r['skipped_by_reason']}" if r["n_skipped"] else ""))
    t.add_row("duplicates ignored", str(r["duplicates_ignored"]))
    for s in r.get("sources", []):
        t.add_row("  source", f"{escape(s['source'])}: {s['n_patches']:,} patches, {s['n_patients']} patients")
    if "cross_source_duplicates" in r:
        t.add_row("in two sources (kept once)", str(r["cross_source_duplicates"]))
    t.add_row("other files ignored", str(r["n_ignored"]))
    t.add_row("cache", f"{r['cache_key']} ({'hit' if r['from_cache'] else 'decoded now'})")
    _out.print(t)
    if r["skipped"]:
        s = Table(title="skipped files", title_justify="left")
        s.add_column("file", overflow="fold")
        s.add_column("reason")
        for item in r["skipped"][:max_skipped]:
            s.add_row(escape(item["file"]), escape(item["reason"]))
        _out.print(s)
        if len(r["skipped"]) > max_skipped:
            _out.print(f"... and {len(r['skipped']) - max_skipped} more (see --json)")


@app.command()
def synth(
    out: Path = typer.Argument(..., help="New (or empty) folder to write the synthetic data into."),
    patients: int = typer.Option(12, "--patients", min=1, help="Number of fake patients."),
    per_patient: int = typer.Option(40, "--per-patient", min=1, help="Patches per patient."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same images)."),
    json_out: Optional[str] = JsonOpt,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Write a SYNTHETIC stand-in in the Kaggle layout (50x50 PNGs, pink/purple texture; IDC patches
    have denser, darker nuclei). For offline demos and tests only: it is not histology.

    Example: edgecnn data synth /tmp/idc-synthetic --patients 12 --per-patient 40
    """
    from edgecnn.data.synth import make_synthetic

    try:
        path = make_synthetic(out, patients=patients, patches_per_patient=per_patient, seed=seed)
    except DataError as e:
        fail(e)
    result = {"path": str(path), "patients": patients, "per_patient": per_patient, "seed": seed, "synthetic": True}
    if not emit_json(result, json_out) and not quiet:
        _out.print(f"wrote {patients * per_patient} synthetic patches ({patients} patients) to {path}")


@app.command()
def split(
    path: Optional[List[Path]] = PathArg,
    out: Path = typer.Option(..., "--out", help="Where to write the split JSON (e.g. runs/NAME/split.json)."),
    official: Optional[Path] = typer.Option(
        None, "--official-split",
        help="Folder with cases_train.txt and cases_val.txt (the published patient split); patients in "
        "neither go to test. Without it, a stratified random patient split is made. Same flag as "
        "`edgecnn train --split official --official-split DIR`."),
    official_alias: Optional[Path] = typer.Option(None, "--official", hidden=True),  # the old spelling
    val: float = typer.Option(0.15, "--val", help="Validation share of patients (random split, or carved "
                                                  "from train when the official folder has no val list)."),
    test: float = typer.Option(0.15, "--test", help="Test share of patients (random split)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the stratified shuffle."),
    border: str = BorderOpt,
    json_out: Optional[str] = JsonOpt,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Split the data by PATIENT into train/val/test (no patient in two parts) and save it as JSON
    with per-part patient, patch and class counts.

    Example: edgecnn data split ~/idc --out runs/split.json --seed 1   (or --official-split ~/idc-official-split)
    """
    from edgecnn.data.split import patient_split, split_from_files

    official = official or official_alias
    try:
        _, ps = _load(path, border, False, quiet=quiet or json_out == "-")
        if official is not None:
            train_file = official / "cases_train.txt"
            val_file = official / "cases_val.txt"
            if not train_file.exists():
                raise DataError(f"{train_file} not found: --official-split needs a folder with cases_train.txt "
                                "(and cases_val.txt), one patient id per line")
            sp = split_from_files(ps, train_file, val_file if val_file.exists() else None,
                                  val=val, test=test, seed=seed)
        else:
            sp = patient_split(ps, val=val, test=test, seed=seed)
        sp.save(out, ps)
    except (DataError, ValueError) as e:
        fail(e)
    d = sp.to_dict(ps)
    d["path"] = str(out)
    if emit_json(d, json_out):
        return
    t = Table(title=f"patient split ({sp.method}, seed {sp.seed}) -> {out}", title_justify="left")
    for col in ("part", "patients", "patches", "no_idc", "idc", "idc share"):
        t.add_column(col, justify="right" if col != "part" else "left")
    for name, c in d["counts"].items():
        n = c["patches"]
        t.add_row(name, str(c["patients"]), f"{n:,}", f"{c['class_counts']['0']:,}", f"{c['class_counts']['1']:,}",
                  f"{c['class_counts']['1'] / max(n, 1):.1%}")
    _out.print(t)
    missing = {k: v for k, v in sp.info.get("missing", {}).items() if v}
    if missing:
        _out.print(f"listed ids not in the data (ignored): {missing}")


@app.command()
def pack(
    path: Optional[List[Path]] = PathArg,
    split_file: Path = typer.Option(..., "--split", help="split.json (e.g. exported/release/split.json): its train and val patients are packed, never its test ones."),
    out: Path = typer.Option(..., "--out", help="The .npz to write (~6 KB a patch)."),
    teacher: Optional[List[str]] = typer.Option(None, "--teacher", help="Run folder or model whose IDC probabilities on the training patches are stored as soft targets (repeat: their mean), as `edgecnn train --teacher`."),
    border: str = BorderOpt,
    json_out: Optional[str] = JsonOpt,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Pack a split's train and val patches into one .npz for a GPU box without TensorFlow.

    `python -m edgecnn.torchtrain --pack FILE` trains from it with PyTorch; the weights come back
    with `edgecnn train --init-from DIR --epochs 0`. Test patients stay here.

    Example: edgecnn data pack ~/idc ~/idc-more --split exported/release/split.json
    --teacher runs/release-teacher-0 --out release-pack.npz
    """
    from edgecnn.data.pack import Pack, pack_split
    from edgecnn.data.source import resolve_data

    try:
        src = resolve_data(path, allow_download=False, allow_synthetic=False, quiet=quiet)
        written = pack_split(src.spec, split_file, out, teacher, border=border, progress=not quiet,
                             console=None if quiet else _out)
    except (DataError, ValueError, RuntimeError) as e:
        fail(e)
    d = Pack(written).summary()
    if emit_json(d, json_out):
        return
    _out.print(f"{written}: train {d['train']['patches']:,} patches / {d['train']['patients']} patients, "
               f"val {d['val']['patches']:,} / {d['val']['patients']}" + (", with soft targets" if d["teacher"] else ""))


def _register_extensions() -> None:
    # edgecnn.data.mosaic adds its `mosaic` command to this app when imported; import it here so
    # `edgecnn data mosaic` exists however this app is reached. A missing module is fine.
    try:
        import edgecnn.data.mosaic  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name != "edgecnn.data.mosaic":
            raise


_register_extensions()
