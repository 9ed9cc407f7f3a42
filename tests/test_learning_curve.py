"""scripts/learning_curve.py on the real patches: subset splits, the half-patches folder, the summary."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def lc():
    spec = importlib.util.spec_from_file_location("learning_curve", Path(__file__).parents[1] / "scripts/learning_curve.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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
