"""Quantization-aware fine-tuning of a run's best float model (tfmot, 8-bit, per-channel conv weights).

Writes ``<run>/qat/``: model.keras (the QAT model), model.json (threshold, float ops), metrics.json
(val balanced accuracy before/after, inference vs training mode, test metrics) and ckpt/ (resume).

BatchNorm: a few fine-tuning steps leave BN's moving averages behind the weights they normalise,
so a QAT model can score well in training mode and worse in inference mode. The default
``bn="freeze"`` keeps BN in inference mode during fine-tuning (the float run's statistics are
already settled), so both modes compute the same function; ``bn="reestimate"`` trains BN and then
recomputes its statistics in one pass over the training patches; ``bn="train"`` does neither.
``metrics.json`` records ``val_bac_inference`` beside ``val_bac_train_mode`` for every choice.

Activation ranges: tfmot starts them at [-6, 6] and moves them by an EMA of decay 0.999, far too
slowly for a short fine-tune; they are first set from 32 training batches (scheme.calibrate_ranges)
and that calibrated model is "epoch 0", the baseline each fine-tuning epoch has to beat.
"""

from __future__ import annotations

import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn import CLASS_NAMES
from edgecnn.fsutil import atomic_path, read_json, write_json
from edgecnn.metrics import best_threshold, binary_metrics
from edgecnn.quantize.rundata import Patches, RunData, as_run
from edgecnn.train.bn import inner_layers, recompute_bn_statistics, set_dropout
from edgecnn.train.predict import predict_probs
from edgecnn.train.progress import EpochBar
from edgecnn.train.run import RunError, RunFolder

BN_MODES = ("freeze", "reestimate", "train")
CALIB_BATCHES = 32   # batches of training patches that set the activation ranges before fine-tuning
DEFAULTS = {"epochs": 3, "lr": 1e-5, "batch_size": 64, "patience": 2, "bn": "freeze", "activations": "asymmetric"}


# --- model helpers ----------------------------------------------------------------------------
def predict_train_mode(model, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Probabilities as the training loop computes them (BN as in fit, fake-quant ranges updating),
    with dropout off so only BN/quantizer behaviour differs from inference. Weights are restored."""
    saved = model.get_weights()
    old = set_dropout(model, 0.0)
    try:
        return predict_probs(model, images, batch_size, training=True)
    finally:
        set_dropout(model, old)
        model.set_weights(saved)


def set_bn_trainable(model, trainable: bool) -> int:
    """A non-trainable Keras BN runs in inference mode even inside fit()."""
    from edgecnn._tf import keras

    bns = inner_layers(model, keras.layers.BatchNormalization)
    for bn in bns:
        bn.trainable = trainable
    return len(bns)


def save_qat_model(model, path: Path) -> Path:
    """Save the QAT model at ``path`` in HDF5 form.

    tfmot 0.8.1's QuantizeLayer builds twice when read from the zip ``.keras`` format and refuses its
    own weights (tensorflow/model-optimization PR #1123, unmerged); the HDF5 form round-trips
    exactly and ``keras.models.load_model`` reads it whatever the file is called.
    """
    from edgecnn._tf import keras

    # A frozen BN inside a tfmot wrapper lists gamma/beta twice in the wrapper's weights, which the
    # HDF5 writer rejects as duplicate names; the flag only matters while fitting, so lift it here.
    frozen = [bn for bn in inner_layers(model, keras.layers.BatchNormalization) if not bn.trainable]
    for bn in frozen:
        bn.trainable = True
    try:
        with atomic_path(path, suffix=".h5") as tmp:
            model.save(tmp, save_format="h5", include_optimizer=False)
    finally:
        for bn in frozen:
            bn.trainable = False
    return path


def float_ops_of(qmodel, input_size: int) -> tuple[list[str], list[str]]:
    """(ops, float ops) of the int8 TFLite graph this QAT model converts to."""
    from edgecnn.export.tflite import convert_keras, inspect_ops

    info = inspect_ops(convert_keras(qmodel, "int8-qat", io="float", input_size=input_size))
    return info["ops"], info["float_ops"]


# --- the run ----------------------------------------------------------------------------------
def _dataset(p: Patches, batch_size: int, seed: int, epoch: int, weights: dict[int, float] | None):
    from edgecnn._tf import tf
    from edgecnn.preprocess import OFFSET, SCALE

    rng = np.random.default_rng(seed * 1000 + epoch)
    order = rng.permutation(len(p))
    x, y = np.asarray(p.images)[order], p.labels[order].astype(np.int32)
    if weights:
        w = np.where(y == 1, weights[1], weights[0]).astype(np.float32)
        ds = tf.data.Dataset.from_tensor_slices((x, y, w))
    else:
        ds = tf.data.Dataset.from_tensor_slices((x, y))

    def scale(img, *rest):
        return (tf.cast(img, tf.float32) * SCALE + OFFSET, *rest)

    return ds.batch(batch_size).map(scale, num_parallel_calls=tf.data.AUTOTUNE).prefetch(2)


def _class_weights(cfg: dict[str, Any], labels: np.ndarray) -> dict[int, float] | None:
    # Fine-tune with the loss the float run trained with ("weights" = balanced class weights).
    if cfg.get("balance", "weights") in ("weights", True):
        from edgecnn.data import class_weights

        try:
            return class_weights(labels)
        except ValueError as e:
            warnings.warn(f"QAT fine-tunes without class weights: {e}", stacklevel=2)
            return None
    return None


def _log(console, msg: str) -> None:
    if console is not None:
        console.print(msg)


@dataclass
class _Job:
    """One QAT run: the run folder, its data parts, the float baseline and the settings."""
    run: RunFolder
    info: dict[str, Any]
    cfg: dict[str, Any]
    float_model: Any
    rd: RunData
    train: Patches
    val: Patches
    p: dict[str, Any]            # epochs, lr, batch_size, patience, bn, activations, steps_per_epoch, seed
    progress: bool
    console: Any
    t0: float = field(default_factory=time.perf_counter)
    float_bac: float = 0.0
    p_float: np.ndarray | None = None

    @property
    def ckpt(self) -> Path:
        return self.run.qat_dir / "ckpt"


def quantize_run(
    run: str | Path | RunFolder,
    epochs: int = DEFAULTS["epochs"],
    lr: float = DEFAULTS["lr"],
    batch_size: int = DEFAULTS["batch_size"],
    data: Any = None,
    progress: bool = True,
    resume: bool = False,
    *,
    patience: int = DEFAULTS["patience"],
    bn: str = DEFAULTS["bn"],
    activations: str = DEFAULTS["activations"],
    limit: int | None = None,
    steps_per_epoch: int | None = None,
    seed: int = 0,
    console=None,
) -> dict[str, Any]:
    """Fine-tune the run's float model with QAT on its training patients; returns qat/metrics.json.

    ``data``: the data folder (default: config.json "data") or a loaded PatchSet. ``limit`` caps the
    patches drawn per split part (seeded) and ``steps_per_epoch`` the batches per epoch: both for
    quick runs and tests. ``resume`` continues from qat/ckpt after an interruption.
    ``activations="symmetric"`` learns the symmetric INT8 ranges TensorRT uses (export int8-trt).
    """
    params = dict(epochs=epochs, lr=lr, batch_size=batch_size, patience=patience, bn=bn, activations=activations,
                  steps_per_epoch=steps_per_epoch, seed=seed)
    _check_params(params)
    job = _prepare(as_run(run), data, limit, params, progress, console)
    qmodel, state = _start_or_resume(job, resume)
    _fine_tune(job, qmodel, state)
    best = _best_model(job, qmodel)
    metrics = _final_metrics(job, best, state)
    _save_results(job, best, metrics, state)
    return metrics


def _check_params(p: dict[str, Any]) -> None:
    from edgecnn.quantize.scheme import ACTIVATION_SCHEMES

    if p["bn"] not in BN_MODES:
        raise ValueError(f"bn must be one of {', '.join(BN_MODES)}, not {p['bn']!r}")
    if p["activations"] not in ACTIVATION_SCHEMES:
        raise ValueError(f"activations must be one of {', '.join(ACTIVATION_SCHEMES)}, not {p['activations']!r}")
    if p["epochs"] < 1 or p["batch_size"] < 1 or p["lr"] <= 0:
        raise ValueError(f"epochs ({p['epochs']}) and batch size ({p['batch_size']}) must be ≥ 1 and lr ({p['lr']}) > 0")


def _prepare(run: RunFolder, data: Any, limit: int | None, params: dict, progress: bool, console) -> _Job:
    """Load the run, its train/val patches and score the float model (the baseline)."""
    info, cfg = run.model_info(), run.config()
    float_model = run.load_model()          # RunError on a missing / damaged model.keras
    rd = RunData(run, data=data, limit=limit, seed=params["seed"])
    train, val = rd.part("train"), rd.part("val")
    if len(set(train.labels.tolist())) < 2 or len(set(val.labels.tolist())) < 2:
        raise RunError(f"{run.path}: QAT needs both classes in the train and val patients "
                       f"(train {np.bincount(train.labels, minlength=2).tolist()}, "
                       f"val {np.bincount(val.labels, minlength=2).tolist()}); use more data or a larger --limit")
    job = _Job(run, info, cfg, float_model, rd, train, val, params, progress, console)
    job.p_float = predict_probs(float_model, val.images)
    thr = float(info.get("threshold", 0.5))
    job.float_bac = binary_metrics(val.labels, job.p_float, thr)["balanced_accuracy"]
    _log(console, f"float model: val balanced accuracy {job.float_bac:.4f} at threshold {thr:.3f} "
                  f"({len(val)} patches, {val.n_patients} patients)")
    return job


def _start_or_resume(job: _Job, resume: bool):
    """(QAT model, state): from qat/ckpt when resuming, else a fresh model with calibrated ranges."""
    from edgecnn._tf import keras
    from edgecnn.quantize.scheme import calibrate_ranges, load_qat_model, quantize_keras_model, set_symmetric_activations

    p = job.p
    state_path, last_path = job.ckpt / "state.json", job.ckpt / "last.keras"
    state: dict[str, Any] = {"epoch": 0, "best_bac": -1.0, "best_epoch": 0, "best_threshold": 0.5,
                             "wait": 0, "history": [], "activations": p["activations"]}
    if resume and state_path.exists() and last_path.exists():
        state = read_json(state_path)
        if state.get("activations", "asymmetric") != p["activations"]:
            raise RunError(f"{job.ckpt}: the interrupted QAT used {state.get('activations', 'asymmetric')} "
                           f"activations, not {p['activations']}; resume with the same --activations")
        qmodel = load_qat_model(last_path)
        if p["activations"] == "symmetric":
            set_symmetric_activations(qmodel)    # tfmot rebuilds its quantizers asymmetric on load
        _log(job.console, f"resuming QAT from epoch {state['epoch']} (best val BAC {state['best_bac']:.4f})")
    else:
        from edgecnn.preprocess import to_float

        qmodel, _ = quantize_keras_model(job.float_model, activations=p["activations"])
        bs, train = p["batch_size"], job.train
        calib = train.images[np.random.default_rng(p["seed"]).permutation(len(train))[:CALIB_BATCHES * bs]]
        state["calibration_batches"] = calibrate_ranges(
            qmodel, (to_float(calib[i:i + bs]) for i in range(0, len(calib), bs)))
        # Go on with the model as a checkpoint reads back: a fresh tfmot model keeps listing a
        # frozen BN's gamma/beta as trainable (its wrapper collected them when built), the one
        # read from HDF5 does not, so --bn freeze trained them only until a resume.
        with tempfile.TemporaryDirectory(prefix="edgecnn-qat-") as tmp:
            qmodel = load_qat_model(save_qat_model(qmodel, Path(tmp) / "start.h5"))
        if p["activations"] == "symmetric":
            set_symmetric_activations(qmodel)
    if p["bn"] == "freeze":
        set_bn_trainable(qmodel, False)
    qmodel.compile(optimizer=keras.optimizers.Adam(p["lr"]), loss="sparse_categorical_crossentropy")
    if state["epoch"] > 0:
        _load_optimizer(qmodel, job.ckpt / OPTIMIZER_FILE)
    if state["epoch"] == 0 and not state["history"]:
        # Epoch 0 = the range-calibrated model before any step: fine-tuning must beat it to replace it.
        thr0, bac0 = best_threshold(job.val.labels, predict_probs(qmodel, job.val.images))
        state["history"].append({"epoch": 0, "loss": None, "val_balanced_accuracy": bac0, "threshold": thr0})
        state.update(best_bac=bac0, best_epoch=0, best_threshold=thr0)
        save_qat_model(qmodel, job.run.qat_dir / "best.keras")
        _log(job.console, f"QAT epoch 0 (calibrated ranges, no fine-tuning): val BAC {bac0:.4f}")
    return qmodel, state


# The HDF5 checkpoint holds no optimizer (save_qat_model): Adam's step count and moments go beside it,
# so a resumed epoch continues the optimizer the killed run had instead of a fresh one.
OPTIMIZER_FILE = "optimizer.npz"


def _save_optimizer(qmodel, path: Path) -> None:
    with atomic_path(path) as tmp:
        np.savez(tmp, *[v.numpy() for v in qmodel.optimizer.variables])


def _load_optimizer(qmodel, path: Path) -> bool:
    """Restore the optimizer state ``_save_optimizer`` wrote; False (a fresh optimizer, with a
    warning) for a checkpoint without one or one that does not fit."""
    opt = qmodel.optimizer
    if path.exists():
        with np.load(path) as z:
            values = [z[f"arr_{i}"] for i in range(len(z.files))]
        opt.build(qmodel.trainable_variables)
        if [v.shape for v in values] == [tuple(v.shape) for v in opt.variables]:
            opt.set_weights(values)
            return True
    warnings.warn(f"{path.parent}: no matching optimizer state; the resumed QAT starts Adam afresh", stacklevel=2)
    return False


def _steps(job: _Job) -> int:
    steps = -(-len(job.train) // job.p["batch_size"])
    return min(steps, job.p["steps_per_epoch"]) if job.p["steps_per_epoch"] else steps


def _fine_tune(job: _Job, qmodel, state: dict[str, Any]) -> None:
    """The epochs left: fit, score on val, keep the best, checkpoint (model, then state) each epoch."""
    from edgecnn._tf import keras

    p, steps = job.p, _steps(job)
    weights = _class_weights(job.cfg, job.train.labels)
    for epoch in range(state["epoch"] + 1, p["epochs"] + 1):
        if state["wait"] >= p["patience"]:
            break
        # Dropout draws from TensorFlow's global generator: seeded per epoch, with the step traced
        # anew, a resumed epoch (and a rerun with the same --seed) trains exactly as the first did.
        keras.utils.set_random_seed(p["seed"] * 1000 + epoch)
        qmodel.train_function = None
        ds = _dataset(job.train, p["batch_size"], p["seed"], epoch, weights).take(steps)
        with EpochBar(f"QAT epoch {epoch}/{p['epochs']}", steps, job.progress) as bar:
            h = qmodel.fit(ds, epochs=1, verbose=0, callbacks=[bar.callback])
        thr, bac = best_threshold(job.val.labels, predict_probs(qmodel, job.val.images))
        row = {"epoch": epoch, "loss": float(h.history["loss"][-1]), "val_balanced_accuracy": bac, "threshold": thr}
        state["history"].append(row)
        if bac > state["best_bac"]:
            state.update(best_bac=bac, best_epoch=epoch, best_threshold=thr, wait=0)
            save_qat_model(qmodel, job.run.qat_dir / "best.keras")
        else:
            state["wait"] += 1
        state["epoch"] = epoch
        save_qat_model(qmodel, job.ckpt / "last.keras")
        _save_optimizer(qmodel, job.ckpt / OPTIMIZER_FILE)
        write_json(job.ckpt / "state.json", state)
        _log(job.console, f"QAT epoch {epoch}/{p['epochs']}: loss {row['loss']:.4f}, val BAC {bac:.4f} "
                          f"(threshold {thr:.3f})")


def _best_model(job: _Job, qmodel):
    from edgecnn.quantize.scheme import load_qat_model

    best_path = job.run.qat_dir / "best.keras"
    if best_path.exists():
        best = load_qat_model(best_path)
    elif job.run.qat_ready():
        # best.keras goes only once the results are written: this is a rerun (--resume) of a
        # finished QAT, whose kept epoch is qat/model.keras, not the last epoch's weights.
        best = load_qat_model(job.run.qat_model_path)
    else:
        best = qmodel
    job.p["bn_reestimate_batches"] = recompute_bn_statistics(
        best, job.train.images, batch_size=job.p["batch_size"], seed=job.p["seed"]) if job.p["bn"] == "reestimate" else 0
    return best


def _final_metrics(job: _Job, best, state: dict[str, Any]) -> dict[str, Any]:
    """Threshold and headline numbers in inference mode (what gets exported), BN-mode contrasts beside."""
    p, val, bs = job.p, job.val, job.p["batch_size"]
    # For contrast: training mode with BN on batch statistics (what an unfrozen fine-tune optimises).
    set_bn_trainable(best, True)
    p_batch_stats = predict_train_mode(best, val.images, bs)
    set_bn_trainable(best, p["bn"] != "freeze")
    thr, bac_inf = best_threshold(val.labels, predict_probs(best, val.images))
    bac_train_mode = binary_metrics(val.labels, predict_train_mode(best, val.images, bs), thr)["balanced_accuracy"]
    test = job.rd.part("test")
    job.p["ops"], float_ops = float_ops_of(best, job.run.input_size)
    return {
        "val_bac_float": job.float_bac, "float_threshold": float(job.info.get("threshold", 0.5)),
        "val_bac_float_best_threshold": best_threshold(val.labels, job.p_float)[1],
        "val_bac_qat": bac_inf, "val_bac_inference": bac_inf, "val_bac_train_mode": bac_train_mode,
        "bn_mode_gap": abs(bac_inf - bac_train_mode),
        "val_bac_bn_batch_stats": binary_metrics(val.labels, p_batch_stats, thr)["balanced_accuracy"],
        "bn": p["bn"], "bn_reestimate_batches": p["bn_reestimate_batches"], "activations": p["activations"],
        "range_calibration_batches": state.get("calibration_batches", 0),
        "threshold": thr, "best_epoch": state["best_epoch"], "epochs_run": state["epoch"],
        "epochs": p["epochs"], "lr": p["lr"], "batch_size": bs, "steps_per_epoch": _steps(job),
        "n_train": len(job.train), "n_val": len(val), "n_train_patients": job.train.n_patients,
        "n_val_patients": val.n_patients, "history": state["history"],
        "test": {**binary_metrics(test.labels, predict_probs(best, test.images), thr), "n_patients": test.n_patients},
        "float_ops": float_ops, "seconds": round(time.perf_counter() - job.t0, 2),
    }


def _save_results(job: _Job, best, metrics: dict[str, Any], state: dict[str, Any]) -> None:
    """model.keras, metrics.json, then model.json with the model's sha256: what marks the QAT
    finished (RunFolder.qat_ready), so a kill in between never leaves a model that export takes
    with another run's threshold. best.keras goes last: until then a --resume still has it."""
    from edgecnn.fsutil import sha256_file

    run, qat_dir = job.run, job.run.qat_dir
    save_qat_model(best, run.qat_model_path)
    write_json(qat_dir / "metrics.json", metrics)
    sym = job.p["activations"] == "symmetric"
    scheme = {"tool": "tensorflow-model-optimization", "scheme": "default 8-bit",
              "weights": "int8 symmetric, per output channel for conv (per tensor for dense)",
              "activations": "int8 symmetric, per tensor (TensorRT)" if sym else "int8 asymmetric, per tensor",
              "bn": job.p["bn"], "standalone_bn": _standalone(job.float_model), "keras_file_format": "h5"}
    write_json(qat_dir / "model.json", {
        "model": job.info.get("model", job.cfg.get("model")), "input_size": run.input_size,
        "threshold": metrics["threshold"], "val_balanced_accuracy": metrics["val_bac_qat"],
        "epoch": state["best_epoch"], "class_names": list(CLASS_NAMES), "source_model": str(run.model_path.name),
        "quantization": scheme, "int8_tflite_ops": job.p["ops"], "float_ops": metrics["float_ops"],
        "model_sha256": sha256_file(run.qat_model_path),
    })
    (qat_dir / "best.keras").unlink(missing_ok=True)
    _log(job.console, f"QAT: val balanced accuracy {job.float_bac:.4f} (float) → {metrics['val_bac_qat']:.4f} "
                      f"(QAT, inference mode; training mode {metrics['val_bac_train_mode']:.4f}); "
                      f"saved {run.qat_model_path}")


def _standalone(model) -> list[str]:
    from edgecnn.quantize.scheme import standalone_batchnorms

    return standalone_batchnorms(model)
