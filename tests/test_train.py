"""Training on real patches: the run folder, loss falling, resume after a kill, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from edgecnn.fsutil import read_json
from edgecnn.train.run import RunError, RunFolder

REQUIRED_METRICS = {"accuracy", "balanced_accuracy", "f1", "roc_auc", "n_patches", "n_patients", "confusion_matrix"}


def test_run_folder_contents(tiny_run):
    run = tiny_run
    for p in (run.config_path, run.split_path, run.model_path, run.model_info_path, run.metrics_path, run.history_path,
              run.plots_dir / "loss.png", run.plots_dir / "accuracy.png", run.plots_dir / "confusion_matrix.png"):
        assert p.exists(), p
    m = read_json(run.metrics_path)
    assert REQUIRED_METRICS <= set(m)
    assert m["n_patches"] == sum(map(sum, m["confusion_matrix"]))
    split = run.split()
    split.check_disjoint()
    assert split.test and split.val and split.train
    info = run.model_info()
    assert 0.0 < info["threshold"] < 1.0 and info["input_size"] == 50
    # The stored threshold is the one that produced the reported validation score.
    best = max(h["val_balanced_accuracy"] for h in read_json(run.history_path))
    assert info["val_balanced_accuracy"] == pytest.approx(best)


def test_loss_falls(tiny_run):
    hist = read_json(tiny_run.history_path)
    assert len(hist) == 3
    assert hist[-1]["loss"] < hist[0]["loss"]


def _patients_folder(idc_data, ids, root):
    """A Kaggle-layout folder holding only ``ids`` (symlinks; the data stays read-only)."""
    root.mkdir()
    for pid in ids:
        os.symlink(idc_data / pid, root / pid)
    return root


def test_evaluate_matches_run_metrics_on_test_patients(tiny_run, idc_data, tmp_path):
    """evaluate() on a folder of the run's test patients reproduces the run's test metrics."""
    from edgecnn.train.evaluate import evaluate

    root = _patients_folder(idc_data, tiny_run.split().test, tmp_path / "test-patients")
    m = evaluate(tiny_run.path, root)
    ref = read_json(tiny_run.metrics_path)
    assert m["n_patches"] == ref["n_patches"] and m["n_patients"] == ref["n_patients"]
    assert m["confusion_matrix"] == ref["confusion_matrix"]
    assert m["balanced_accuracy"] == pytest.approx(ref["balanced_accuracy"])


def test_resume_after_kill(idc_data, tmp_path):
    """Kill a training process after its first checkpoint; --resume continues from there."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "edgecnn.cli", "train", "--out", str(out), "--data", str(idc_data), "--epochs", "30",
           "--steps-per-epoch", "4", "--max-patients", "24", "--batch-size", "16", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state = out / "ckpt" / "state.json"
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not state.exists():
            time.sleep(0.2)
        assert state.exists(), "no checkpoint within 180 s"
        time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = json.loads(state.read_text())["epoch"]
    assert 1 <= done < 30
    from edgecnn.train.fit import TrainConfig, train

    run = train(TrainConfig(out=str(out)), resume=True, progress=False, epochs=done + 1)
    hist = read_json(run.history_path)
    assert [h["epoch"] for h in hist] == list(range(1, done + 2))
    assert read_json(state)["epoch"] == done + 1
    assert run.model_path.exists()
    cfg = read_json(run.config_path)   # the budget the run really had, and when it changed
    assert cfg["epochs"] == done + 1
    assert cfg["epoch_budget_changes"] == [{"after_epoch": done, "from": 30, "to": done + 1}]


def test_refuses_to_overwrite_and_nothing_to_resume(tiny_run, tmp_path):
    from edgecnn.train.fit import TrainConfig, train

    with pytest.raises(RunError, match="already holds a run"):
        train(TrainConfig(out=str(tiny_run.path), data="unused"), progress=False)
    with pytest.raises(RunError, match="nothing to resume"):
        train(TrainConfig(out=str(tmp_path / "empty")), resume=True, progress=False)


def test_bad_config_values(idc_data, tmp_path):
    from edgecnn.train.fit import TrainConfig, train

    for kw, msg in [({"balance": "oversample"}, "balance"), ({"model": "resnet"}, "unknown model"),
                    ({"val": 0.6, "test": 0.5}, "leave patients"), ({"lr_schedule": "step"}, "lr-schedule"),
                    ({"ema": 1.5}, "--ema")]:
        with pytest.raises(ValueError, match=msg):
            train(TrainConfig(out=str(tmp_path / "bad"), data=str(idc_data), **kw), progress=False)


def test_run_folder_errors(tmp_path):
    empty = RunFolder(tmp_path)
    with pytest.raises(RunError, match="edgecnn train"):
        empty.config()
    with pytest.raises(RunError, match="no trained model"):
        empty.require_model()
    (tmp_path / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(RunError, match="cannot load the model"):
        empty.load_model()


def test_cli_train_and_evaluate_json(tiny_run, idc_data, tmp_path):
    from typer.testing import CliRunner

    from edgecnn.cli import app

    one = _patients_folder(idc_data, tiny_run.split().test[:1], tmp_path / "one")
    r = CliRunner().invoke(app, ["evaluate", str(tiny_run.path), "--data", str(one), "--json", "-"])
    assert r.exit_code == 0, r.output
    js = json.loads(r.stdout[r.stdout.index("{"):])
    assert REQUIRED_METRICS <= set(js) and js["n_patients"] == 1
    r = CliRunner().invoke(app, ["evaluate", str(tmp_path / "nope"), "--data", str(idc_data)])
    assert r.exit_code == 2 and "no such run folder" in r.output
    r = CliRunner().invoke(app, ["train", "--help"])
    assert r.exit_code == 0 and "--resume" in r.output


def test_weight_average_candidate(idc_data, tmp_path):
    """--swa-epochs averages the last epochs' weights and keeps them only if validation says so."""
    from edgecnn.train.fit import TrainConfig, train

    run = train(TrainConfig(out=str(tmp_path / "swa"), data=str(idc_data), epochs=3, batch_size=32, steps_per_epoch=6,
                            max_patients=24, swa_epochs=2), progress=False)
    swa = read_json(run.metrics_path)["weight_average"]
    assert swa["epochs"] == [2, 3] and 0.0 <= swa["val_balanced_accuracy"] <= 1.0
    info = run.model_info()
    hist = read_json(run.history_path)
    best_epoch_bac = max(h["val_balanced_accuracy"] for h in hist)
    # Whichever way validation went, the rule holds and model.json names what was kept.
    assert swa["kept"] == (swa["val_balanced_accuracy"] > best_epoch_bac + 1e-4)
    assert info.get("weight_average_of_epochs") == ([2, 3] if swa["kept"] else None)
    assert info["val_balanced_accuracy"] == (swa["val_balanced_accuracy"] if swa["kept"] else best_epoch_bac)
    assert _rescored_val_bac(run, idc_data) == pytest.approx(info["val_balanced_accuracy"], abs=1e-6)
    assert (run.ckpt_dir / "swa.npz").exists()


def test_cosine_schedule_shape():
    from edgecnn.train.schedule import cosine_lr

    lrs = [cosine_lr(1e-3, s, 100, warmup_steps=10) for s in range(100)]
    assert lrs[0] == pytest.approx(1e-4) and lrs[9] == pytest.approx(1e-3)
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:10]))      # warm-up rises
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))       # then only falls
    assert lrs[55] == pytest.approx(5e-4) and lrs[-1] < 1e-6
    assert cosine_lr(1e-3, 500, 100) == 0.0                       # past the end stays at 0


def test_ema_cosine_run_and_resume(idc_data, tmp_path):
    """--ema scores and keeps the moving average (not the raw weights), --lr-schedule cosine
    follows its curve, and both carry over a resume."""
    import numpy as np

    from edgecnn._tf import keras
    from edgecnn.train.fit import TrainConfig, train
    from edgecnn.train.schedule import cosine_lr

    steps = 6
    cfg = TrainConfig(out=str(tmp_path / "ema"), data=str(idc_data), epochs=2, batch_size=32, steps_per_epoch=steps,
                      max_patients=24, ema=0.99, lr_schedule="cosine", warmup_epochs=1, patience=10)
    run = train(cfg, progress=False)
    run = train(TrainConfig(out=cfg.out), resume=True, progress=False, epochs=3)
    hist = read_json(run.history_path)
    assert [h["epoch"] for h in hist] == [1, 2, 3]
    assert hist[0]["lr"] == pytest.approx(1e-3)                   # end of the warm-up epoch
    assert hist[2]["lr"] == pytest.approx(cosine_lr(1e-3, 3 * steps - 1, 3 * steps, steps), rel=1e-4)
    with np.load(run.ckpt_dir / "ema.npz") as z:
        assert int(z["updates"]) == 3 * steps                     # resumed average, not restarted
        shadow = [z[f"w{i}"] for i in range(len(z.files) - 1)]
    kept = [w.numpy() for w in keras.models.load_model(run.model_path).trainable_weights]
    raw = [w.numpy() for w in keras.models.load_model(run.ckpt_dir / "last.keras").trainable_weights]
    assert any(not np.allclose(k, r) for k, r in zip(kept, raw)), "kept model holds the raw weights"
    # The kept model is the scored average of its epoch: it reproduces that epoch's validation
    # score, and equals the final average exactly when that epoch is the last one.
    best = run.model_info()["epoch"]
    assert _rescored_val_bac(run, idc_data) == pytest.approx(hist[best - 1]["val_balanced_accuracy"], abs=1e-6)
    assert all(np.allclose(k, s) for k, s in zip(kept, shadow)) == (best == 3)


def _rescored_val_bac(run, data) -> float:
    """Balanced accuracy (at its best threshold) of the run's kept model.keras on its val patients."""
    from edgecnn._tf import keras
    from edgecnn.data import load_patches
    from edgecnn.metrics import best_threshold
    from edgecnn.train.fit import predict_probs

    val = load_patches(data).select(run.split().parts()["val"])
    p = predict_probs(keras.models.load_model(run.model_path), val.images, input_size=run.input_size)
    return best_threshold(val.labels, p)[1]


def test_bare_keras_file_uses_its_sidecar_threshold(tiny_run, idc_data, tmp_path):
    """A .keras file is scored at the threshold in the JSON of the same stem beside it (a run's
    model.json, the release's basic_cnn-fp32.json); without one at 0.5, with a warning."""
    import shutil

    from typer.testing import CliRunner

    from edgecnn.cli import app

    one = _patients_folder(idc_data, tiny_run.split().test[:1], tmp_path / "one")
    r = CliRunner().invoke(app, ["evaluate", str(tiny_run.model_path), "--data", str(one), "--json", "-"])
    assert r.exit_code == 0, r.output
    js = json.loads(r.stdout[r.stdout.index("{"):])
    assert js["threshold"] == pytest.approx(tiny_run.model_info()["threshold"])
    # The one test patient was not trained on, so no warning of either kind ("warnings" is a JSON key).
    assert js["model"]["threshold_from"].endswith("model.json") and "warning:" not in r.output
    assert js["warnings"] == []

    bare = tmp_path / "bare" / "basic_cnn-fp32.keras"
    bare.parent.mkdir()
    shutil.copyfile(tiny_run.model_path, bare)
    r = CliRunner().invoke(app, ["evaluate", str(bare), "--data", str(one), "--json", "-"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout[r.stdout.index("{"):])["threshold"] == 0.5
    assert "warning:" in r.stderr and "basic_cnn-fp32.json" in r.stderr


def test_evaluate_split_and_trained_patient_warning(tiny_run, idc_data, tmp_path):
    """Data holding a training patient is scored with a warning that names --split; with --split
    only the chosen part's patients are scored and nothing is said."""
    from edgecnn.train.evaluate import evaluate

    sp = tiny_run.split()
    both = _patients_folder(idc_data, [sp.train[0], sp.test[0]], tmp_path / "both")
    m = evaluate(tiny_run.path, str(both))
    assert m["n_patients"] == 2 and len(m["warnings"]) == 1
    assert "training patients" in m["warnings"][0] and "--split" in m["warnings"][0]
    t = evaluate(tiny_run.path, str(both), split=tiny_run.path)
    assert t["n_patients"] == 1 and t["warnings"] == [] and t["split"]["part"] == "test"
    with pytest.raises(ValueError, match="none of its"):
        evaluate(tiny_run.path, str(_patients_folder(idc_data, [sp.train[1]], tmp_path / "tr")), split=tiny_run.path)


def test_a_run_killed_before_its_first_checkpoint_starts_over(tmp_path):
    """Killed in epoch 1 after model.keras but before ckpt/: --resume has nothing to resume, so the
    same command must start the run over (it refused: "already holds a run", a dead end)."""
    from edgecnn.fsutil import write_json
    from edgecnn.train.fit import TrainConfig, _resolve_config

    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    write_json(run.config_path, {"model": "basic_cnn"})
    run.model_path.write_bytes(b"epoch 1's model")
    cfg = TrainConfig(out=str(run.path), data="unused")
    assert _resolve_config(cfg, run, False, None) is cfg
    with pytest.raises(RunError, match="nothing to resume"):
        _resolve_config(cfg, run, True, None)
    for done in (run.ckpt_dir / "state.json", run.metrics_path):     # a checkpoint, or a finished run
        done.parent.mkdir(exist_ok=True)
        write_json(done, {})
        with pytest.raises(RunError, match="already holds a run"):
            _resolve_config(cfg, run, False, None)
        done.unlink()


def test_a_resumed_run_trains_exactly_like_an_uninterrupted_one(tiny_run, idc_data, tmp_path):
    """Stopped after epoch 2 and resumed, the run ends with the weights and history of the
    uninterrupted 3-epoch `tiny_run` (dropout is seeded per epoch, not by the process's history)."""
    import numpy as np

    from edgecnn.models.precision import load_float32
    from edgecnn.train.fit import TrainConfig, train
    from tests.fixtures_train import TINY

    out = tmp_path / "resumed"
    train(TrainConfig(out=str(out), data=str(idc_data), **{**TINY, "epochs": 2}), progress=False)
    run = train(TrainConfig(out=str(out)), resume=True, progress=False, epochs=TINY["epochs"])

    def history(r):
        return [{k: v for k, v in h.items() if k != "seconds"} for h in read_json(r.history_path)]
    assert history(run) == history(tiny_run)
    for a, b in zip(load_float32(run.ckpt_dir / "last.keras").get_weights(),
                    load_float32(tiny_run.ckpt_dir / "last.keras").get_weights()):
        np.testing.assert_array_equal(a, b)
