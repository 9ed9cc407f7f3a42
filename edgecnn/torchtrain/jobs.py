"""Seeds trained side by side, one process each, on one GPU.

A VGG13 step at 50 px is a few hundred small kernels: one Python process keeps an H100 mostly
idle waiting for launches (13 ms a step). Several processes on the same GPU fill it: six 50 px
seeds at once ran at 2.1x the throughput of one (docs/gpu-training.md). Each child is an ordinary
``python -m edgecnn.torchtrain`` call for one seed into ``OUT/jobs/seed<N>``; the parent reads
their weights back as ``Trained`` models and goes on (student, the kept model) as if it had
trained them itself.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

import numpy as np

from edgecnn.fsutil import read_json
from edgecnn.torchtrain.loop import Recipe, Trained, past
from edgecnn.torchtrain.models import create_model, load_keras_weights


def child_argv(pack: Path, out: Path, model_name: str, input_size: int, r: Recipe, seed: int,
               device: str, minutes_left: float | None) -> list[str]:
    """The command line of one child: the parent's recipe, one seed, float32 weights (the parent
    rounds once, at the end, to its own --save-dtype)."""
    argv = [sys.executable, "-m", "edgecnn.torchtrain", "--pack", str(pack), "--out", str(out),
            "--model", model_name, "--input-size", str(input_size), "--seeds", str(seed),
            "--epochs", str(r.epochs), "--lr", repr(r.lr), "--batch-size", str(r.batch_size),
            "--kd-alpha", repr(r.kd_alpha), "--kd-temperature", repr(r.kd_temperature),
            "--label-smoothing", repr(r.label_smoothing), "--stain-jitter", repr(r.stain_jitter),
            "--color-jitter", repr(r.color_jitter), "--ema", repr(r.ema), "--device", device]
    if r.max_steps is not None:
        argv += ["--max-steps", str(r.max_steps)]
    if minutes_left is not None:
        argv += ["--deadline-minutes", repr(max(0.0, minutes_left))]
    return argv


def train_seeds_parallel(pack_path: Path, out: Path, model_name: str, input_size: int, recipe: Recipe,
                         seeds: list[int], jobs: int, device: str, deadline: float | None,
                         log: Callable[[str], None] = print) -> list[Trained]:
    """Train ``seeds`` with at most ``jobs`` at once; a child that fails stops the call."""
    pending, running, done = list(seeds), {}, []
    while pending or running:
        started = bool(done or running)
        while pending and len(running) < jobs and not (started and past(deadline)):
            seed = pending.pop(0)
            folder = out / "jobs" / f"seed{seed}"
            left = None if deadline is None else (deadline - time.monotonic()) / 60
            argv = child_argv(pack_path, folder, model_name, input_size, recipe, seed, device, left)
            running[seed] = (subprocess.Popen(argv), folder)
            log(f"seed{seed}: started in its own process ({len(running)} running)")
            started = True
        if pending and started and past(deadline):
            log(f"deadline reached: seeds {pending} are not trained")
            pending = []
        for seed, (proc, folder) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[seed]
            if proc.returncode != 0:
                _stop(running)
                raise RuntimeError(f"the process training seed {seed} failed (exit {proc.returncode}); "
                                   f"its output is above, its folder {folder}")
            done.append(load_trained(folder, model_name, input_size, replace(recipe, seed=seed), device))
        time.sleep(0.5)
    return sorted(done, key=lambda t: seeds.index(t.recipe.seed))


def load_trained(folder: Path, model_name: str, input_size: int, recipe: Recipe, device: str) -> Trained:
    """A child's kept model back as a ``Trained`` (weights, scores, history, val probabilities)."""
    report = read_json(folder / "summary.json")["models"][0]
    with np.load(folder / "weights.npz") as z:
        weights = {k: z[k] for k in z.files if "/" in k}
    model = create_model(model_name, input_size)
    load_keras_weights(model, weights)
    with np.load(folder / "val_probs.npz") as z:
        probs = z[report["name"]]
    return Trained(report["name"], model.to(device), report["best"], report["history"], recipe,
                   report["stopped_at_deadline"], probs)


def _stop(running: dict) -> None:
    for proc, _ in running.values():
        proc.terminate()
