"""The context stage: neighbour rules on hand-made grids, the out-of-fold rule, evaluate --context
and scan agreeing tile by tile on a real patient, bad input, and the TF-free device import."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from edgecnn.context import ContextError, NeighbourMean, RingLogistic, field_probs_of_patches, stage_from_dict
from edgecnn.context.fit import Tiles, choose, logistic
from edgecnn.context.stage import box_sums, ring_means, sigmoid
from edgecnn.metrics import roc_auc

runner = CliRunner()


def _brute_ring(z, present, r, d):
    rows, cols = z.shape
    out = np.full(z.shape, np.nan)
    for i in range(rows):
        for j in range(cols):
            vals = [z[a, b] for a in range(rows) for b in range(cols)
                    if present[a, b] and max(abs(a - i), abs(b - j)) == d]
            if vals:
                out[i, j] = np.mean(vals)
    return out


def test_ring_means_match_brute_force():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(7, 9))
    present = rng.random((7, 9)) < 0.4
    means, counts = ring_means(z, present, 3)
    for d in (1, 2, 3):
        np.testing.assert_allclose(means[d - 1], _brute_ring(z, present, 3, d), equal_nan=True)
    assert counts[0, 3, 4] == sum(present[a, b] for a in (2, 3, 4) for b in (3, 4, 5) if (a, b) != (3, 4))
    np.testing.assert_allclose(box_sums(np.ones((3, 3)), 1), [[4, 6, 4], [6, 9, 6], [4, 6, 4]])


def test_neighbour_mean_on_a_hand_made_grid():
    nan = np.nan
    probs = np.array([[0.9, 0.1, nan],
                      [nan, 0.5, nan],
                      [nan, nan, 0.2]])
    out = NeighbourMean(size=1, weight=0.5).field_probs(probs)
    # (0,0): neighbours (0,1) and (1,1) → mean 0.3; 0.5·0.9 + 0.5·0.3
    assert out[0, 0] == pytest.approx(0.6)
    # (1,1): all four others present → mean (0.9 + 0.1 + 0.2) / 3
    assert out[1, 1] == pytest.approx(0.5 * 0.5 + 0.5 * 0.4)
    # (2,2): its only neighbour within 1 is (1,1)
    assert out[2, 2] == pytest.approx(0.5 * 0.2 + 0.5 * 0.5)
    assert np.isnan(out[0, 2]) and np.isnan(out[2, 0])     # absent stays absent
    # An absent tile's value never leaks in, whatever it holds.
    masked = NeighbourMean(size=1, weight=0.5).field_probs(np.nan_to_num(probs, nan=1.0), np.isfinite(probs))
    np.testing.assert_allclose(masked, out, equal_nan=True)


def test_isolated_tile_falls_back_to_itself():
    lone = np.array([[np.nan, np.nan], [np.nan, 0.8]])
    assert NeighbourMean(size=3, weight=0.75).field_probs(lone)[1, 1] == pytest.approx(0.8)
    stage = RingLogistic(size=2, coef=[1.0, 0.5, 0.25], bias=-0.2)
    z = np.log(0.8 / 0.2)
    assert stage.field_probs(lone)[1, 1] == pytest.approx(float(sigmoid(-0.2 + 1.75 * z)))
    shares = RingLogistic(size=1, coef=[1.0, 0.5, 2.0], bias=0.0, presence=True)
    assert shares.field_probs(lone)[1, 1] == pytest.approx(float(sigmoid(1.5 * z)))      # no tissue around
    full = np.full((3, 3), 0.8)
    assert shares.field_probs(full)[1, 1] == pytest.approx(float(sigmoid(1.5 * z + 2.0)))  # ring 1 all tissue
    assert shares.field_probs(full)[0, 0] == pytest.approx(float(sigmoid(1.5 * z + 2.0 * 3 / 8)))


def test_stage_round_trip_and_bad_dicts():
    stage = RingLogistic(size=2, coef=[1.0, 0.5, 0.25], bias=-0.2, threshold=0.41, meta={"x": 1})
    back = stage_from_dict(json.loads(json.dumps(stage.to_dict())))
    assert isinstance(back, RingLogistic) and back.params() == stage.params() and back.threshold == 0.41
    with_shares = RingLogistic(size=1, coef=[1.0, 0.5, 0.1], presence=True)
    assert stage_from_dict(with_shares.to_dict()).params() == with_shares.params()
    with pytest.raises(ContextError, match="expected kind one of"):
        stage_from_dict({"kind": "crf"}, "m.json")
    with pytest.raises(ContextError, match="3 coefficients"):
        stage_from_dict({"kind": "ring_logistic", "radius": 2, "coef": [1.0], "bias": 0.0})
    with pytest.raises(ContextError, match="--stride 50"):
        NeighbourMean(size=1).check_geometry(50, 25, "--stride 25")


def test_logistic_recovers_known_weights():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(20000, 2))
    y = (rng.random(20000) < sigmoid(1.5 * x[:, 0] - 0.7 * x[:, 1] + 0.3)).astype(np.int64)
    coef, bias = logistic(x, y, l2=0.0)
    np.testing.assert_allclose(coef, [1.5, -0.7], atol=0.08)


def test_loose_patches_place_report_and_refuse_duplicates():
    stage = NeighbourMean(size=1, weight=0.5)
    p = np.array([0.9, 0.1, 0.5, 0.7])
    patients = np.array(["a", "a", "a", "b"])
    xs, ys = np.array([1, 51, 77, -1]), np.array([1, 1, 1, -1])
    q, rep = field_probs_of_patches(stage, p, patients, xs, ys)
    assert q[0] == pytest.approx(0.5 * 0.9 + 0.5 * 0.1) and q[1] == pytest.approx(0.5)
    assert q[2] == pytest.approx(0.5) and q[3] == pytest.approx(0.7)   # off the grid, no coordinates: alone
    assert rep == {"patches": 4, "without_coordinates": 1, "off_grid": 1, "with_neighbours": 2, "patients": 2}
    with pytest.raises(ContextError, match=r"patient a: two patches at x=1, y=1 \(f0, f1\)"):
        field_probs_of_patches(stage, p[:2], patients[:2], np.array([1, 1]), np.array([1, 1]), np.array(["f0", "f1"]))


def test_choose_picks_by_validation_auc_and_sets_the_threshold():
    # Labels are a block; tile probabilities are the block plus heavy noise: neighbours help.
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:30, 0:30]
    labels = ((xx > 12) & (yy > 8)).ravel().astype(np.int64)
    probs = np.clip(0.3 + 0.4 * labels + rng.normal(0, 0.25, labels.size), 0.01, 0.99)
    tiles = Tiles(probs, labels, np.array(["p"] * labels.size), (xx.ravel() * 50 + 1), (yy.ravel() * 50 + 1))
    stage, table = choose(tiles, tiles)
    patch_auc = roc_auc(labels, probs)
    assert max(r["val_auc"] for r in table) == pytest.approx(table[[r["params"] for r in table].index(stage.params())]["val_auc"])
    assert max(r["val_auc"] for r in table) > patch_auc + 0.05
    assert 0 < stage.threshold < 1


def test_device_import_has_no_tensorflow():
    code = ("import sys, edgecnn.context, edgecnn.context.cli, edgecnn.context.fit, edgecnn.scan.scanner\n"
            "assert 'tensorflow' not in sys.modules, sorted(m for m in sys.modules if 'tensorflow' in m)[:3]\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


# Real data ---------------------------------------------------------------------------------------

PATIENT = "10254"   # a patient whose complete grid is in idc/: a real field of view


@pytest.fixture(scope="module")
def field_release(release_dir, tmp_path_factory):
    """The test release folder with a neighbour-mean stage in its int8 TFLite's manifest."""
    import shutil

    from edgecnn.fsutil import write_json
    from edgecnn.manifest import manifest_path, read_manifest

    out = tmp_path_factory.mktemp("ctx-release")
    for f in release_dir.iterdir():
        shutil.copy2(f, out / f.name)
    art = next(out.glob("*.tflite"))
    m = read_manifest(art)
    m["context"] = NeighbourMean(size=2, weight=0.5, threshold=0.5).to_dict()
    write_json(manifest_path(art), m)
    return art


@pytest.mark.slow
def test_scan_and_evaluate_agree_tile_by_tile(field_release, idc_data, patient_mosaic, tmp_path):
    from edgecnn.cli import app
    from edgecnn.scan.scanner import Scanner

    res = Scanner(field_release, threads=2).scan(patient_mosaic(PATIENT).image)
    assert res.context.startswith("neighbour mean") and res.patch_prob_map is not None
    data = tmp_path / "data"
    data.mkdir()
    (data / PATIENT).symlink_to(idc_data / PATIENT)
    r = runner.invoke(app, ["evaluate", str(field_release), "--data", str(data), "--context", "--json", "-", "-q"])
    assert r.exit_code == 0, r.output
    m = json.loads(r.stdout)
    assert set(m["context"]) >= {"balanced_accuracy", "roc_auc", "balanced_accuracy_ci95", "stage", "neighbours"}
    from edgecnn.data import load_patches
    from edgecnn.runtime import load

    ps = load_patches(data)
    p = load(field_release).predict(ps.images)
    q, _ = field_probs_of_patches(stage_from_dict(m["context"]["stage"]), p, ps.patients, ps.xs, ps.ys)
    rows, cols = (ps.ys - ps.ys.min()) // 50, (ps.xs - ps.xs.min()) // 50
    assert res.tissue_mask[rows, cols].all(), "every patch of the patient is a tissue tile of its mosaic"
    np.testing.assert_allclose(res.patch_prob_map[rows, cols], p, atol=1e-6)
    assert res.tissue_mask.sum() == len(ps), "the mosaic's tissue is exactly the patient's patches"
    np.testing.assert_allclose(res.prob_map[rows, cols], q, atol=1e-5)
    tp = int(((q >= m["context"]["threshold"]) & (ps.labels == 1)).sum())
    assert m["context"]["confusion_matrix"][1][1] == tp


@pytest.mark.slow
def test_scan_context_switches_and_bad_input(field_release, release_dir, patient_mosaic, tmp_path):
    from PIL import Image

    from edgecnn.cli import app

    img = tmp_path / "f.png"
    Image.fromarray(patient_mosaic(PATIENT).image).save(img)
    base = ["scan", str(img), "--out", str(tmp_path / "o"), "--threads", "2", "--json", "-"]
    on = runner.invoke(app, base + ["--model", str(field_release)])
    off = runner.invoke(app, base + ["--model", str(field_release), "--no-context"])
    assert on.exit_code == 0 and off.exit_code == 0, on.output + off.output
    a, b = (json.loads(r.stdout)["images"][0] for r in (on, off))
    assert a["context"].startswith("neighbour mean") and b["context"] is None
    assert a["tissue_tiles"] == b["tissue_tiles"] and a["threshold"] != b["threshold"]
    bad = runner.invoke(app, base + ["--model", str(field_release), "--stride", "25"])
    assert bad.exit_code == 2 and "--stride 50" in bad.output and "Traceback" not in bad.output
    plain = next(release_dir.glob("*.tflite"))
    r = runner.invoke(app, ["scan", str(img), "--out", str(tmp_path / "p"), "--model", str(plain)])
    assert r.exit_code == 0 and "carries no context stage" in " ".join(r.output.split())
    r = runner.invoke(app, ["evaluate", str(plain), "--context"])
    said = " ".join(r.output.split())
    assert r.exit_code == 2 and "carries no context stage" in said and "context fit" in said


@pytest.mark.slow
def test_out_of_fold_rule(idc_data, tmp_path):
    """No fold model that produced a stage's training input saw that input's patient; reruns reuse."""
    from edgecnn.data import load_patches
    from edgecnn.data.split import Split, patient_split
    from edgecnn.train.oof import oof_tiles, train_folds

    ps = load_patches(idc_data)
    ps = ps.select(ps.patient_ids[:24])
    split = patient_split(ps, seed=0)
    tiny = {"epochs": 1, "steps_per_epoch": 3, "batch_size": 32}
    runs = train_folds(split, ps, str(idc_data), tmp_path / "folds", k=2, recipe=tiny, progress=False)
    held = [set(Split.load(r.path / "split.json").test) for r in runs]
    assert held[0] | held[1] == set(split.train) and not held[0] & held[1]
    for run, h in zip(runs, held):
        s = Split.load(run.path / "split.json")
        assert s.val == split.val and not set(s.train) & h
        t = oof_tiles([run], ps)
        assert set(t.patients.tolist()) == h, "each fold model scores exactly its held-out patients"
    oof = oof_tiles(runs, ps)
    assert sorted(oof.patients.tolist()) == sorted(ps.select(split.train).patients.tolist())
    again = train_folds(split, ps, str(idc_data), tmp_path / "folds", k=2, recipe=tiny, progress=False)
    assert [r.path for r in again] == [r.path for r in runs]   # complete folds are reused
    with pytest.raises(ValueError, match="another split or --folds"):
        train_folds(split, ps, str(idc_data), tmp_path / "folds", k=3, recipe=tiny, progress=False)
