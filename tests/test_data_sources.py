"""Several data sources read as one (edgecnn.data.sources): the real idc + idc-more merge, a
patch in two sources kept once and reported, conflicting labels refused naming both files, and
the bad requests (same source twice, an empty source) as clear errors.

The small cases copy a few dozen real patch files into temporary folders, so they decode in
well under a second; only the full merge reads the shared folders (cached per session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edgecnn.data import DataError, load_patches


@pytest.fixture(scope="module")
def more_data(idc_data) -> Path:
    path = idc_data.parent / "idc-more"
    if not path.is_dir():
        pytest.skip(f"no {path}: the second real source (more patches of the same patients)")
    return path


def _copy(files: list[Path], root: Path) -> Path:
    """The files into ``root`` in the Kaggle layout (<patient>/<class>/<name>)."""
    for f in files:
        dest = root / f.parent.parent.name / f.parent.name / f.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dest)
    return root


def _sample(idc_data: Path, n: int = 24) -> list[Path]:
    """n real patches of two patients, both classes (sorted: the same files every run)."""
    files = []
    for pid in ("10253", "8863"):
        for cls in ("0", "1"):
            files += sorted((idc_data / pid / cls).glob("*.png"))[: n // 4]
    assert len(files) == n
    return files


def test_real_sources_merge_into_one(idc_data, more_data):
    both = load_patches([idc_data, more_data])
    r = both.report
    assert r["n_patches"] == len(both) == 41_376
    assert r["n_patients"] == len(set(both.patients.tolist())) == 229
    assert [s["n_patches"] for s in r["sources"]] == [12_057, 29_319]
    assert r["cross_source_duplicates"] == 0                  # the README: no file name in common
    assert r["class_counts"][0] + r["class_counts"][1] == 41_376
    assert set(both.select(["10253"]).files.tolist()) >= {
        str(idc_data / "10253" / "1" / "10253_idx5_x501_y351_class1.png")}
    # The same two folders through the one-string form (EDGECNN_DATA=a:b) give the same set.
    import os

    again = load_patches(os.pathsep.join([str(idc_data), str(more_data)]))
    assert again.report["cache_key"] == r["cache_key"] and np.array_equal(again.labels, both.labels)


def test_patch_in_two_sources_is_counted_once_and_reported(idc_data, tmp_path):
    files = _sample(idc_data)
    a = _copy(files, tmp_path / "a")
    b = _copy(files[:6], tmp_path / "b")                                   # 6 files also in a
    extra = sorted((idc_data / "14082" / "0").glob("*.png"))[:5]
    _copy(extra, b)
    merged = load_patches([a, b])
    assert len(merged) == len(files) + len(extra)
    assert merged.report["cross_source_duplicates"] == 6
    kept = {d["kept"] for d in merged.report["cross_source_duplicate_examples"]}
    ignored = {d["ignored"] for d in merged.report["cross_source_duplicate_examples"]}
    assert all(k.startswith(str(a)) for k in kept) and all(i.startswith(str(b)) for i in ignored)
    assert len(set(zip(merged.patients.tolist(), merged.xs.tolist(), merged.ys.tolist()))) == len(merged)


def test_sources_disagreeing_on_a_label_is_an_error_naming_both_files(idc_data, tmp_path):
    files = _sample(idc_data)
    a = _copy(files, tmp_path / "a")
    src = files[0]                                        # a class-0 patch of 10253
    pid, x_y = src.name.split("_idx5_")[0], src.name.split("_idx5_")[1].rsplit("_class", 1)[0]
    wrong = tmp_path / "b" / pid / "1" / f"{pid}_idx5_{x_y}_class1.png"
    wrong.parent.mkdir(parents=True)
    shutil.copy(src, wrong)                               # same patient/x/y, the other class
    with pytest.raises(DataError) as e:
        load_patches([a, tmp_path / "b"])
    msg = str(e.value)
    assert "disagree" in msg and str(a / pid / "0" / src.name) in msg and str(wrong) in msg


def test_the_same_source_twice_is_an_error(idc_data, tmp_path):
    a = _copy(_sample(idc_data, 8), tmp_path / "a")
    with pytest.raises(DataError, match="given twice"):
        load_patches([a, a])
    with pytest.raises(DataError, match="given twice"):
        load_patches([a, tmp_path / "x" / ".." / "a"])    # the same folder under another spelling


def test_an_empty_source_is_a_clear_error(idc_data, tmp_path):
    a = _copy(_sample(idc_data, 8), tmp_path / "a")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError) as e:
        load_patches([a, empty])
    assert str(empty) in str(e.value)
    with pytest.raises(DataError, match="no data source"):
        load_patches([])
