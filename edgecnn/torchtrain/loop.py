"""One training run in PyTorch: the recipe of ``edgecnn train`` (Adam, per-step cosine with a
one-epoch warm-up, class-weighted loss, distillation, augmentation), validation every epoch,
and the best epoch's weights kept."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from edgecnn.data.balance import class_weights
from edgecnn.metrics import best_threshold, roc_auc
from edgecnn.torchtrain.augment import augment
from edgecnn.train.schedule import cosine_lr


@dataclass
class Recipe:
    epochs: int = 20
    lr: float = 3e-4
    batch_size: int = 64
    warmup_epochs: int = 1
    kd_alpha: float = 0.5
    kd_temperature: float = 2.0
    label_smoothing: float = 0.0
    stain_jitter: float = 0.05
    color_jitter: float = 1.0
    seed: int = 0
    ema: float = 0.0                 # decay per step of the scored weight average (0 = off)
    max_steps: int | None = None     # cap steps per epoch (smoke runs)


class GpuData:
    """The pack's patches as uint8 NHWC tensors on the device, with the class weights."""

    def __init__(self, pack, device: torch.device, input_size: int):
        self.device, self.input_size = device, input_size
        self.x_train = torch.from_numpy(np.ascontiguousarray(pack.images("train"))).to(device)
        labels = pack.labels("train").astype(np.int64)
        self.y_train = torch.from_numpy(labels).to(device)
        cw = class_weights(labels)     # --balance weights, edgecnn train's default
        self.w_train = torch.tensor([cw[0], cw[1]], dtype=torch.float32, device=device)[self.y_train]
        self.x_val = torch.from_numpy(np.ascontiguousarray(pack.images("val"))).to(device)
        self.y_val = pack.labels("val").astype(np.int64)

    def to_float(self, x_uint8: torch.Tensor, resize: bool = True) -> torch.Tensor:
        """NHWC uint8 → NCHW float [0, 1] (channels-last in memory), resized to the model's input."""
        x = x_uint8.permute(0, 3, 1, 2).float().div_(255.0)
        return self.resize(x) if resize else x

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        # Bilinear with half-pixel centres, as tf.image.resize in the tf.data pipeline.
        if x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        return x.contiguous(memory_format=torch.channels_last)


def soft_target_loss(logits: torch.Tensor, labels: torch.Tensor, teacher: torch.Tensor | None,
                     r: Recipe) -> torch.Tensor:
    """Per-patch loss of edgecnn.train.losses.SoftTargetLoss, from logits."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    hard = F.one_hot(labels, 2).float() * (1.0 - r.label_smoothing) + r.label_smoothing / 2
    alpha = r.kd_alpha if teacher is not None else 0.0
    loss = -(hard * log_p).sum(-1) * (1.0 - alpha)
    if alpha > 0:
        t = r.kd_temperature
        pt = torch.stack([1.0 - teacher, teacher], -1).clamp(1e-7, 1.0)
        soft_t = torch.softmax(torch.log(pt) / t, dim=-1)
        loss = loss - (soft_t * F.log_softmax(logits.float() / t, dim=-1)).sum(-1) * (alpha * t * t)
    return loss


@torch.no_grad()
def predict(model: torch.nn.Module, data: GpuData, x_uint8: torch.Tensor, batch: int = 2048,
            fast: bool = True) -> np.ndarray:
    """IDC probabilities; ``fast`` = bfloat16 autocast on CUDA (as bf16 runs validate here)."""
    model.eval()
    out = []
    use_amp = fast and data.device.type == "cuda"
    for i in range(0, len(x_uint8), batch):
        with torch.autocast(data.device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits = model(data.to_float(x_uint8[i:i + batch]))
        out.append(torch.softmax(logits.float(), -1)[:, 1])
    return torch.cat(out).cpu().numpy()


def score(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    thr, bac = best_threshold(y, p)
    return {"val_balanced_accuracy": bac, "val_roc_auc": roc_auc(y, p), "threshold": thr}


class WeightEMA:
    """A moving average of the weights and BN statistics, the model that gets scored.

    edgecnn.train.ema's rule (the decay ramps up over the first steps, so the average is not
    dragged back to the random start); BN statistics are averaged too, as the GPU models are
    kept with their own statistics (docs/gpu-training.md)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"--ema must be in (0, 1), e.g. 0.998, not {decay}")
        self.model, self.decay, self.updates = copy.deepcopy(model).eval(), decay, 0
        self.model.requires_grad_(False)
        self._avg = _float_tensors(self.model)
        self._src = _float_tensors(model)

    @torch.no_grad()
    def update(self) -> None:
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        torch._foreach_lerp_(self._avg, self._src, 1.0 - d)


def _float_tensors(model: torch.nn.Module) -> list[torch.Tensor]:
    return [t for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()]


@dataclass
class Trained:
    name: str
    model: torch.nn.Module           # holding the best epoch's weights
    best: dict[str, Any]             # epoch, val scores, threshold
    history: list[dict[str, Any]]
    recipe: Recipe
    stopped_early: bool = False
    val_probs: np.ndarray | None = None   # the best epoch's, for ensemble scores elsewhere

    def report(self) -> dict[str, Any]:
        return {"name": self.name, "best": self.best, "recipe": asdict(self.recipe), "history": self.history,
                "stopped_at_deadline": self.stopped_early}


def train_model(name: str, make_model: Callable[[], torch.nn.Module], data: GpuData, r: Recipe,
                teacher: torch.Tensor | None = None, deadline: float | None = None,
                log: Callable[[str], None] = print) -> Trained:
    torch.manual_seed(r.seed)
    model = make_model().to(data.device).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=r.lr, eps=1e-7,   # Keras' Adam epsilon
                           fused=data.device.type == "cuda")
    gen = torch.Generator(device=data.device).manual_seed(r.seed)
    steps, total, warm = _schedule(len(data.y_train), r)
    ema = WeightEMA(model, r.ema) if r.ema > 0 else None
    scored = model if ema is None else ema.model
    history, best, stopped = [], _Best(), False
    for epoch in range(r.epochs):
        t0 = time.perf_counter()
        loss = _one_epoch(model, opt, data, r, teacher, gen, epoch, steps, total, warm, ema)
        probs = predict(scored, data, data.x_val)
        rec = {"epoch": epoch + 1, "loss": loss, **score(data.y_val, probs),
               "lr_end": opt.param_groups[0]["lr"], "seconds": round(time.perf_counter() - t0, 2)}
        history.append(rec)
        improved = best.offer(rec, scored, probs)
        log(f"{name} epoch {epoch + 1}/{r.epochs} loss {loss:.4f} val BAC {rec['val_balanced_accuracy']:.4f} "
            f"AUC {rec['val_roc_auc']:.4f} {rec['seconds']:.1f}s" + ("  best" if improved else ""))
        if past(deadline) and epoch + 1 < r.epochs:
            log(f"{name}: deadline reached after epoch {epoch + 1}; keeping epoch {best.rec['epoch']}")
            stopped = True
            break
    model.load_state_dict(best.state)
    return Trained(name, model, best.rec, history, r, stopped, best.probs)


def past(deadline: float | None) -> bool:
    """Whether a ``time.monotonic()`` deadline (None = none) has passed."""
    return deadline is not None and time.monotonic() > deadline


def _schedule(n: int, r: Recipe) -> tuple[int, int, int]:
    """Steps per epoch, total steps, warm-up steps."""
    steps = math.ceil(n / r.batch_size)
    steps = steps if r.max_steps is None else min(r.max_steps, steps)
    return steps, r.epochs * steps, min(r.warmup_epochs, max(0, r.epochs - 1)) * steps


@dataclass
class _Best:
    """The best epoch so far on validation: its record, weights (of the scored model) and probabilities."""
    rec: dict[str, Any] = field(default_factory=lambda: {"val_balanced_accuracy": -1.0})
    state: dict[str, torch.Tensor] | None = None
    probs: np.ndarray | None = None

    def offer(self, rec: dict[str, Any], model: torch.nn.Module, probs: np.ndarray) -> bool:
        if rec["val_balanced_accuracy"] <= self.rec["val_balanced_accuracy"] + 1e-4:
            return False
        self.rec, self.state, self.probs = dict(rec), copy.deepcopy(model.state_dict()), probs
        return True


def _one_epoch(model, opt, data: GpuData, r: Recipe, teacher, gen, epoch: int, steps: int, total: int,
               warm: int, ema: WeightEMA | None) -> float:
    model.train()
    order = torch.randperm(len(data.y_train), generator=gen, device=data.device)
    loss_sum = torch.zeros((), device=data.device)
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = cosine_lr(r.lr, epoch * steps + step, total, warm)
        idx = order[step * r.batch_size:(step + 1) * r.batch_size]
        x = data.resize(augment(data.to_float(data.x_train[idx], resize=False), gen, r.color_jitter, r.stain_jitter))
        with torch.autocast(data.device.type, dtype=torch.bfloat16, enabled=data.device.type == "cuda"):
            logits = model(x)
        per_patch = soft_target_loss(logits, data.y_train[idx], None if teacher is None else teacher[idx], r)
        # Keras' sample weights: the sum of weighted losses over the batch size.
        loss = (per_patch * data.w_train[idx]).sum() / len(idx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if ema is not None:
            ema.update()
        loss_sum += loss.detach()
    return float(loss_sum) / steps
