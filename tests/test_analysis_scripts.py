"""The analysis scripts: learning_curve.py (subset splits, the half-patches folder, the
summary), error_overlap.py (do models share their mistakes?) and the context probes (ceiling,
joint training, grid density)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / f"scripts/{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def lc():
    return _script("learning_curve")


@pytest.fixture(scope="module")
def eo():
    return _script("error_overlap")


def test_subset_splits_keep_val_and_test_and_spread_over_idc_share(lc, idc_patches):
    from edgecnn.data.split import patient_split

    split = patient_split(idc_patches, seed=0)
    stats = idc_patches.patient_stats()
    subs = lc.subset_splits(split, stats, [8, 40], seed=0)
    assert subs[40].train == lc.subset_splits(split, stats, [40], seed=0)[40].train   # seeded
    share = {p: n1 / n for p, (n, n1) in stats.items()}
    shares = sorted(share[p] for p in split.train)
    for n, sub in subs.items():
        assert len(sub.train) == n and set(sub.train) <= set(split.train)
        assert (sub.val, sub.test) == (split.val, split.test)
        # Spread over the strata: the subset's IDC shares span the low and the high end of train's.
        mine = sorted(share[p] for p in sub.train)
        assert mine[0] <= shares[len(shares) // 4] and mine[-1] >= shares[3 * len(shares) // 4]
    with pytest.raises(SystemExit, match="training patients"):
        lc.subset_splits(split, stats, [len(split.train) + 1], seed=0)


def test_half_folder_links_half_of_training_patches_and_reads_back(lc, idc_patches, tmp_path):
    from edgecnn.data import load_patches

    counts = idc_patches.patient_stats()
    big = sorted(counts, key=lambda p: -counts[p][0])[:4]            # enough patches for a coin flip to show
    train, other = set(big[:3]), big[3]
    ps = idc_patches.select(big)
    kept = lc.link_half(ps, train, tmp_path / "half", seed=0)
    n_train = sum(counts[p][0] for p in train)
    assert 0.35 * n_train < kept < 0.65 * n_train
    back = load_patches(tmp_path / "half", cache=False)
    assert len(back) == kept + counts[other][0]                      # every patch of the other patient
    # Real files behind the links, same labels as the source.
    index = {(str(p), int(x), int(y)): int(label) for p, x, y, label in zip(ps.patients, ps.xs, ps.ys, ps.labels)}
    assert all(index[(str(p), int(x), int(y))] == int(label) for p, x, y, label in zip(back.patients, back.xs, back.ys, back.labels))
    assert np.array_equal(back.images[0], ps.images[np.flatnonzero((ps.xs == back.xs[0]) & (ps.ys == back.ys[0])
                                                                    & (ps.patients == back.patients[0]))[0]])


def test_half_folder_from_two_relative_sources(lc, idc_data, idc_patches, tmp_path, monkeypatch):
    from edgecnn.data import load_patches

    counts = idc_patches.patient_stats()
    a, b = sorted(counts, key=lambda p: -counts[p][0])[:2]
    for folder, patient in (("src-a", a), ("src-b", b)):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / patient).symlink_to(idc_data / patient)
    monkeypatch.chdir(tmp_path)
    merged = load_patches(["src-a", "src-b"], cache=False)             # names relative to the working folder
    kept = lc.link_half(merged, {a}, tmp_path / "half", seed=0)
    monkeypatch.chdir(Path(__file__).parent)                            # the links must not depend on it
    back = load_patches(tmp_path / "half", cache=False)
    assert len(back) == kept + counts[b][0] and 0.35 * counts[a][0] < kept < 0.65 * counts[a][0]


def test_summary_reports_the_epoch_the_run_kept(lc, tmp_path, capsys):
    run = tmp_path / "lc-8"
    run.mkdir()
    history = [{"epoch": e, "val_balanced_accuracy": b, "val_roc_auc": a}
               for e, b, a in ((1, 0.80, 0.88), (2, 0.83, 0.89), (3, 0.82, 0.90))]
    (run / "history.json").write_text(json.dumps(history))
    (run / "split.json").write_text(json.dumps({"counts": {"train": {"patients": 8, "patches": 1200}}}))
    row = lc.run_row(run)
    assert (row["best_epoch"], row["val_balanced_accuracy"], row["val_roc_auc"], row["best_val_roc_auc"]) == (2, 0.83, 0.89, 0.90)
    lc.main(["summary", str(run), "--json"])
    assert json.loads(capsys.readouterr().out)[0]["train_patients"] == 8


def test_overlap_counts_shared_errors(eo):
    y = np.array([1, 1, 0, 0, 0, 1], dtype=np.int8)
    a = np.array([1, 0, 0, 1, 1, 1], dtype=bool)      # wrong on 1, 3, 4
    b = np.array([1, 0, 0, 1, 0, 0], dtype=bool)      # wrong on 1, 3, 5
    r = eo.overlap(y, {"a": a, "b": b})
    assert r["wrong_for_all"] == pytest.approx(2 / 6) and r["wrong_for_none"] == pytest.approx(2 / 6)
    assert r["errors_shared_by_all"] == pytest.approx(2 / 4) and r["own_errors_shared_by_all"] == pytest.approx(2 / 3)
    assert (r["shared_false_negatives"], r["shared_false_positives"]) == (1, 1)
    assert r["pairwise_agreement_mean"] == pytest.approx(4 / 6)
    assert r["agreement_with_labels_mean"] == pytest.approx(6 / 12)


def test_error_overlap_of_two_real_models(eo, tiny_run, idc_data, idc_patches, tmp_path, capsys):
    release = Path(__file__).parents[1] / "exported/release/basic_cnn-int8-qat.tflite"
    split = tiny_run.path / "split.json"
    eo.main([str(tiny_run.path), str(release), "--data", str(idc_data), "--split", str(split),
             "--montage", str(tmp_path), "--json"])
    r = json.loads(capsys.readouterr().out)
    assert set(r["models"]) == {str(tiny_run.path), str(release)}
    from edgecnn.data.split import Split

    assert r["n_patches"] == len(idc_patches.indices_of(Split.load(split).val))
    shared = r["shared_false_negatives"] + r["shared_false_positives"]
    assert shared == round(r["wrong_for_all"] * r["n_patches"])
    assert 0 < r["pairwise_agreement_min"] <= r["pairwise_agreement_mean"] <= 1
    for name, n in (("shared-fn.png", r["shared_false_negatives"]), ("shared-fp.png", r["shared_false_positives"])):
        assert (tmp_path / name).exists() == (n > 0)
    with pytest.raises(SystemExit):
        eo.main([str(release), "--data", str(idc_data), "--split", str(split)])   # one model: nothing to compare


def test_context_ceiling_probe_features_on_a_hand_made_grid():
    """ring_extremes: each ring's largest and smallest present neighbour logit, own logit where the
    ring holds none; and the linear stage's cross-validation finds a signal the labels carry."""
    cp = _script("context_ceiling_probe")
    z = np.array([[0.0, 1.0, 5.0],
                  [2.0, 3.0, -4.0],
                  [9.0, 7.0, 8.0]])
    present = np.ones_like(z, dtype=bool)
    present[2, 0] = False                                  # the 9 is background
    ext = cp.ring_extremes(z, present, 2)                  # (hi ring 1, hi ring 2, lo ring 1, lo ring 2)
    assert ext.shape == (4, 3, 3)
    assert ext[0, 1, 1] == 8.0 and ext[2, 1, 1] == -4.0    # the centre's 7 present neighbours
    assert ext[0, 0, 0] == 3.0 and ext[2, 0, 0] == 1.0     # the corner's ring 1: 1, 2, 3
    assert ext[1, 0, 0] == 8.0 and ext[3, 0, 0] == -4.0    # its ring 2: 5, -4, 7, 8 (not the absent 9)
    assert ext[1, 1, 1] == ext[3, 1, 1] == 3.0             # a 3×3 grid has no ring 2 around its centre
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    x = np.c_[y + rng.normal(0, 0.5, 400), rng.normal(size=400)]
    fold = np.arange(400) % 4
    assert cp.cross_validated_auc(cp.linear, x, y, fold) > 0.9
    assert cp.cross_validated_auc(cp.linear, x[:, 1:], y, fold) < 0.65


def test_context_joint_probe_trains_the_shipped_stage_family():
    """The probe's TensorFlow ring stage computes what the shipped numpy stage computes, and two
    patients batched side by side do not see each other's tiles."""
    from types import SimpleNamespace

    from edgecnn.context.stage import RingLogistic, sigmoid

    jp = _script("context_joint_probe")
    rng = np.random.default_rng(0)
    coef = rng.normal(0, 0.5, 2 * jp.RADIUS + 1).tolist()
    stage = RingLogistic(size=jp.RADIUS, coef=coef, bias=0.3, presence=True)
    jm = jp.JointModel(stage, feature_channels=4)          # feature head starts at zero: the stage alone
    rows, cols = np.nonzero(rng.random((9, 14)) < 0.4)
    z = rng.normal(0, 2, len(rows))
    grid = np.full((9, 14), np.nan)
    grid[rows, cols] = sigmoid(z)
    want = stage.field_probs(grid)[rows, cols]
    rc = np.stack([rows, cols], 1).astype(np.int32)
    f = rng.random((len(z), 512)).astype(np.float32)
    got = sigmoid(jm.field_logits(z.astype(np.float32), rc, f).numpy())
    np.testing.assert_allclose(got, want, atol=1e-5)

    part = SimpleNamespace(patients=np.array(["a"] * len(z) + ["b"] * len(z)), xs=np.r_[cols, cols] * 50,
                           ys=np.r_[rows, rows] * 50)
    (idx, batch_rc), = jp.batches(jp.Grids(part), np.random.default_rng(1), per_step=2)
    both = sigmoid(jm.field_logits(np.r_[z, z][idx].astype(np.float32), batch_rc).numpy())
    alone = np.r_[want, want][idx]
    np.testing.assert_allclose(both, alone, atol=1e-5)


def test_context_density_check_on_real_validation_patches(idc_data, capsys):
    """The shipped stage on the release's validation patients of idc/, whole and thinned: the best
    threshold can only match or beat the shipped one, and thinning removes neighbours."""
    dc = _script("context_density_check")
    release = Path(__file__).parents[1] / "exported/release"
    rows = dc.main([str(release / "basic_cnn-int8-qat.tflite"), "--data", str(idc_data),
                    "--split", str(release / "split.json"), "--keep", "1.0", "0.3", "--draws", "1"])
    assert [r["kept"] for r in rows] == [1.0, 0.3]
    for r in rows:
        assert 0.5 < r["bac_at_shipped_threshold"] <= r["best_bac"] + 1e-9 and 0.5 < r["field_auc"] <= 1.0
    assert json.loads(capsys.readouterr().out)["rows"] == rows
    with pytest.raises(SystemExit, match="no context stage"):
        dc.main([str(release / "basic_cnn-int8-vela.tflite"),                 # an NPU file: no stage
                 "--data", str(idc_data), "--split", str(release / "split.json")])
