"""Patient-level splits: deterministic, disjoint, stratified; the published split files; balancing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgecnn.data import DataError, Split, class_weights, patient_split, split_from_files, undersample


def _share(ps, ids):
    stats = ps.patient_stats()
    n = sum(stats[p][0] for p in ids)
    return sum(stats[p][1] for p in ids) / n


def test_split_is_deterministic_and_seeded(idc_patches):
    a = patient_split(idc_patches, seed=0)
    b = patient_split(idc_patches, seed=0)
    c = patient_split(idc_patches, seed=1)
    assert a.parts() == b.parts()
    assert a.parts() != c.parts()


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_split_disjoint_complete_and_sized(idc_patches, seed):
    sp = patient_split(idc_patches, val=0.15, test=0.15, seed=seed)
    sp.check_disjoint()
    parts = [set(sp.train), set(sp.val), set(sp.test)]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert set().union(*parts) == set(idc_patches.patient_ids)
    assert (len(sp.val), len(sp.test)) == (round(0.15 * 229), round(0.15 * 229))
    # Row level: no patch of a val/test patient is in train.
    train_rows = set(idc_patches.indices_of(sp.train).tolist())
    assert not train_rows & set(idc_patches.indices_of(sp.test).tolist())


def test_split_is_stratified_by_patient_prevalence(idc_patches):
    """Each part gets the same mix of low- and high-IDC patients (mean patient share close)."""
    stats = idc_patches.patient_stats()
    share = {p: pos / n for p, (n, pos) in stats.items()}
    overall = np.mean(list(share.values()))
    for seed in range(5):
        sp = patient_split(idc_patches, seed=seed)
        for ids in sp.parts().values():
            assert abs(np.mean([share[p] for p in ids]) - overall) < 0.05
            # and the IDC-free patients are spread too
            zero = sum(share[p] == 0 for p in ids) / len(ids)
            assert abs(zero - np.mean([v == 0 for v in share.values()])) < 0.06


def test_stratification_beats_unstratified_on_average(idc_patches):
    """Sanity: a plain random patient split has a larger spread of part prevalence."""
    stats = idc_patches.patient_stats()
    share = {p: pos / n for p, (n, pos) in stats.items()}
    ids = sorted(share)

    def spread(parts):
        return np.ptp([np.mean([share[p] for p in part]) for part in parts])

    rng = np.random.default_rng(0)
    strat, rand = [], []
    for seed in range(20):
        sp = patient_split(idc_patches, seed=seed)
        strat.append(spread(sp.parts().values()))
        perm = list(rng.permutation(ids))
        rand.append(spread([perm[:34], perm[34:68], perm[68:]]))
    assert np.mean(strat) < np.mean(rand)


def test_split_save_load_roundtrip(idc_patches, tmp_path):
    sp = patient_split(idc_patches, seed=3)
    path = sp.save(tmp_path / "split.json", idc_patches)
    d = json.loads(path.read_text())
    assert d["method"] == "stratified" and d["seed"] == 3
    total = sum(d["counts"][k]["patches"] for k in ("train", "val", "test"))
    assert total == len(idc_patches)
    c = d["counts"]["val"]
    assert c["patches"] == len(idc_patches.select(sp.val))
    assert c["class_counts"]["1"] == int(idc_patches.select(sp.val).labels.sum())
    back = Split.load(path)
    assert back.parts() == sp.parts() and back.seed == 3


def test_overlapping_split_rejected(tmp_path):
    with pytest.raises(ValueError, match="both"):
        Split(["1", "2"], ["2"], ["3"]).check_disjoint()
    (tmp_path / "bad.json").write_text(json.dumps({"train": ["1"], "val": ["1"], "test": []}))
    with pytest.raises(ValueError):
        Split.load(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("{")
    with pytest.raises(DataError, match="not a valid split"):
        Split.load(tmp_path / "junk.json")


def test_bad_fractions(idc_patches):
    with pytest.raises(ValueError):
        patient_split(idc_patches, val=0.6, test=0.5)


def test_official_split_files(idc_patches, official_split_dir):
    train_file = official_split_dir / "cases_train.txt"
    val_file = official_split_dir / "cases_val.txt"
    sp = split_from_files(idc_patches, train_file, val_file)
    listed_train = [ln.strip() for ln in train_file.read_text().splitlines() if ln.strip()]
    assert len(listed_train) == 84
    assert len(sp.train) == 82 and len(sp.val) == 29
    assert len(sp.info["missing"]["train"]) == 2 and sp.info["missing"]["val"] == []
    # Everyone else is test; nobody is in two parts; nobody is lost.
    assert len(sp.test) == 229 - 82 - 29
    sp.check_disjoint()
    assert set(sp.train) | set(sp.val) | set(sp.test) == set(idc_patches.patient_ids)
    assert set(sp.train) <= set(listed_train)


def test_files_without_val_carve_val_from_train(idc_patches, tmp_path, official_split_dir):
    sp = split_from_files(idc_patches, official_split_dir / "cases_train.txt", val=0.2, seed=0)
    assert sp.info["val_from_train"] == len(sp.val) == round(0.2 * 82)
    assert len(sp.train) == 82 - len(sp.val)
    assert sp.method == "files+stratified"


def test_id_in_two_lists_rejected(idc_patches, tmp_path):
    ids = idc_patches.patient_ids
    (tmp_path / "t.txt").write_text("\n".join(ids[:10]))
    (tmp_path / "v.txt").write_text("\n".join(ids[9:12]))
    with pytest.raises(DataError, match=ids[9]):
        split_from_files(idc_patches, tmp_path / "t.txt", tmp_path / "v.txt")


def test_lists_covering_everything_still_give_a_test_part(idc_patches, tmp_path):
    ids = idc_patches.patient_ids
    (tmp_path / "t.txt").write_text("# comment\n" + "\n".join(ids[:200]) + "\n\n")
    (tmp_path / "v.txt").write_text("\n".join(ids[200:]))
    sp = split_from_files(idc_patches, tmp_path / "t.txt", tmp_path / "v.txt", test=0.1)
    assert len(sp.test) == 20 and len(sp.train) == 180 and len(sp.val) == 29
    sp.check_disjoint()


def test_undersample_and_class_weights(idc_patches):
    y = idc_patches.labels
    idx = undersample(y, seed=0)
    assert np.all(np.diff(idx) > 0)
    kept = y[idx]
    assert (kept == 1).sum() == (kept == 0).sum() == 3102
    assert np.array_equal(np.flatnonzero(y == 1), idx[kept == 1])  # every IDC patch kept
    assert np.array_equal(idx, undersample(y, seed=0))
    assert not np.array_equal(idx, undersample(y, seed=1))
    w = class_weights(y)
    assert w[0] * 8955 == pytest.approx(w[1] * 3102)
    assert w[0] * 8955 + w[1] * 3102 == pytest.approx(len(y))
    with pytest.raises(ValueError):
        undersample(np.zeros(5, np.int8))
