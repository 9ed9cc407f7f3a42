"""The synthetic stand-in and the default data resolution."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from edgecnn.data import DataError, load_patches, make_synthetic, resolve_data
from edgecnn.data import source as source_mod
from edgecnn.data.synth import is_synthetic


def test_synthetic_loads_in_kaggle_layout(synth_data):
    ps = load_patches(synth_data)
    r = ps.report
    assert len(ps) == 480 and r["n_patients"] == 12 and r["n_skipped"] == 0
    assert r["border"]["smaller"] == 3 and r["border"]["padded"] == 3
    assert r["n_ignored"] == 1  # README.txt
    c = ps.class_counts()
    assert 0.15 < c[1] / len(ps) < 0.45
    assert (synth_data / "README.txt").read_text().startswith("SYNTHETIC DATA")
    assert is_synthetic(synth_data)
    # Some patients are IDC-free, as in the real data.
    assert any(pos == 0 for _, pos in ps.patient_stats().values())


def test_synthetic_classes_are_learnable(synth_data):
    """IDC patches are darker: even a one-number threshold separates them well."""
    ps = load_patches(synth_data)
    full = ps.images.reshape(len(ps), -1).mean(1)
    y = ps.labels
    thr = (full[y == 0].mean() + full[y == 1].mean()) / 2
    acc = ((full < thr) == (y == 1)).mean()
    assert full[y == 1].mean() < full[y == 0].mean() - 20
    assert acc > 0.9


def test_synthetic_is_seeded(tmp_path):
    a = load_patches(make_synthetic(tmp_path / "a", patients=3, patches_per_patient=6, seed=5), cache=False)
    b = load_patches(make_synthetic(tmp_path / "b", patients=3, patches_per_patient=6, seed=5), cache=False)
    c = load_patches(make_synthetic(tmp_path / "c", patients=3, patches_per_patient=6, seed=6), cache=False)
    assert np.array_equal(a.images, b.images) and list(a.files) == list(b.files)
    assert not np.array_equal(a.images, c.images)


def test_synthetic_refuses_non_empty_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="not empty"):
        make_synthetic(tmp_path / "x")
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"
    assert not list(tmp_path.glob(".x.*"))  # no temp folder left behind


def test_resolve_explicit_and_env(tmp_path, monkeypatch, idc_data):
    assert resolve_data(idc_data).kind == "explicit"
    with pytest.raises(DataError, match="does not exist"):
        resolve_data(tmp_path / "missing")
    monkeypatch.setenv("EDGECNN_DATA", str(idc_data))
    src = resolve_data()
    assert src.kind == "env" and src.path == idc_data
    monkeypatch.setenv("EDGECNN_DATA", str(tmp_path / "missing"))
    with pytest.raises(DataError, match="EDGECNN_DATA"):
        resolve_data()


def test_resolve_falls_back_to_synthetic_loudly(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("EDGECNN_DATA", raising=False)
    monkeypatch.setenv("EDGECNN_CACHE", str(tmp_path / "cache"))
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "nokaggle"))
    src = resolve_data()
    assert src.kind == "synthetic" and src.synthetic
    assert src.path == tmp_path / "cache" / "synthetic" and is_synthetic(src.path)
    assert "SYNTHETIC" in capsys.readouterr().err
    assert resolve_data(quiet=True).path == src.path  # reused, not rebuilt
    err = capsys.readouterr().err                      # --quiet still says it, in one line
    assert "SYNTHETIC" in err and "synthetic stand-in at" in err and "say nothing about cancer" not in err
    with pytest.raises(DataError, match="EDGECNN_DATA"):
        resolve_data(allow_synthetic=False)


def test_kaggle_credentials(tmp_path, monkeypatch):
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path))
    assert not source_mod.kaggle_credentials()
    (tmp_path / "kaggle.json").write_text(json.dumps({"username": "u", "key": "k"}))
    assert source_mod.kaggle_credentials()
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("KAGGLE_USERNAME", "u")
    monkeypatch.setenv("KAGGLE_KEY", "k")
    assert source_mod.kaggle_credentials()


def test_kaggle_download_without_kagglehub_falls_back(monkeypatch):
    # A None entry in sys.modules makes `import kagglehub` raise ImportError, as on a device install.
    monkeypatch.setitem(sys.modules, "kagglehub", None)
    path, reason = source_mod._kaggle_download()
    assert path is None and "pip install 'edgecnn[kaggle]'" in reason


def test_kaggle_download_without_credentials_falls_back(monkeypatch, tmp_path):
    pytest.importorskip("kagglehub")
    for var in ("KAGGLE_USERNAME", "KAGGLE_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "none"))
    path, reason = source_mod._kaggle_download()
    assert path is None and "no Kaggle credentials" in reason
