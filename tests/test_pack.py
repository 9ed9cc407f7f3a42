"""`edgecnn data pack`: a split's train and val patches in one .npz for a GPU box (real patches)."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.data.layout import DataError


@pytest.fixture(scope="module")
def small_split(idc_data, tmp_path_factory):
    """6 train, 3 val and 3 test patients of the real data, as a split.json."""
    from edgecnn.data import load_patches
    from edgecnn.data.split import Split

    ps = load_patches(idc_data)
    ids = ps.patient_ids[:12]
    split = Split(ids[:6], ids[6:9], ids[9:12], method="test")
    path = tmp_path_factory.mktemp("pack") / "split.json"
    split.save(path, ps)
    return ps, split, path


def test_pack_holds_train_and_val_never_test(small_split, tmp_path):
    from edgecnn.data.pack import Pack, write_pack

    ps, split, _ = small_split
    teacher = np.linspace(0, 1, len(ps.select(split.train)), dtype=np.float32)
    pack = Pack(write_pack(tmp_path / "p.npz", ps, split, teacher, {"data": "x"}))
    tr, va = ps.select(split.train), ps.select(split.val)
    np.testing.assert_array_equal(pack.images("train"), tr.images)
    np.testing.assert_array_equal(pack.labels("val"), va.labels)
    np.testing.assert_array_equal(pack.teacher, teacher)
    assert set(pack.patients("train")) == set(split.train) and set(pack.patients("val")) == set(split.val)
    assert pack.split["test"] == split.test      # listed, so --init-from can refuse a leak ...
    assert not set(split.test) & (set(pack.patients("train")) | set(pack.patients("val")))  # ... never sent
    assert pack.summary()["train"] == {"patches": len(tr), "patients": 6}


def test_pack_errors_name_the_fix(small_split, tmp_path):
    from edgecnn.data.pack import Pack, write_pack

    ps, split, _ = small_split
    with pytest.raises(ValueError, match="teacher probabilities for"):
        write_pack(tmp_path / "p.npz", ps, split, np.zeros(3, np.float32))
    assert not (tmp_path / "p.npz").exists()
    from edgecnn.data.split import Split

    with pytest.raises(DataError, match="pass the --data the split was made from"):
        write_pack(tmp_path / "p.npz", ps, Split(["nobody"], split.val, split.test, method="test"))
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="edgecnn data pack"):
        Pack(tmp_path / "bad.npz")


def test_pack_cli_with_a_teacher(small_split, tiny_run, tmp_path):
    from typer.testing import CliRunner

    from edgecnn.cli import app
    from edgecnn.data.pack import Pack

    ps, split, split_path = small_split
    out = tmp_path / "p.npz"
    res = CliRunner().invoke(app, ["data", "pack", str(ps.report["source"]), "--split", str(split_path),
                                   "--teacher", str(tiny_run.path), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    pack = Pack(out)
    assert pack.teacher is not None and len(pack.teacher) == len(ps.select(split.train))
    assert 0.0 <= pack.teacher.min() and pack.teacher.max() <= 1.0 and pack.teacher.std() > 0
    assert pack.header["teachers"] == [tiny_run.path.name]
