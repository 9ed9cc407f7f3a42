"""load_patches on the real data: counts, border rule, cache, zip with the nested duplicate."""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgecnn.data import load_patches
from edgecnn.data import dataset as dataset_mod
from edgecnn.data.layout import list_patches


def _small_patients(root: Path, n: int = 3) -> list[str]:
    sizes = {p.name: sum(1 for _ in p.rglob("*.png")) for p in root.iterdir() if p.is_dir()}
    return sorted(sizes, key=lambda k: (sizes[k], k))[:n]


def _copy_patients(src: Path, dst: Path, ids: list[str]) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for pid in ids:
        shutil.copytree(src / pid, dst / pid)
    return dst


def test_real_counts(idc_patches):
    ps = idc_patches
    r = ps.report
    assert r["n_files"] == 12057
    assert len(ps) == r["n_patches"] == 12057
    assert r["n_patients"] == len(ps.patient_ids) == 229
    assert ps.class_counts() == r["class_counts"] == {0: 8955, 1: 3102}
    assert r["border"] == {"rule": "pad", "smaller": 99, "padded": 99, "dropped": 0}
    assert r["sizes"] == {"50x50": 11958, "smaller": 99}
    assert r["n_skipped"] == 0 and r["skipped"] == [] and r["duplicates_ignored"] == 0
    assert ps.images.shape == (12057, 50, 50, 3) and ps.images.dtype == np.uint8
    assert ps.labels.dtype == np.int8 and set(np.unique(ps.labels)) == {0, 1}
    assert ps.xs.dtype == np.int32 and ps.ys.dtype == np.int32
    assert ps.patient_ids == sorted(ps.patient_ids)


def test_rows_match_their_files(idc_patches, idc_data):
    ps = idc_patches
    rng = np.random.default_rng(0)
    for i in rng.choice(len(ps), 20, replace=False):
        f = str(ps.files[i])
        pid, label = f.split("/")[:2]
        assert pid == ps.patients[i] and int(label) == ps.labels[i]
        assert f"_x{ps.xs[i]}_y{ps.ys[i]}_class{label}.png" in f
        with Image.open(idc_data / f) as im:
            assert np.array_equal(np.asarray(im.convert("RGB")), ps.images[i])


def test_border_patches_padded_white(idc_patches, idc_data):
    ps = idc_patches
    found = 0
    for i, f in enumerate(ps.files):
        with Image.open(idc_data / str(f)) as im:
            w, h = im.size
            if (w, h) == (50, 50):
                continue
            rgb = np.asarray(im.convert("RGB"))
        assert np.array_equal(ps.images[i, :h, :w], rgb)
        assert (ps.images[i, h:, :] == 255).all() and (ps.images[i, :, w:] == 255).all()
        found += 1
    assert found == 99


def test_second_load_comes_from_cache_without_decoding(idc_patches, idc_data, monkeypatch):
    def no_decode(*a, **k):
        raise AssertionError("decoded a PNG on a cached load")

    monkeypatch.setattr(dataset_mod, "decode_patch", no_decode)
    # How fast is benchmarks/test_data_load.py's job: a timed assert here failed on busy machines.
    again = load_patches(idc_data)
    assert again.report["from_cache"] is True
    assert again.report["cache_key"] == idc_patches.report["cache_key"]
    assert isinstance(again.images, np.memmap)  # the full dataset must not need RAM
    assert np.array_equal(again.labels, idc_patches.labels)
    assert np.array_equal(again.images[::997], idc_patches.images[::997])


def test_cache_entry_is_complete_and_dataset_change_is_noticed(idc_data, tmp_path):
    ids = _small_patients(idc_data)
    root = _copy_patients(idc_data, tmp_path / "data", ids)
    first = load_patches(root)
    from edgecnn.paths import cache_dir

    entry = cache_dir() / "patches" / first.report["cache_key"]
    assert {p.name for p in entry.iterdir()} >= {"images.npy", "labels.npy", "report.json"}
    assert not list((cache_dir() / "patches").glob(".tmp-*"))
    assert load_patches(root).report["from_cache"]
    # Replace one patch: a new key, decoded afresh, showing the new pixels.
    victim = sorted(root.rglob("*.png"))[0]
    Image.new("RGB", (50, 50), (10, 20, 30)).save(victim)
    changed = load_patches(root)
    assert changed.report["cache_key"] != first.report["cache_key"]
    assert changed.report["from_cache"] is False
    row = list(changed.files).index(victim.relative_to(root).as_posix())
    assert (changed.images[row] == (10, 20, 30)).all()
    # Border rule and patch size are part of the key too.
    assert load_patches(root, border="drop").report["cache_key"] != first.report["cache_key"]


def test_drop_rule_through_cache(idc_data):
    ps = load_patches(idc_data, border="drop")
    assert len(ps) == 12057 - 99
    assert ps.report["border"] == {"rule": "drop", "smaller": 99, "padded": 0, "dropped": 99}
    assert ps.report["n_files"] == 12057
    again = load_patches(idc_data, border="drop")
    assert again.report["from_cache"] and again.images.shape == (12057 - 99, 50, 50, 3)
    assert np.array_equal(again.images[-5:], ps.images[-5:])


def _zip_folder(zf: zipfile.ZipFile, folder: Path, prefix: str) -> int:
    n = 0
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            zf.write(f, prefix + f.relative_to(folder).as_posix())
            n += 1
    return n


def test_kaggle_zip_with_nested_duplicate(idc_patches, idc_data, tmp_path):
    # Enough patients for several thread-pool chunks, so members are read from the zip concurrently.
    ids = idc_patches.patient_ids[:12]
    root = _copy_patients(idc_data, tmp_path / "src", ids)
    zpath = tmp_path / "archive.zip"
    with zipfile.ZipFile(zpath, "w", compression=zipfile.ZIP_STORED) as zf:
        n = _zip_folder(zf, root, "")
        assert _zip_folder(zf, root, "IDC_regular_ps50_idx5/") == n
    ps = load_patches(zpath)
    ref = idc_patches.select(ids)
    assert ps.report["format"] == "zip"
    assert ps.report["duplicates_ignored"] == n
    assert len(ps) == len(ref) == n == ps.report["n_files"]
    assert all(not f.startswith("IDC_regular") for f in ps.files)  # the shallow copy wins
    assert np.array_equal(ps.images, ref.images) and np.array_equal(ps.labels, ref.labels)
    assert list(ps.patients) == list(ref.patients)


def test_layout_one_level_down(idc_patches, idc_data, tmp_path):
    """The unzipped Kaggle folder: patients at the top and again under IDC_regular_ps50_idx5/."""
    ids = _small_patients(idc_data, 2)
    top = tmp_path / "archive"
    _copy_patients(idc_data, top / "IDC_regular_ps50_idx5", ids)
    only_nested = load_patches(top)
    assert only_nested.patient_ids == sorted(ids)
    assert only_nested.report["duplicates_ignored"] == 0
    _copy_patients(idc_data, top, ids)
    both = load_patches(top)
    assert len(both) == len(only_nested) == len(idc_patches.select(ids))
    assert both.report["duplicates_ignored"] == len(both)


def test_listing_matches_kaggle_names(idc_data):
    listing = list_patches(idc_data)
    assert len(listing.files) == 12057 and not listing.skipped
    f = listing.files[0]
    assert f.name == f"{f.patient}/{f.label}/{f.patient}_idx5_x{f.x}_y{f.y}_class{f.label}.png"


def test_no_cache_gives_same_arrays(idc_patches, idc_data, tmp_path):
    ids = _small_patients(idc_data)
    root = _copy_patients(idc_data, tmp_path / "d", ids)
    ps = load_patches(root, cache=False)
    assert not isinstance(ps.images, np.memmap)
    assert np.array_equal(ps.images, idc_patches.select(ids).images)


def test_bad_border_rule(idc_data):
    with pytest.raises(ValueError, match="border"):
        load_patches(idc_data, border="crop")


def test_select_keeps_order_and_rejects_unknown(idc_patches):
    ids = idc_patches.patient_ids[5:9]
    sub = idc_patches.select(list(reversed(ids)))
    assert sub.patient_ids == ids
    rows = idc_patches.indices_of(ids)
    assert np.all(np.diff(rows) > 0)
    assert np.array_equal(sub.files, idc_patches.files[rows])
    with pytest.raises(KeyError):
        idc_patches.select(["no-such-patient"])


def test_damaged_cache_entry_is_rebuilt(idc_data, tmp_path):
    root = _copy_patients(idc_data, tmp_path / "d", _small_patients(idc_data, 2))
    first = load_patches(root)
    from edgecnn.paths import cache_dir

    entry = cache_dir() / "patches" / first.report["cache_key"]
    (entry / "labels.npy").write_bytes(b"garbage")
    again = load_patches(root)
    assert again.report["from_cache"] is False
    assert np.array_equal(again.images, first.images)
    assert load_patches(root).report["from_cache"] is True


@pytest.mark.parametrize("n_old", [7, 10, 1000, 100000])
def test_shrink_npy_both_paths(tmp_path, n_old):
    from edgecnn.data.cache import _shrink_npy

    p = tmp_path / "a.npy"
    arr = np.lib.format.open_memmap(p, mode="w+", dtype=np.uint8, shape=(n_old, 2, 1, 1))
    arr[:] = (np.arange(n_old * 2) % 251).reshape(n_old, 2, 1, 1)
    expect = np.array(arr[: n_old - 3])
    del arr
    _shrink_npy(p, (n_old - 3, 2, 1, 1))
    got = np.load(p)
    assert got.shape == expect.shape and np.array_equal(got, expect)
    assert p.stat().st_size < 200 + expect.nbytes
