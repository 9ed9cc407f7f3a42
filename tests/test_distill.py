"""Label smoothing and distillation: the loss against its formula, teachers checked, a tiny real run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgecnn.train.run import RunError


def _np_loss(label, teacher, p, ls, alpha, t):
    hard = np.stack([1 - label, label], 1) * (1 - ls) + ls / 2
    ce = -(hard * np.log(p)).sum(1) * (1 - alpha)
    soft = lambda q: np.exp(np.log(q) / t) / np.exp(np.log(q) / t).sum(1, keepdims=True)  # noqa: E731
    kd = -(soft(np.stack([1 - teacher, teacher], 1)) * np.log(soft(p))).sum(1) * alpha * t * t
    return ce + kd


@pytest.mark.parametrize("ls,alpha,t", [(0.0, 0.0, 1.0), (0.1, 0.0, 1.0), (0.0, 0.7, 2.0), (0.1, 0.5, 4.0)])
def test_soft_target_loss_matches_formula(ls, alpha, t):
    from edgecnn.train.losses import SoftTargetLoss

    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 16).astype(np.float32)
    teacher = rng.uniform(0.01, 0.99, 16).astype(np.float32)
    p1 = rng.uniform(0.02, 0.98, 16).astype(np.float32)
    p = np.stack([1 - p1, p1], 1)
    got = SoftTargetLoss(ls, alpha, t, reduction="none")(np.stack([label, teacher], 1), p).numpy()
    np.testing.assert_allclose(got, _np_loss(label, teacher, p, ls, alpha, t), rtol=1e-4)


def test_soft_target_loss_plain_is_cross_entropy():
    """No smoothing, no teacher: the same number as Keras' sparse cross-entropy."""
    from edgecnn._tf import keras
    from edgecnn.train.losses import SoftTargetLoss

    y = np.array([0, 1, 1, 0], np.float32)
    p = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]], np.float32)
    ours = SoftTargetLoss()(np.stack([y, y], 1), p).numpy()
    ref = keras.losses.SparseCategoricalCrossentropy()(y, p).numpy()
    assert ours == pytest.approx(ref, rel=1e-5)


def test_loss_rejects_bad_settings():
    from edgecnn.train.fit import TrainConfig

    for bad in (dict(label_smoothing=1.0), dict(kd_alpha=1.5), dict(kd_temperature=0.0)):
        with pytest.raises(ValueError):
            TrainConfig(out="x", **bad).validate()


def test_teacher_checks(tiny_run, tmp_path):
    from edgecnn.train.distill import check_teachers

    assert check_teachers([str(tiny_run.path)], 50)[0]["input_size"] == 50
    with pytest.raises(RunError, match="--input-size 64"):
        check_teachers([str(tiny_run.path)], 64)
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    info = json.loads((tiny_run.path / "model.json").read_text())
    (swapped / "model.json").write_text(json.dumps(dict(info, class_names=["idc", "no_idc"])))
    with pytest.raises(RunError, match="swapped"):
        check_teachers([str(swapped)], 50)
    with pytest.raises(RunError, match="no such run"):
        check_teachers([str(tmp_path / "missing")], 50)


def test_distilled_tiny_run(tiny_run, idc_data, tmp_path):
    """A student trained on a real teacher's soft targets; the targets are the teacher's own
    probabilities on the training patches, kept for a resume, and the run resumes with its loss."""
    from edgecnn.train.evaluate import predict_target
    from edgecnn.train.fit import TrainConfig, train

    cfg = TrainConfig(out=str(tmp_path / "student"), data=str(idc_data), epochs=1, batch_size=32,
                      steps_per_epoch=4, max_patients=40, seed=0, teachers=[str(tiny_run.path)],
                      kd_alpha=0.7, kd_temperature=2.0, label_smoothing=0.1)
    run = train(cfg, progress=False)
    with np.load(run.path / "teacher_probs.npz") as z:
        cached = z["probs"]
    split = run.split()
    from edgecnn.data import load_patches

    tr = load_patches(str(idc_data)).select(split.train)
    direct, _, _ = predict_target(str(tiny_run.path), np.asarray(tr.images))
    np.testing.assert_allclose(cached, direct, atol=1e-5)
    assert json.loads(run.config_path.read_text())["teachers"] == [str(tiny_run.path)]
    report = json.loads((run.path / "teachers.json").read_text())
    va = load_patches(str(idc_data)).select(split.val)
    assert report["n_val_patches"] == len(va)
    from edgecnn.metrics import roc_auc

    p_val, _, _ = predict_target(str(tiny_run.path), np.asarray(va.images))
    assert report["teachers"][0]["val_roc_auc"] == pytest.approx(roc_auc(va.labels, p_val), abs=1e-6)
    assert report["mean"]["val_roc_auc"] == pytest.approx(report["teachers"][0]["val_roc_auc"])
    resumed = train(TrainConfig(out=str(run.path)), resume=True, progress=False, epochs=2)
    hist = json.loads(resumed.history_path.read_text())
    assert [h["epoch"] for h in hist] == [1, 2]
    assert all(np.isfinite(h["loss"]) and 0 <= h["accuracy"] <= 1 for h in hist)
    _check_model_card(resumed, tiny_run, tmp_path / "card")


def _check_model_card(student, teacher, out):
    """The release card names the teachers by folder and seed, never by this machine's path."""
    from tests.fixtures_train import model_card_text

    text = model_card_text(student, out)
    seed = json.loads((teacher.path / "config.json").read_text())["seed"]
    assert f"Distilled from 1 teacher (`{teacher.path.name}` (seed {seed}))" in text
    assert "weight 0.7 on its probabilities at temperature 2.0; it scores validation" in text
    assert str(teacher.path.parent) not in text
