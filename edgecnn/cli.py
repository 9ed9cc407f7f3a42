"""The `edgecnn` command. Each command is a thin wrapper over a library function.

TensorFlow is imported inside the commands that need it (train, evaluate of a Keras model,
quantize, export), so `edgecnn scan` and `edgecnn bench` run on the TF-free device install.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgecnn import __version__
from edgecnn.clikit import JSON_HELP, MULTI_DATA_HELP, Quiet, Verbose, emit_json, err, fail, quiet_logs

app = typer.Typer(
    name="edgecnn",
    help="Train, quantize, export and benchmark the IDC histopathology CNNs for edge devices.\n\n"
         "Pipeline: data → train → quantize → export → bench → scan. Start with `edgecnn data info PATH`.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = err

def metrics_table(title: str, m: dict) -> Table:
    t = Table(title=title)
    t.add_column("metric"); t.add_column("value", justify="right")
    for k in ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1", "roc_auc", "threshold",
              "n_patches", "n_patients"):
        if k in m:
            v = m[k]
            t.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
        if k == "balanced_accuracy" and m.get("balanced_accuracy_ci95"):
            lo, hi = m["balanced_accuracy_ci95"]
            t.add_row("  95% interval (patients resampled)", f"{lo:.4f}–{hi:.4f}")
    cm = m.get("confusion_matrix")
    if cm:
        # escape: rich would read the brackets as markup tags and print "confusion [ ]".
        t.add_row(escape("confusion [[tn fp] [fn tp]]"), str(cm))
    big = m.get("largest_patient")
    if big and m.get("n_patients", 0) > 1:
        t.add_row("largest patient (share of patches)", f"{big['patient']} ({big['share']:.0%})")
    worst = sorted((r for r in m.get("per_patient") or [] if r["n_patches"] >= 10), key=lambda r: r["accuracy"])[:3]
    if worst:
        t.add_row("least accurate patients (≥10 patches)",
                  ", ".join(f"{r['patient']} {r['accuracy']:.2f}/{r['n_patches']}" for r in worst))
    return t


@app.callback(invoke_without_command=True)
def _main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")):
    if version:
        typer.echo(__version__)
        raise typer.Exit()
    quiet_logs()  # TensorFlow's own log lines stay hidden unless the command is given --verbose


@app.command("models")
def models_cmd(
    build: bool = typer.Option(False, "--build", help="Build each model (needs TensorFlow) and print its parameter count."),
    json_out: Optional[str] = typer.Option(None, "--json", help=JSON_HELP),
    quiet: Quiet = False,
    verbose: Verbose = False,
):
    """List the registered networks (the names `train --model` accepts).

    Example: edgecnn models --build
    """
    from edgecnn.models import list_models, model_info

    rows = []
    for name in list_models():
        info = model_info(name)
        row = {"name": name, "description": info.description, "defaults": info.default_cfg,
               "seed_params": info.seed_params}
        if build:
            from edgecnn.models import create_model

            from edgecnn.models.macs import count_macs

            m = create_model(name)
            row.update(params=int(m.count_params()), input_shape=list(m.input_shape[1:]), macs_per_tile=count_macs(m))
        rows.append(row)
    t = Table(title="edgecnn models")
    for c in ("name", "description", "seed params") + (("built params", "MMAC / tile", "input") if build else ()):
        t.add_column(c)
    for r in rows:
        cells = [r["name"], r["description"], f"{r['seed_params']:,}" if r["seed_params"] else "-"]
        if build:
            cells += [f"{r['params']:,}", f"{r['macs_per_tile'] / 1e6:.1f}", str(r["input_shape"])]
        t.add_row(*cells)
    if json_out != "-":
        Console().print(t)
    emit_json(rows, json_out)


@app.command("train")
def train_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Run folder to create (e.g. runs/basic). Holds model, split, metrics, plots."),
    data: Optional[List[str]] = typer.Option(None, "--data", "-d", help="Kaggle-layout folder or zip. Default: $EDGECNN_DATA, else Kaggle download, else synthetic." + MULTI_DATA_HELP),
    model: str = typer.Option("basic_cnn", "--model", "-m", help="Network name; see `edgecnn models`."),
    epochs: Optional[int] = typer.Option(None, help="Maximum epochs, default 30 (early stopping may end sooner). With --resume: the new budget. 0 with --init-from: score and keep those weights as they are (e.g. from `python -m edgecnn.torchtrain`)."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Patches per training step."),
    lr: float = typer.Option(1e-3, help="Adam learning rate: the peak of --lr-schedule."),
    lr_schedule: str = typer.Option("plateau", "--lr-schedule", help="plateau (halve after 3 epochs without a validation gain) or cosine (warm-up, then a cosine down to 0 at the last epoch)."),
    ema: float = typer.Option(0.0, "--ema", help="Score and keep a moving average of the weights with this decay per step (0.998 ≈ the last 500 steps): steadier validation scores; 0 = off."),
    balance: str = typer.Option("weights", help="Class balance: weights (class-weighted loss), undersample (50/50 as the seed), none."),
    input_size: Optional[int] = typer.Option(None, "--input-size", help="Model input in pixels. basic_cnn: 50. vgg13: 224 on GPU, the native 50 on CPU."),
    seed_order: bool = typer.Option(False, "--seed-order", help="Keep the seed's Conv(relu)→BN order (QAT then needs a custom config)."),
    seed: int = typer.Option(0, help="Seed for the split, shuffling and augmentation."),
    split: str = typer.Option("auto", help="auto (seeded, stratified by patient), official (published train/val ids; other patients → test), or a split.json path."),
    official_split: Optional[Path] = typer.Option(None, "--official-split", help="Folder with cases_train.txt / cases_val.txt (for --split official)."),
    val: float = typer.Option(0.15, help="Share of patients for validation (threshold and model selection)."),
    test: float = typer.Option(0.15, help="Share of patients held out for the final test metrics."),
    patience: int = typer.Option(8, help="Stop after this many epochs without a validation balanced-accuracy gain."),
    swa_epochs: int = typer.Option(0, "--swa-epochs", help="At the end, also try the average of the last N epochs' weights; kept only if it scores higher on validation."),
    border: str = typer.Option("pad", help="Border patches smaller than 50×50: pad (with white) or drop."),
    no_augment: bool = typer.Option(False, "--no-augment", help="Turn off flips, rotations and colour jitter."),
    color_jitter: float = typer.Option(1.0, "--color-jitter", help="Scale the colour-jitter ranges (brightness ±0.05, contrast/saturation ±10%, hue ±0.02 at 1.0; 0 = off)."),
    label_smoothing: float = typer.Option(0.0, "--label-smoothing", help="Move this share of the target from the true class to both classes equally (0.1 is usual; 0 = off)."),
    teacher: Optional[List[str]] = typer.Option(None, "--teacher", help="Distillation: a run folder, .keras or exported model whose IDC probabilities on the training patches become soft targets; repeat for an ensemble (their mean). Same input size and classes as the student."),
    kd_alpha: float = typer.Option(0.5, "--kd-alpha", help="With --teacher: weight of the teacher's soft targets in the loss (the labels get 1 - this)."),
    kd_temperature: float = typer.Option(2.0, "--kd-temperature", help="With --teacher: softening temperature of teacher and student distributions (Hinton et al.)."),
    init_from: Optional[Path] = typer.Option(None, "--init-from", help="Start from the weights of a run folder or .keras file (same --model and --input-size) instead of random ones: fine-tune the release on your own lab's patches, or give a finished run a new schedule. Also a folder from `python -m edgecnn.torchtrain` (PyTorch GPU training, docs/gpu-training.md), checked against PyTorch's probabilities. Refused if it trained on this run's validation or test patients."),
    stain_jitter: float = typer.Option(0.0, "--stain-jitter", help="H&E stain augmentation: scale and shift each image's haematoxylin/eosin densities (HED space) by up to this much; 0.05 light, 0.2 strong, 0 = off."),
    mixed_precision: str = typer.Option("auto", help="Compute precision: auto (float16 when a GPU is found), on (float16), bf16 (bfloat16: ~2× faster on CPUs with AMX or AVX512-BF16 and on Ampere+ GPUs; weights stay float32), off."),
    multi_gpu: bool = typer.Option(False, "--multi-gpu", help="Same as --strategy mirrored."),
    strategy: str = typer.Option("auto", "--strategy", help="tf.distribute: auto (mirrored when several GPUs), mirrored (every local GPU/device), multiworker (machines listed in TF_CONFIG), none."),
    steps_per_epoch: Optional[int] = typer.Option(None, help="Cap steps per epoch (smoke runs)."),
    max_patients: Optional[int] = typer.Option(None, help="Use only this many patients, chosen by --seed (smoke runs)."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run in --out from its last checkpoint."),
    json_out: Optional[str] = typer.Option(None, "--json", help=JSON_HELP),
    quiet: Quiet = False,
    verbose: Verbose = False,
):
    """Train a network on IDC patches with a patient-level split.

    Example: edgecnn train --model basic_cnn --data ~/idc --out runs/basic --epochs 30

    Fine-tune the release on your own patches: edgecnn train --data ~/mylab
    --init-from exported/release/basic_cnn-fp32.keras --lr 1e-4 --epochs 10 --out runs/mylab
    """
    from edgecnn.data.source import resolve_data
    from edgecnn.train.fit import TrainConfig, train

    try:
        src = None if resume else resolve_data(data)
        cfg = TrainConfig(out=str(out), data=src.spec if src else None, model=model, epochs=30 if epochs is None else epochs,
                          batch_size=batch_size, lr=lr, lr_schedule=lr_schedule, ema=ema, balance=balance, input_size=input_size, seed_order=seed_order,
                          seed=seed, split=split, official_split_dir=str(official_split) if official_split else None,
                          val=val, test=test, patience=patience, swa_epochs=swa_epochs, border=border, augment=not no_augment, color_jitter=color_jitter, stain_jitter=stain_jitter,
                          label_smoothing=label_smoothing, teachers=[str(Path(t).resolve()) for t in teacher or []], kd_alpha=kd_alpha, kd_temperature=kd_temperature,
                          init_from=str(init_from.resolve()) if init_from else None, mixed_precision=mixed_precision, multi_gpu=multi_gpu, strategy=strategy, steps_per_epoch=steps_per_epoch,
                          max_patients=max_patients)
        run = train(cfg, resume=resume, progress=not quiet, console=console, epochs=epochs)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        fail(str(e))
    from edgecnn.fsutil import read_json

    m = read_json(run.metrics_path)
    if json_out != "-":
        Console().print(metrics_table(f"test split of {run.path}", m))
    console.print(f"Run folder: [bold]{run.path}[/] (model.keras, metrics.json, plots/)")
    emit_json(m, json_out)


@app.command("evaluate")
def evaluate_cmd(
    target: Path = typer.Argument(..., help="A run folder, a .keras model, or an exported artifact (.tflite, .onnx, .xml, .engine)."),
    data: Optional[List[str]] = typer.Option(None, "--data", "-d", help="Kaggle-layout folder or zip. Default: $EDGECNN_DATA." + MULTI_DATA_HELP),
    qat: bool = typer.Option(False, "--qat", help="With a run folder: score its QAT model instead of the float one."),
    threshold: Optional[float] = typer.Option(None, help="Override the stored operating threshold."),
    runtime: Optional[str] = typer.Option(None, help="Runtime for an artifact (litert, onnxruntime, openvino, tensorrt); default from the suffix."),
    split: Optional[Path] = typer.Option(None, "--split", help="split.json, or a run folder holding one: score only its --part patients (the honest number). Without it every patch is scored."),
    part: str = typer.Option("test", "--part", help="Which part of --split: test, val or train."),
    tta: bool = typer.Option(False, "--tta", help="Test-time augmentation: mean over the 8 rotations/mirrors of each patch (8× the compute)."),
    context: bool = typer.Option(False, "--context", help="Also score field-level: each patch with its neighbours (same patient, from the x/y in the file names) through the artifact's context stage; results under \"context\" in --json."),
    context_from: Optional[Path] = typer.Option(None, "--context-from", help="With --context: the stage from this JSON (context show --json, or a manifest) instead of the target's manifest."),
    border: str = typer.Option("pad", help="Border patches smaller than 50×50: pad or drop."),
    no_verify: bool = typer.Option(False, "--no-verify", help="Load an artifact even if its sha256 differs from the manifest."),
    json_out: Optional[str] = typer.Option(None, "--json", help=JSON_HELP),
    quiet: Quiet = False,
    verbose: Verbose = False,
):
    """Score a model on a data folder: accuracy, balanced accuracy, IDC F1, ROC AUC, confusion matrix.

    Examples: edgecnn evaluate runs/basic --split runs/basic --data ~/idc   (its test patients)
              edgecnn evaluate exported/release/basic_cnn-int8-qat.tflite --data ~/blind-patients --tta --json blind.json
    """
    from edgecnn.data.source import resolve_data
    from edgecnn.train.evaluate import evaluate

    try:
        data = resolve_data(data, allow_download=False, allow_synthetic=False).spec
        m = evaluate(target, data, threshold=threshold, qat=qat, runtime=runtime, border=border, progress=not quiet,
                     verify=not no_verify, split=split, part=part, tta=tta, context=context or context_from is not None,
                     context_from=context_from)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        fail(str(e))
    scored = f"{target} on {data}" + (f" ({m['split']['part']} patients of {m['split']['file']})" if m["split"] else "")
    if json_out != "-":
        Console().print(metrics_table(f"patch-level: {scored}", m))
        if m.get("context"):
            Console().print(metrics_table(f"field-level ({m['context']['stage']['describe']}): {scored}", m["context"]))
    for w in m["warnings"]:
        err.print(f"[yellow]warning:[/] {escape(w)}")
    source = m["model"].get("threshold_from", "")
    if threshold is None and source.startswith("default"):
        err.print(f"[yellow]warning:[/] {target}: threshold {source}")
    emit_json(m, json_out)


def _register_subcommands() -> None:
    """Commands that live beside their library code (each module keeps TensorFlow imports lazy)."""
    from edgecnn.bench.cli import bench
    from edgecnn.context.cli import app as context_app
    from edgecnn.data.cli import app as data_app
    from edgecnn.demo import demo
    from edgecnn.export.cli import export, quantize
    from edgecnn.scan.cli import mosaic_command, scan, tune_command

    data_app.command("mosaic")(mosaic_command)
    app.add_typer(data_app, name="data")
    app.add_typer(context_app, name="context")
    app.command("quantize")(quantize)
    app.command("export")(export)
    app.command("bench")(bench)
    app.command("scan")(scan)
    app.command("tune")(tune_command)
    app.command("demo")(demo)


_register_subcommands()


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
