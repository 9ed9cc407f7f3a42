"""`edgecnn context fit|show`: the field-level stage that `scan`, `evaluate --context` and `bench` use."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from edgecnn.clikit import JSON_HELP, MULTI_DATA_HELP, Quiet, Verbose, emit_json, err, fail

app = typer.Typer(help="Field-level context: classify each tile with its neighbours (fit a stage, show one).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@app.command("fit")
def fit_cmd(
    targets: List[Path] = typer.Argument(..., help="Exported artifacts (.tflite, .onnx, …) to fit a stage for; each gets its own threshold."),
    data: Optional[List[str]] = typer.Option(None, "--data", "-d", help="Kaggle-layout folder or zip holding the split's patients. Default: $EDGECNN_DATA." + MULTI_DATA_HELP),
    split: Path = typer.Option(..., "--split", help="split.json (or a folder holding one) of the targets' training: stages are chosen on its val patients; test is never read."),
    folds_dir: Optional[Path] = typer.Option(None, "--folds-dir", help="Where the k fold models live (trained here when missing, resumed when interrupted, reused when complete). Without it only the neighbour-mean candidates are tried."),
    folds: int = typer.Option(3, "--folds", help="k: training patients are dealt into k folds; fold i's model never sees fold i."),
    fold_epochs: Optional[int] = typer.Option(None, "--fold-epochs", help="Epochs per fold model (default 7, the teachers' recipe otherwise)."),
    no_attach: bool = typer.Option(False, "--no-attach", help="Only report; leave the manifests as they are."),
    json_out: Optional[str] = typer.Option(None, "--json", help=JSON_HELP),
    quiet: Quiet = False,
    verbose: Verbose = False,
):
    """Choose a context stage on validation patients and store it in each target's manifest.

    Learned candidates are fitted on out-of-fold outputs of the training patients (needs TensorFlow
    for the fold models); neighbour means need nothing but the targets.

    Example: edgecnn context fit exported/release/basic_cnn-int8-qat.tflite --data ~/idc --split exported/release/split.json --folds-dir runs/folds
    """
    from edgecnn.data.source import resolve_data
    from edgecnn.train.context_fit import fit_context

    try:
        spec = resolve_data(data, allow_download=False, allow_synthetic=False).spec
        res = fit_context(targets, spec, split, folds_dir=folds_dir, k=folds, fold_epochs=fold_epochs,
                          attach=not no_attach, progress=not quiet, console=None if quiet else err)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        fail(str(e))
    if json_out != "-":
        for r in res:
            Console().print(_candidates_table(r))
    emit_json(res, json_out)


def _candidates_table(r: dict) -> Table:
    t = Table(title=f"context candidates for {Path(r['target']).name} (validation patients)")
    for c in ("stage", "val ROC AUC", "val BAC", "threshold"):
        t.add_column(c)
    chosen = r["stage"]
    for row in r["candidates"]:
        mark = " ←" if all(chosen.get(k) == v for k, v in row["params"].items()) else ""
        t.add_row(row["stage"] + mark, f"{row['val_auc']:.4f}", f"{row['val_bac']:.4f}", f"{row['threshold']:.3f}")
    return t


@app.command("show")
def show_cmd(
    artifact: Path = typer.Argument(..., help="An exported artifact whose manifest may carry a context stage."),
    json_out: Optional[str] = typer.Option(None, "--json", help=JSON_HELP),
):
    """Print the context stage an artifact carries (or say that it runs patch-level).

    Example: edgecnn context show exported/release/basic_cnn-int8-qat.tflite
    """
    from edgecnn.context.load import stage_of_artifact

    try:
        stage = stage_of_artifact(artifact)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        fail(str(e))
    if stage is None:
        err.print(f"{artifact}: no context stage in its manifest; scan and evaluate run it patch-level")
        emit_json(None, json_out)
        return
    if json_out != "-":
        chosen = stage.meta.get("chosen_on", {})
        Console().print(f"{artifact}: {stage.describe()}, threshold {stage.threshold:.3f}, "
                        f"{stage.tile_size} px tiles at stride {stage.stride}; validation AUC "
                        f"{chosen.get('val_roc_auc', float('nan')):.4f}")
    emit_json(stage.to_dict(), json_out)
