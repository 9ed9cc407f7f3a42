"""Write OUT_DIR/MODEL_CARD.md (+ split.json, and the float Keras reference unless --no-keras)
from a run and the manifests its export wrote.

Usage: python scripts/model_card.py RUN OUT_DIR [--no-keras]
(--no-keras for VGG13: its float model is 130 MB, too big to commit; it stays in the run.)"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from edgecnn.export.manifests import portable_run_path
from edgecnn.fsutil import atomic_path, read_json, write_bytes, write_json
from edgecnn.manifest import read_manifest
from edgecnn.train.run import RunFolder


NETWORKS = {
    "basic_cnn": "the seed study's Basic CNN",
    "vgg13": "VGG13 (Simonyan & Zisserman 2015; the seed study's second network) at the patches' native size",
    "mobile_student_100": "the small-device student (strided stem, 5 depthwise-separable blocks, width 1.0)",
    "mobile_student_125": "the small-device student (strided stem, 5 depthwise-separable blocks, width 1.25)",
}


def main(run_dir: str, out_dir: str, *flags: str) -> None:
    run, out = RunFolder(run_dir), Path(out_dir)
    shutil.copyfile(run.split_path, out / "split.json")
    cfg, info, test = run.config(), run.model_info(), read_json(run.metrics_path)
    name, model = info["model"], run.load_model()
    keras_note = _write_keras_reference(run, out, name, info, model) if "--no-keras" not in flags else (
        f"The float Keras model ({model.count_params() * 4 / 1e6:.0f} MB of weights) is not shipped; "
        f"`{_rebuild_command(name, run)}` rebuilds it in the run folder.")
    qat = read_json(run.qat_dir / "metrics.json") if (run.qat_dir / "metrics.json").exists() else {}
    split = read_json(run.split_path)
    ci = test.get("balanced_accuracy_ci95")
    # With a few dozen test patients the interval is the honest size of the claim.
    ci_text = (f" (95 % interval {ci[0]:.3f}–{ci[1]:.3f} from resampling the {test['n_patients']} test patients)"
               if ci else "")
    rows = []
    for f in sorted(out.iterdir()):
        m = read_manifest(f, required=False) if f.suffix in (".tflite", ".onnx") else None
        if m:
            rows.append(artifact_row(m))
    c = split["counts"]
    size = info["input_size"]
    text = f"""# Model card: edgecnn release `{name}`

**Research use only — not a medical device; do not use for diagnosis.**

- Network: {NETWORKS.get(name, name)} ({model.count_params():,} parameters), Conv → BN → ReLU order, {size}×{size}×3 input
  (RGB pixels / 255), softmax over (no_idc, idc). IDC is called when p(idc) ≥ the threshold.
- Data: Kaggle "Breast Histopathology Images" (CC0; Janowczyk & Madabhushi 2016), the
  {sum(v['patches'] for v in c.values()):,}-patch subset of {sum(v['patients'] for v in c.values())} patients in the project's shared data.
- Split by patient (seed {split.get('seed')}, stratified by IDC share): train {c['train']['patients']} patients /
  {c['train']['patches']:,} patches, validation {c['val']['patients']} / {c['val']['patches']:,}, test {c['test']['patients']} / {c['test']['patches']:,}. Patient ids in `split.json`.
{_training_note(run, cfg, info, test)}- Float model on the test patients: balanced accuracy {test['balanced_accuracy']:.4f}{ci_text}, accuracy {test['accuracy']:.4f},
  IDC F1 {test['f1']:.4f}, ROC AUC {test['roc_auc']:.4f}.
- QAT: validation balanced accuracy float {qat.get('val_bac_float', float('nan')):.4f} → QAT {qat.get('val_bac_qat', float('nan')):.4f}.

## Artifacts (test patients)

| file | format | size | balanced acc. | ROC AUC | agreement with float | threshold |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

{keras_note}

{context_section(out)}{npu_section(out)}## Limits

One public dataset from one institution; other stains, scanners and magnifications are untested.
Inputs must be at the dataset's scale (50 px ≈ 50×50 patch of a 40× slide downsampled 16×).
Patch-level labels come from coarse annotations and are noisy. Rebuild with
`{_rebuild_command(name, run)}` (see docs/release.md).
"""
    write_bytes(out / "MODEL_CARD.md", text.encode())
    print(f"wrote {out / 'MODEL_CARD.md'}")


def artifact_row(m: dict) -> str:
    t, a = m["metrics"]["test"], m["metrics"]["agreement"]
    # A file compiled from another shipped file is compared with that file, not with the float model.
    made_from = (m.get("source") or {}).get("artifact")
    agree = f"{a['agreement']:.4f}" + (f" (with `{made_from['file']}`)" if made_from else "")
    return (f"| `{m['file']}` | {m['format']} {m['precision']} | {m['size_bytes'] / 1e6:.2f} MB | "
            f"{t['balanced_accuracy']:.4f} | {t['roc_auc']:.4f} | {agree} | {m['threshold']:.3f} |")


def npu_section(out: Path) -> str:
    """Vela's estimates for the NPU artifacts (`edgecnn export --format vela`); empty when none."""
    rows = []
    for f in sorted(out.glob("*-vela.tflite")):
        v = (read_manifest(f, required=False) or {}).get("vela")
        if v:
            rows.append(f"| `{f.name}` | {v['accelerator']} at {v['clock_mhz']:g} MHz | {v['npu_operators']} of "
                        f"{v['npu_operators'] + v['cpu_operators']} ({100 * v['npu_op_share']:.0f} %) | "
                        f"{v['sram_kib']:.0f} KiB | {v['flash_kib']:.0f} KiB | {v['ms_per_tile']:.2f} ms |")
    if not rows:
        return ""
    return """## Arm Ethos-U NPU (Vela's estimates)

uint8 pixels in, int8 scores out, so no operator is left on the microcontroller's CPU. The file runs
under TensorFlow Lite Micro with the Ethos-U driver; its accuracy above is that of the integer graph
Vela compiled.

| file | NPU | operators on the NPU | SRAM | flash | time per tile |
|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n\n"


def context_section(out: Path) -> str:
    """The artifacts' context stages (from their manifests) and, once scripts/context_report.py has
    run, their patch- and field-level scores; empty when no artifact carries a stage."""
    rows, stage = [], None
    for f in sorted(out.iterdir()):
        m = read_manifest(f, required=False) if f.suffix in (".tflite", ".onnx") else None
        if not m or not m.get("context"):
            continue
        stage = stage or m["context"]
        s = (m.get("metrics") or {}).get("context")
        cell = lambda d: f"{d['balanced_accuracy']:.4f} ({d['balanced_accuracy_ci95'][0]:.3f}–{d['balanced_accuracy_ci95'][1]:.3f}), AUC {d['roc_auc']:.4f}"  # noqa: E731
        scores = f"{cell(s['test']['patch'])} | {cell(s['test']['field'])}" if s else "– | –"
        rows.append(f"| `{f.name}` | {m['context']['threshold']:.3f} | "
                    f"{m['context']['meta']['chosen_on']['val_roc_auc']:.4f} | {scores} |")
    if stage is None:
        return ""
    chosen, learned = stage["meta"]["chosen_on"], stage["meta"].get("learned_from")
    source = (f"fitted on out-of-fold outputs of the {learned['patients']} training patients "
              f"({learned['out_of_fold_patches']:,} patches, {len(learned['folds'])} fold models that never saw them)"
              if learned else "no learned candidates (no fold models)")
    return f"""## Context stage (field-level, with neighbouring tiles)

Each artifact carries a context stage in its manifest (`edgecnn context show FILE`): `{stage['kind']}`, radius
{stage['radius']} tiles; learned candidates {source}; chosen on the {chosen['patients']} validation patients
by {chosen['rule']}. `edgecnn scan` uses it by default (`--no-context` classifies tiles alone);
`edgecnn evaluate FILE --context` scores it from the x/y in the patch names. The data holds about 28 % of
each patient's grid, so these field-level figures understate what a complete field of view gives.

| file | stage threshold | val AUC (field) | test patch-level BAC (95 % interval) | test field-level BAC (95 % interval) |
|---|---|---|---|---|
{chr(10).join(rows)}

"""


def _write_keras_reference(run: RunFolder, out: Path, name: str, info: dict, model) -> str:
    # The float model without optimizer state: the reference for the seed's `model.predict`.
    with atomic_path(out / f"{name}-fp32.keras") as tmp:
        model.save(tmp)
    # Its threshold and input size, where `edgecnn evaluate` and `bench --keras-ref` look for them.
    # The run as named from the project folder, never the build machine's absolute path.
    write_json(out / f"{name}-fp32.json", {**info, "source_run": portable_run_path(run.path)})
    return (f"`{name}-fp32.keras` is the float Keras model, kept as the reference for benchmarks;\n"
            f"`{name}-fp32.json` beside it holds its threshold, which `edgecnn evaluate` applies.")


def _distill_note(run: RunFolder, cfg: dict) -> str:
    if not cfg.get("teachers"):
        return ""
    # Teacher runs by folder name only: their absolute paths belong to the machine that trained them.
    names = ", ".join(f"`{Path(t).name}`{_seed_of(Path(t))}" for t in cfg["teachers"])
    report = run.path / "teachers.json"
    mean = read_json(report)["mean"] if report.exists() else None
    n = len(cfg["teachers"])
    whom = f"the mean of {n} teachers" if n > 1 else "1 teacher"
    their = "their" if n > 1 else "its"
    scored = (f"; {'their mean' if n > 1 else 'it'} scores validation {mean['val_balanced_accuracy']:.4f}, "
              f"AUC {mean['val_roc_auc']:.4f} (`teachers.json` in the run)" if mean else "")
    return (f"- Distilled from {whom} ({names}), "
            f"weight {cfg['kd_alpha']} on {their} probabilities at temperature {cfg['kd_temperature']}{scored}.\n")


def _training_note(run: RunFolder, cfg: dict, info: dict, test: dict) -> str:
    if (run.path / "torchtrain.json").exists():
        return _torchtrain_note(read_json(run.path / "torchtrain.json"), cfg, info)
    return f"""- Training: {cfg['epochs']} epochs max{_budget_note(cfg)}, early stopping on validation balanced accuracy ({_kept_note(info)}),
  batch {cfg['batch_size']}, Adam {cfg['lr']} ({cfg.get('lr_schedule', 'plateau')} schedule), class-weighted loss,
  dihedral flips/rotations, colour jitter ×{cfg.get('color_jitter', 1.0)}, H&E stain jitter {cfg.get('stain_jitter', 0.0)}{_ema_note(cfg)},
  {test.get('train_seconds', 0) / 60:.0f} min on 2 CPU cores{_precision_note(cfg)}. Threshold {info['threshold']:.3f} chosen on validation patients.
{_init_note(cfg)}{_distill_note(run, cfg)}"""


def _torchtrain_note(summary: dict, cfg: dict, info: dict) -> str:
    """A model trained by edgecnn.torchtrain on a GPU box and imported with --epochs 0."""
    models, kept = summary["models"], summary["kept"]
    r = models[0]["recipe"]
    seeds = [m for m in models if m["name"] != "student"]
    student = next((m for m in models if m["name"] == "student"), None)
    what = f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''} × {r['epochs']} epochs"
    if student:
        what += (f", then a student of {student['recipe']['epochs']} epochs distilled from the mean of those seeds"
                 + (" and the pack's teachers" if summary["pack"].get("teacher") else ""))
    scores = "; ".join(f"{m['name']} {m['best']['val_balanced_accuracy']:.4f} (epoch {m['best']['epoch']})" for m in models)
    src = cfg["init_from_source"]
    return f"""- Training: with PyTorch {summary['torch']} on one {summary['device']} (`python -m edgecnn.torchtrain`,
  the same network and recipe as `edgecnn train`): {what}. Batch {r['batch_size']}, Adam {r['lr']} (cosine schedule),
  class-weighted loss, dihedral flips/rotations, colour jitter ×{r['color_jitter']}, H&E stain jitter {r['stain_jitter']},
  bfloat16 compute (float32 weights){_pack_teacher_note(summary, r)}.
  Validation balanced accuracy of each, at its best epoch: {scores}. Kept: {kept['trained']}, the highest.
- Imported with `edgecnn train --init-from DIR --epochs 0` (weights sha256 {src['sha256'][:12]}…, sent as {kept['dtype']}):
  Keras reproduces PyTorch's probabilities to {src['check_max_abs_diff']:.0e}, BN statistics as trained.
  Threshold {info['threshold']:.3f} chosen here on validation patients.
"""


def _pack_teacher_note(summary: dict, r: dict) -> str:
    if not summary["pack"].get("teacher"):
        return ""
    names = ", ".join(f"`{t}`" for t in summary["pack"].get("teachers", []))
    return (f"; distilled (weight {r['kd_alpha']}, temperature {r['kd_temperature']}) from the pack's teachers"
            + (f" ({names})" if names else " (`edgecnn data pack --teacher`)"))


def _init_note(cfg: dict) -> str:
    src = cfg.get("init_from_source")
    if not src:
        return ""
    # The source's run folder, by name: it holds the first stage's recipe and history.
    folder = Path(src["path"]).parent
    return (f"- Started from the weights of `{folder.name}/{Path(src['path']).name}` (sha256 {src['sha256'][:12]}…), "
            f"not from random ones: the epochs and minutes above are on top of that run's.\n")


def _kept_note(info: dict) -> str:
    span = info.get("weight_average_of_epochs")
    return (f"kept: the average of epochs {span[0]}–{span[1]}'s weights" if span
            else f"best epoch {info['epoch']}")


def _seed_of(teacher: Path) -> str:
    cfg = teacher / "config.json"
    return f" (seed {read_json(cfg)['seed']})" if cfg.exists() else ""


def _precision_note(cfg: dict) -> str:
    policy = cfg.get("device", {}).get("policy", "")
    return f" in {policy.removeprefix('mixed_')} compute (float32 weights)" if policy.startswith("mixed_") else ""


def _ema_note(cfg: dict) -> str:
    return f", scored as the moving average of its weights (decay {cfg['ema']})" if cfg.get("ema") else ""


def _budget_note(cfg: dict) -> str:
    return "".join(f" (budget {c['from']} → {c['to']} on resume after epoch {c['after_epoch']})"
                   for c in cfg.get("epoch_budget_changes", []))


def _rebuild_command(name: str, run: RunFolder) -> str:
    cmd = "make release" if name == "basic_cnn" else f"MODEL={name} make release"
    if (run.path / "torchtrain.json").exists():
        # Trained on a GPU box: the release script imports that folder instead of training here.
        cmd = f"{cmd.removesuffix('make release')}GPU_RUN=DIR make release` with DIR from `python -m edgecnn.torchtrain"
    return cmd


if __name__ == "__main__":
    # The same filter as the CLI: TensorFlow's native import lines would bury this script's output.
    from edgecnn import logfilter

    logfilter.install()
    main(*sys.argv[1:])
