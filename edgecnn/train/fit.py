"""Full-precision training: patient split, balanced sampling, epoch loop with checkpoint/resume,
early stopping on validation balanced accuracy at the validation-chosen threshold."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.fsutil import atomic_path, read_json, write_json
from edgecnn.metrics import best_threshold, binary_metrics, patient_report
from edgecnn.train.predict import predict_probs
from edgecnn.train.run import RunError, RunFolder
from edgecnn.train.schedule import SCHEDULES

BALANCE_MODES = ("weights", "undersample", "none")
PRECISIONS = ("auto", "on", "bf16", "off")


@dataclass
class TrainConfig:
    out: str
    data: str | None = None
    model: str = "basic_cnn"
    epochs: int = 30
    batch_size: int = 64
    lr: float = 1e-3
    balance: str = "weights"
    input_size: int | None = None
    seed_order: bool = False
    seed: int = 0
    split: str = "auto"            # auto | official | path to a split.json
    official_split_dir: str | None = None
    val: float = 0.15
    test: float = 0.15
    patience: int = 8              # epochs without val BAC gain before stopping
    swa_epochs: int = 0            # also try the average of the last N epochs' weights (0 = off)
    lr_patience: int = 3           # plateau schedule: epochs without gain before the learning rate halves
    lr_schedule: str = "plateau"   # plateau | cosine (see schedule.py)
    warmup_epochs: int = 1         # cosine schedule: linear warm-up epochs
    ema: float = 0.0               # decay of the weights' moving average that gets scored (0 = off)
    border: str = "pad"
    augment: bool = True
    color_jitter: float = 1.0      # multiplier of the pipeline's colour-jitter ranges
    stain_jitter: float = 0.0      # HED stain augmentation sigma (0 = off)
    label_smoothing: float = 0.0   # weight moved from the true class to a uniform target
    teachers: list[str] = field(default_factory=list)   # distillation: runs / models whose mean is the soft target
    kd_alpha: float = 0.5          # weight of the teacher's term in the loss (with teachers)
    kd_temperature: float = 2.0    # softening of teacher and student distributions
    init_from: str | None = None   # start from this run's or .keras file's weights (train/warmstart.py)
    mixed_precision: str = "auto"  # auto (float16 with a GPU) | on (float16) | bf16 | off (PRECISIONS)
    multi_gpu: bool = False        # kept for old config.json files: same as strategy="mirrored"
    strategy: str = "auto"         # auto | mirrored | multiworker | none (train/strategy.py)
    steps_per_epoch: int | None = None   # cap, for smoke runs and tests
    max_patients: int | None = None      # use only this many patients (smoke runs)
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        from edgecnn.models import model_info

        model_info(self.model)
        if self.balance not in BALANCE_MODES:
            raise ValueError(f"--balance must be one of {', '.join(BALANCE_MODES)}, not {self.balance!r}")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"--lr-schedule must be one of {', '.join(SCHEDULES)}, not {self.lr_schedule!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"--ema must be 0 (off) or a decay in (0, 1) such as 0.999, not {self.ema}")
        if self.epochs < 0 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs must be ≥ 0, batch size ≥ 1 and the learning rate > 0")
        if self.epochs == 0 and not self.init_from:
            raise ValueError("--epochs 0 scores and keeps the weights of --init-from (e.g. a folder from "
                             "`python -m edgecnn.torchtrain`); without --init-from there is nothing to keep")
        if not (0 < self.val < 1 and 0 <= self.test < 1 and self.val + self.test < 1):
            raise ValueError(f"val ({self.val}) and test ({self.test}) shares must leave patients for training")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"--label-smoothing must be in [0, 1) (0.1 is usual); got {self.label_smoothing}")
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(f"--mixed-precision must be one of {', '.join(PRECISIONS)}, not {self.mixed_precision!r}")
        if not 0.0 <= self.kd_alpha <= 1.0 or self.kd_temperature <= 0:
            raise ValueError(f"--kd-alpha must be in [0, 1] and --kd-temperature > 0; got {self.kd_alpha}, {self.kd_temperature}")


def _model_cfg(cfg: TrainConfig) -> dict[str, Any]:
    from edgecnn.models import model_info

    info = model_info(cfg.model)
    mc = dict(info.default_cfg)
    mc["seed_order"] = cfg.seed_order
    if cfg.input_size:
        mc["input_size"] = cfg.input_size
    if mc.get("input_size") is None:
        from edgecnn.models.vgg13 import default_input_size

        mc["input_size"] = default_input_size()
    return mc


def _make_split(cfg: TrainConfig, patches):
    from edgecnn.data.split import Split, patient_split, split_from_files

    if cfg.split == "auto":
        return patient_split(patches, val=cfg.val, test=cfg.test, seed=cfg.seed)
    if cfg.split == "official":
        d = Path(cfg.official_split_dir or Path(cfg.data or ".").parent / "idc-official-split")
        if not (d / "cases_train.txt").exists():
            raise FileNotFoundError(f"{d}: no cases_train.txt / cases_val.txt; pass --official-split DIR")
        return split_from_files(patches, d / "cases_train.txt", d / "cases_val.txt", seed=cfg.seed)
    return Split.load(cfg.split)


def _setup_device(cfg: TrainConfig):
    from edgecnn._tf import keras, tf

    gpus = tf.config.list_physical_devices("GPU")
    policy = _precision_policy(cfg.mixed_precision, bool(gpus))
    keras.mixed_precision.set_global_policy(policy)
    from edgecnn.train.strategy import check_global_batch, make_strategy

    strategy = make_strategy("mirrored" if cfg.multi_gpu else cfg.strategy, len(gpus))
    check_global_batch(cfg.batch_size, strategy)   # --batch-size is global: split over the replicas
    keras.utils.set_random_seed(cfg.seed)
    return strategy, {"gpus": len(gpus), "mixed_precision": policy != "float32", "policy": policy,
                      "replicas": strategy.num_replicas_in_sync}


def _precision_policy(mode: str, gpu: bool) -> str:
    # bf16 is never chosen by "auto": on a CPU without AMX / AVX512-BF16 it is slower than float32,
    # and it changes the numbers of a recipe, so the user asks for it (docs/distributed.md).
    if mode == "bf16":
        return "mixed_bfloat16"
    return "mixed_float16" if mode == "on" or (mode == "auto" and gpu) else "float32"


def _log(console, msg: str) -> None:
    if console is not None:
        console.print(msg)


@dataclass
class _Parts:
    """The run's data, split into its parts, and what the training loop feeds from it."""
    split: Any
    tr: Any
    va: Any
    te: Any
    train_idx: np.ndarray
    weights: np.ndarray | None
    targets: np.ndarray | None      # (N, 2) label + teacher probability, for soft-target losses
    steps: int


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True, console=None,
          epochs: int | None = None) -> RunFolder:
    """Train ``cfg.model`` into the run folder ``cfg.out``; returns the RunFolder.

    ``resume=True`` continues an interrupted run from ``ckpt/last.keras`` with its saved
    configuration, split, history and best score, so a killed run loses at most one epoch.
    Only ``out`` is read from ``cfg`` then; ``epochs`` may raise or lower the epoch budget.
    """
    from edgecnn._tf import keras

    run = RunFolder(Path(cfg.out))
    cfg = _resolve_config(cfg, run, resume, epochs)
    # The compute policy is process-global in Keras: a caller's later models must not inherit ours.
    previous = keras.mixed_precision.global_policy()
    try:
        return _train(cfg, run, resume, progress, console)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def _train(cfg: TrainConfig, run: RunFolder, resume: bool, progress: bool, console) -> RunFolder:
    strategy, device = _setup_device(cfg)
    model_cfg = _model_cfg(cfg)
    input_size = model_cfg["input_size"]
    # The model first: a --init-from of the wrong shape fails before minutes of data and teachers.
    model, init_info = _build_model(cfg, run, strategy, model_cfg, resume)
    parts = _prepare_data(cfg, run, resume, progress, model_cfg, device, console, init_info)
    loop = _EpochLoop(cfg, run, model, parts, input_size, model_cfg, progress, console, resume)
    _log(console, f"[bold]{cfg.model}[/] input {input_size}px, {model.count_params():,} parameters; "
                  f"train {len(parts.tr)} patches / {len(parts.split.train)} patients, val {len(parts.va)} / "
                  f"{len(parts.split.val)}, test {len(parts.te)} / {len(parts.split.test)}; device {device}")
    loop.train_epochs()
    return _finish(cfg, run, loop, parts, input_size)


def _resolve_config(cfg: TrainConfig, run: RunFolder, resume: bool, epochs: int | None) -> TrainConfig:
    state_path, last_path = run.ckpt_dir / "state.json", run.ckpt_dir / "last.keras"
    if resume:
        if not state_path.exists() or not last_path.exists():
            raise RunError(f"{run.path}: nothing to resume (no ckpt/state.json + ckpt/last.keras); start without --resume")
        saved = run.config()
        saved_cfg = {k: v for k, v in saved.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
        # Only the epoch budget may change on resume; everything else must match the first start.
        if epochs and epochs != saved_cfg["epochs"]:
            _record_budget_change(run, saved, epochs, read_json(state_path)["epoch"])
            saved_cfg["epochs"] = epochs
        cfg = TrainConfig(**saved_cfg)
    elif run.config_path.exists() and (state_path.exists() or run.metrics_path.exists()):
        # A run to continue (a checkpoint) or a finished one. A folder killed in its first epoch
        # (config.json, perhaps that epoch's model.keras, no checkpoint) has nothing to resume:
        # the same command starts it over.
        raise RunError(f"{run.path} already holds a run; use --resume to continue it or choose another --out")
    cfg.validate()
    return cfg


def _record_budget_change(run: RunFolder, saved: dict, epochs: int, done: int) -> None:
    # config.json is what the model card and a later resume read: it must hold the budget the
    # run really had, and since the cosine curve depends on it, when that budget changed.
    changes = saved.get("epoch_budget_changes", []) + [{"after_epoch": done, "from": saved["epochs"], "to": epochs}]
    write_json(run.config_path, {**saved, "epochs": epochs, "epoch_budget_changes": changes})


def _prepare_data(cfg: TrainConfig, run: RunFolder, resume: bool, progress: bool, model_cfg: dict,
                  device: dict, console, init_info: dict | None = None) -> _Parts:
    from edgecnn.data import load_patches
    from edgecnn.data.split import Split

    patches = load_patches(cfg.data, border=cfg.border, progress=progress)
    if cfg.max_patients:
        rng = np.random.default_rng(cfg.seed)
        keep = sorted(rng.choice(patches.patient_ids, size=min(cfg.max_patients, len(patches.patient_ids)), replace=False))
        patches = patches.select(keep)
    split = Split.load(run.split_path) if resume else _make_split(cfg, patches)
    split.check_disjoint()
    if init_info is not None:
        from edgecnn.train.warmstart import check_no_leak

        init_info = {**init_info, **check_no_leak(cfg.init_from, split.val, split.test)}
    tr, va, te = patches.select(split.train), patches.select(split.val), patches.select(split.test)
    if len(tr) == 0 or len(va) == 0:
        raise RunError(f"the split left {len(tr)} training and {len(va)} validation patches; use more patients")
    if cfg.teachers:
        from edgecnn.train.distill import check_teachers, teacher_report

        check_teachers(cfg.teachers, model_cfg["input_size"])
    if not resume:
        _create_run_folder(cfg, run, split, patches, model_cfg, device, init_info)
    if cfg.teachers:
        teacher_report(cfg.teachers, va.images, va.labels, run.path / "teachers.json", console)
    train_idx, weights = _balance(cfg, tr.labels)
    steps = int(np.ceil(len(train_idx) / cfg.batch_size))
    if cfg.steps_per_epoch:
        steps = min(steps, cfg.steps_per_epoch)
    return _Parts(split, tr, va, te, train_idx, weights, _soft_targets(cfg, run, tr, console), steps)


def _create_run_folder(cfg: TrainConfig, run: RunFolder, split, patches, model_cfg: dict, device: dict,
                       init_info: dict | None) -> None:
    run.path.mkdir(parents=True, exist_ok=True)
    config_json = dataclasses.asdict(cfg)
    config_json.update({"model_cfg": model_cfg, "input_size": model_cfg["input_size"], "data": str(cfg.data),
                        "device": device})
    if init_info is not None:
        init_info = dict(init_info)
        if "summary" in init_info:
            write_json(run.path / "torchtrain.json", init_info.pop("summary"))
        config_json["init_from_source"] = init_info
    write_json(run.config_path, config_json)
    split.save(run.split_path, patches)


def _balance(cfg: TrainConfig, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    from edgecnn.data.balance import class_weights, undersample

    if cfg.balance == "undersample":
        return undersample(labels, seed=cfg.seed), None
    if cfg.balance == "weights":
        cw = class_weights(labels)
        return np.arange(len(labels)), np.array([cw[int(c)] for c in labels], dtype=np.float32)
    return np.arange(len(labels)), None


def _soft_targets(cfg: TrainConfig, run: RunFolder, tr, console) -> np.ndarray | None:
    """(label, teacher probability) per training patch when the loss needs them, else None."""
    if not _soft_loss(cfg):
        return None
    labels = tr.labels.astype(np.float32)
    teacher = labels
    if cfg.teachers:
        from edgecnn.train.distill import teacher_probs

        teacher = teacher_probs(cfg.teachers, tr.images, run.path / "teacher_probs.npz", console)
    return np.stack([labels, teacher], axis=1).astype(np.float32)


def _soft_loss(cfg: TrainConfig) -> bool:
    return bool(cfg.label_smoothing or cfg.teachers)


def _build_model(cfg: TrainConfig, run: RunFolder, strategy, model_cfg: dict, resume: bool):
    """The compiled model, and with --init-from (new runs only) what config.json records of its source."""
    from edgecnn._tf import keras
    from edgecnn.models import create_model
    from edgecnn.train.losses import compile_args  # registers the custom loss before a resume loads it

    with strategy.scope():
        if resume:
            return keras.models.load_model(run.ckpt_dir / "last.keras"), None
        model = create_model(cfg.model, **model_cfg)
        init_info = None
        if cfg.init_from:
            from edgecnn.train.warmstart import load_init_weights

            init_info = load_init_weights(model, cfg.init_from)
        alpha = cfg.kd_alpha if cfg.teachers else 0.0
        model.compile(optimizer=keras.optimizers.Adam(cfg.lr), weighted_metrics=[],
                      **compile_args(cfg.label_smoothing, alpha, cfg.kd_temperature))
        return model, init_info


class _EpochLoop:
    """Epochs with per-epoch scoring on validation, checkpointing, LR schedule and early stop."""

    def __init__(self, cfg: TrainConfig, run: RunFolder, model, parts: _Parts, input_size: int,
                 model_cfg: dict, progress: bool, console, resume: bool):
        from edgecnn._tf import keras
        from edgecnn.train.ema import WeightEMA

        self.cfg, self.run, self.model, self.parts = cfg, run, model, parts
        self.input_size, self.model_cfg, self.progress, self.console = input_size, model_cfg, progress, console
        self.state_path, self.last_path = run.ckpt_dir / "state.json", run.ckpt_dir / "last.keras"
        # On resume the average is read back from ckpt/ema.npz. It is written before last.keras and
        # state.json: a kill in between replays one epoch on top of an average that already holds it.
        self.ema = WeightEMA(model, cfg.ema, run.ckpt_dir / "ema.npz") if cfg.ema else None
        self.swa_path = run.ckpt_dir / "swa.npz"
        self.window = _load_window(self.swa_path) if resume and cfg.swa_epochs else []
        self.state = read_json(self.state_path) if resume else {
            "epoch": 0, "best_bac": -1.0, "best_epoch": -1, "threshold": 0.5, "stale": 0, "lr_stale": 0,
            "lr": cfg.lr, "history": [], "train_seconds": 0.0,
        }
        keras.backend.set_value(model.optimizer.learning_rate, self.state["lr"])

    def train_epochs(self) -> None:
        if self.cfg.epochs == 0:
            self._keep_initial()
        for epoch in range(self.state["epoch"], self.cfg.epochs):
            t0 = time.perf_counter()
            loss, acc = self._fit_one(epoch)
            rec = self._score(epoch, loss, acc, t0)
            improved = self._select(epoch, rec)
            self._checkpoint(epoch)
            _log(self.console, f"epoch {epoch + 1}/{self.cfg.epochs}  loss {rec['loss']:.4f}  val BAC "
                               f"{rec['val_balanced_accuracy']:.4f} (@{rec['threshold']:.3f}; @0.5 {rec['val_bac_at_0.5']:.4f})"
                               f"  AUC {rec['val_roc_auc']:.4f}  {rec['seconds']:.0f}s" + ("  [green]best[/]" if improved else ""))
            if self.state["stale"] >= self.cfg.patience:
                _log(self.console, f"early stop: no val balanced-accuracy gain for {self.cfg.patience} epochs")
                break
        if self.cfg.swa_epochs and len(self.window) >= 2 and "swa" not in self.state:
            p = self.parts
            _try_weight_average(self.cfg, self.run, self.model, self.window, self.state, p.tr, p.va,
                                self.input_size, self.model_cfg, self.console)
            write_json(self.state_path, self.state)

    def _keep_initial(self) -> None:
        """--epochs 0: the --init-from weights as they are, scored like an epoch.

        BN statistics are kept too: the source chose its epoch with them, and recomputing them on
        clean patches moved a PyTorch-trained VGG13 from validation BAC 0.852 to 0.839.
        """
        rec = self._score(-1, None, None, time.perf_counter(), recompute_bn=False)
        self._select(-1, rec)
        write_json(self.run.history_path, self.state["history"])
        _log(self.console, f"kept the --init-from weights: val BAC {rec['val_balanced_accuracy']:.4f} "
                           f"(@{rec['threshold']:.3f})  AUC {rec['val_roc_auc']:.4f}")

    def _fit_one(self, epoch: int) -> tuple[float, float]:
        from edgecnn._tf import keras
        from edgecnn.data.pipeline import make_dataset
        from edgecnn.train.progress import EpochBar
        from edgecnn.train.schedule import cosine_callback
        from edgecnn.train.strategy import shard_by_data

        cfg, p = self.cfg, self.parts
        # Dropout and the dataset's seeded ops also draw on TensorFlow's global seed, which a
        # resumed process has not advanced like the first one: set it per epoch, before the
        # dataset, and trace the step anew (its random ops start from that seed), so epoch N
        # trains the same whether the run was killed and resumed before it or not.
        keras.utils.set_random_seed(cfg.seed * 1000 + epoch)
        self.model.train_function = None
        # A per-epoch seed keeps shuffling and augmentation reproducible across a resume.
        ds = make_dataset(p.tr.images, p.tr.labels, batch_size=cfg.batch_size, training=True,
                          seed=cfg.seed * 1000 + epoch, augment=cfg.augment, jitter=cfg.color_jitter,
                          stain=cfg.stain_jitter, input_size=self.input_size, sample_weights=p.weights,
                          indices=p.train_idx, targets=p.targets)
        ds = shard_by_data(ds, self.model.distribute_strategy)   # multi-worker: by element, not by file
        with EpochBar(f"epoch {epoch + 1}/{cfg.epochs}", p.steps, self.progress) as bar:
            callbacks = [bar.callback]
            if cfg.lr_schedule == "cosine":
                callbacks.append(cosine_callback(self.model, cfg.lr, epoch, p.steps, cfg.epochs, cfg.warmup_epochs))
            if self.ema is not None:
                callbacks.append(self.ema.callback())
            h = self.model.fit(ds, epochs=1, steps_per_epoch=p.steps, verbose=0, callbacks=callbacks)
        if cfg.lr_schedule == "cosine":
            self.state["lr"] = float(keras.backend.get_value(self.model.optimizer.learning_rate))
        return float(h.history["loss"][-1]), float(h.history["accuracy"][-1])

    def _score(self, epoch: int, loss: float | None, acc: float | None, t0: float,
               recompute_bn: bool = True) -> dict[str, Any]:
        from edgecnn.train.bn import recompute_bn_statistics

        if self.ema is not None:
            self.ema.swap_in()
        if recompute_bn:
            recompute_bn_statistics(self.model, self.parts.tr.images, seed=self.cfg.seed + epoch,
                                    input_size=self.input_size)
        va = self.parts.va
        p_val = predict_probs(self.model, va.images, input_size=self.input_size)
        thr, val_bac = best_threshold(va.labels, p_val)
        val_m = binary_metrics(va.labels, p_val, thr)
        dt = time.perf_counter() - t0
        self.state["train_seconds"] += dt
        rec = {"epoch": epoch + 1, "loss": loss, "accuracy": acc, "val_balanced_accuracy": val_bac,
               "val_bac_at_0.5": binary_metrics(va.labels, p_val, 0.5)["balanced_accuracy"],
               "val_accuracy": val_m["accuracy"], "val_roc_auc": val_m["roc_auc"], "threshold": thr,
               "lr": float(self.state["lr"]), "seconds": dt}
        self.state["history"].append(rec)
        return rec

    def _select(self, epoch: int, rec: dict[str, Any]) -> bool:
        """Keep the model when validation improved, else count a stale epoch (plateau LR halving)."""
        from edgecnn._tf import keras

        state, cfg = self.state, self.cfg
        if rec["val_balanced_accuracy"] > state["best_bac"] + 1e-4:
            state.update(best_bac=rec["val_balanced_accuracy"], best_epoch=epoch + 1, threshold=rec["threshold"],
                         stale=0, lr_stale=0)
            with atomic_path(self.run.model_path) as tmp:
                self.model.save(tmp)
            write_json(self.run.model_info_path, {
                "model": cfg.model, "input_size": self.input_size, "threshold": rec["threshold"], "epoch": epoch + 1,
                "val_balanced_accuracy": rec["val_balanced_accuracy"], "class_names": ["no_idc", "idc"],
                "model_cfg": self.model_cfg,
            })
            return True
        state["stale"] += 1
        state["lr_stale"] += 1
        if cfg.lr_schedule == "plateau" and state["lr_stale"] >= cfg.lr_patience:
            state["lr"] = float(state["lr"]) * 0.5
            state["lr_stale"] = 0
            keras.backend.set_value(self.model.optimizer.learning_rate, state["lr"])
        return False

    def _checkpoint(self, epoch: int) -> None:
        self.state["epoch"] = epoch + 1
        if self.ema is not None:
            self.ema.swap_out()
            self.ema.save()
        if self.cfg.swa_epochs:
            self.window = (self.window + [self.model.get_weights()])[-self.cfg.swa_epochs:]
            _save_window(self.swa_path, self.window)
        # Checkpoint model (with optimizer) first, then the state that points at it.
        with atomic_path(self.last_path) as tmp:
            self.model.save(tmp)
        write_json(self.state_path, self.state)
        write_json(self.run.history_path, self.state["history"])


def _finish(cfg: TrainConfig, run: RunFolder, loop: _EpochLoop, parts: _Parts, input_size: int) -> RunFolder:
    """Score the kept model on the test patients; metrics.json and plots."""
    from edgecnn.train.plots import save_plots

    state = loop.state
    model = run.load_model()
    metrics = evaluate_patches(model, parts.te, state["threshold"], input_size=input_size)
    metrics.update({"split": "test", "best_epoch": state["best_epoch"], "val_balanced_accuracy": state["best_bac"],
                    "weight_average": state.get("swa"),
                    "train_seconds": state["train_seconds"], "epochs_run": state["epoch"]})
    write_json(run.metrics_path, metrics)
    save_plots(run, state["history"], metrics)
    return run


def _save_window(path: Path, window: list[list[np.ndarray]]) -> None:
    with atomic_path(path) as tmp:
        np.savez(tmp, **{f"e{i}_w{j}": w for i, ws in enumerate(window) for j, w in enumerate(ws)},
                 shape=np.array([len(window), len(window[0])]))


def _load_window(path: Path) -> list[list[np.ndarray]]:
    if not path.exists():
        return []
    with np.load(path) as z:
        n, m = (int(v) for v in z["shape"])
        return [[z[f"e{i}_w{j}"] for j in range(m)] for i in range(n)]


def _try_weight_average(cfg, run, model, window, state, tr, va, input_size, model_cfg, console) -> None:
    """Stochastic weight averaging over the last epochs: one more candidate for the kept model.

    Epoch-to-epoch validation scores swing by a point or two on a few dozen patients; the mean of
    the plateau's weights (with BN statistics recomputed for it) is usually flatter and more
    stable. It replaces the best single epoch only if it scores higher on validation.
    """
    from edgecnn.train.bn import recompute_bn_statistics

    model.set_weights([np.mean(ws, axis=0) for ws in zip(*window)])
    recompute_bn_statistics(model, tr.images, seed=cfg.seed, input_size=input_size)
    p_val = predict_probs(model, va.images, input_size=input_size)
    thr, bac = best_threshold(va.labels, p_val)
    epochs = [state["epoch"] - len(window) + 1, state["epoch"]]
    kept = bac > state["best_bac"] + 1e-4
    state["swa"] = {"epochs": epochs, "val_balanced_accuracy": bac, "threshold": thr, "kept": kept}
    _log(console, f"weight average of epochs {epochs[0]}–{epochs[1]}: val BAC {bac:.4f} (@{thr:.3f})"
                  + ("  [green]best[/]" if kept else f"; keeping epoch {state['best_epoch']}"))
    if kept:
        state.update(best_bac=bac, threshold=thr)
        with atomic_path(run.model_path) as tmp:
            model.save(tmp)
        write_json(run.model_info_path, {
            "model": cfg.model, "input_size": input_size, "threshold": thr, "epoch": epochs[1],
            "weight_average_of_epochs": epochs, "val_balanced_accuracy": bac, "class_names": ["no_idc", "idc"],
            "model_cfg": model_cfg,
        })


def evaluate_patches(model, patches, threshold: float, input_size: int | None = None) -> dict[str, Any]:
    if len(patches) == 0:
        raise RunError("no patches to evaluate (empty split or folder)")
    p = predict_probs(model, patches.images, input_size=input_size)
    m = binary_metrics(patches.labels, p, threshold)
    m.update(patient_report(patches.labels, p, patches.patients, threshold))
    return m
