"""What one ``python -m edgecnn.torchtrain`` call trains and keeps.

Several seeds of the recipe (each distilled from the pack's teachers, when it has them), then
optionally a student distilled from the mean of those seeds and the pack's teachers: an
ensemble's knowledge in one network of the same size. Of everything trained, the model with the
best validation balanced accuracy is written out; test patients are not in the pack.
"""

from __future__ import annotations

import json
import platform
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from edgecnn import CLASS_NAMES
from edgecnn.fsutil import atomic_path, write_json
from edgecnn.torchtrain.jobs import train_seeds_parallel
from edgecnn.torchtrain.loop import GpuData, Recipe, Trained, past, predict, score, train_model
from edgecnn.torchtrain.models import create_model, keras_weights, load_keras_weights

N_CHECK = 64   # validation patches whose probabilities the Keras import must reproduce


def run_plan(pack, out: Path, model_name: str, recipe: Recipe, seeds: list[int], distill_epochs: int = 0,
             input_size: int = 50, deadline: float | None = None, save_dtype: str = "float32",
             device: str = "cuda", log: Callable[[str], None] = print, jobs: int = 1) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "split.json", pack.split)    # --init-from reads it to refuse a leak
    dev = torch.device(device)
    torch.backends.cudnn.benchmark = True
    data = GpuData(pack, dev, input_size)
    make = lambda: create_model(model_name, input_size)  # noqa: E731
    base_teacher = None if pack.teacher is None else torch.from_numpy(pack.teacher).to(dev)
    summary: dict[str, Any] = {"pack": pack.summary(), "model": model_name, "input_size": input_size,
                               "device": _device_name(dev), "torch": torch.__version__, "jobs": jobs, "models": []}
    if jobs > 1 and len(seeds) > 1:
        trained = train_seeds_parallel(pack.path, out, model_name, input_size, recipe, seeds, jobs, device,
                                       deadline, log)
        _write(out, trained, summary, data, model_name, input_size, save_dtype, log)
    else:
        trained = _train_seeds(seeds, make, data, recipe, base_teacher, deadline, log,
                               lambda done: _write(out, done, summary, data, model_name, input_size, save_dtype, log))
    if distill_epochs and trained and not past(deadline):
        members = [torch.from_numpy(predict(t.model, data, data.x_train)).to(dev) for t in trained]
        summary["ensemble_of_seeds"] = score(data.y_val, np.mean([predict(t.model, data, data.x_val) for t in trained], 0))
        teacher = torch.stack(members + ([base_teacher] if base_teacher is not None else [])).mean(0)
        r = replace(recipe, epochs=distill_epochs, seed=max(seeds) + 100)
        trained.append(train_model("student", make, data, r, teacher, deadline, log))
        _write(out, trained, summary, data, model_name, input_size, save_dtype, log)
    return summary


def _train_seeds(seeds: list[int], make, data: GpuData, recipe: Recipe, teacher, deadline: float | None, log,
                 after_each: Callable[[list[Trained]], None]) -> list[Trained]:
    trained: list[Trained] = []
    for seed in seeds:
        if trained and past(deadline):
            log(f"deadline reached: seeds from {seed} on are not trained")
            break
        trained.append(train_model(f"seed{seed}", make, data, replace(recipe, seed=seed), teacher, deadline, log))
        after_each(trained)
    return trained


def _check_probs(weights: dict[str, np.ndarray], x: torch.Tensor, data: GpuData, model_name: str,
                 input_size: int) -> np.ndarray:
    """Probabilities of the weights as saved (rounded when float16), in float32 without TF32,
    so that the Keras import compares like with like."""
    model = create_model(model_name, input_size).to(data.device)
    load_keras_weights(model, weights)
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        return predict(model, data, x, fast=False)
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32


def _device_name(dev: torch.device) -> str:
    return torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu"


def _write(out: Path, trained: list[Trained], summary: dict[str, Any], data: GpuData, model_name: str,
           input_size: int, save_dtype: str, log) -> None:
    """After every model: weights of the best so far, and the summary (a later crash loses nothing)."""
    best = max(trained, key=lambda t: t.best["val_balanced_accuracy"])
    weights = keras_weights(best.model, np.dtype(save_dtype))
    check_x = data.x_val[:N_CHECK]
    check_p = _check_probs(weights, check_x, data, model_name, input_size)
    meta = {"model": model_name, "input_size": input_size, "class_names": list(CLASS_NAMES),
            "trained": best.name, "threshold": best.best["threshold"], "epoch": best.best["epoch"],
            "val_balanced_accuracy": best.best["val_balanced_accuracy"], "val_roc_auc": best.best["val_roc_auc"],
            "dtype": save_dtype, "keras_name": getattr(best.model, "keras_name", model_name)}
    with atomic_path(out / "weights.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **weights, check_images=check_x.cpu().numpy(), check_probs=check_p,
                     meta_json=np.array(json.dumps(meta)))
    with atomic_path(out / "val_probs.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, labels=data.y_val, **{t.name: t.val_probs for t in trained if t.val_probs is not None})
    summary.update(models=[t.report() for t in trained], kept=meta)
    write_json(out / "summary.json", summary)
    log(f"kept {best.name} (epoch {best.best['epoch']}, val BAC {best.best['val_balanced_accuracy']:.4f}) "
        f"in {out / 'weights.npz'}")
