"""`edgecnn tune`: every runnable artifact timed on a real frame, the fastest written to a device
profile, and Scanner/scan taking it when no model is given."""

from __future__ import annotations

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from edgecnn.fsutil import read_json, write_json
from edgecnn.scan import Scanner
from edgecnn.scan.cli import tune_command
from edgecnn.scan.tune import candidates, load_profile, machine_key, save_profile, tune

app = typer.Typer()
app.command("tune")(tune_command)
app.command("other")(lambda: None)
runner = CliRunner()


@pytest.fixture(scope="module")
def frame(mosaic):
    return np.ascontiguousarray(mosaic.image[:500, :800])


@pytest.fixture(scope="module")
def profile(frame, release_dir):
    return tune(frame, release_dir, threads=[1, 2], batch_sizes=[64], rounds=2, runs=2)


def test_every_candidate_is_measured_and_the_fastest_chosen(profile, release_dir):
    rows = profile["rows"]
    expected = candidates(release_dir, [1, 2], [64])
    assert len(rows) == len(expected) >= 4                     # int8 TFLite and fp32 ONNX, 1 and 2 threads
    assert {(r["artifact"], r["runtime"], r["threads"]) for r in rows} == \
        {(c.artifact.name, c.runtime, c.threads) for c in expected}
    assert all(len(r["round_p50_ms"]) == 2 and r["ms_per_frame"] > 0 for r in rows)
    best = min((r for r in rows if r["eligible"]), key=lambda r: r["ms_per_frame"])
    assert profile["choice"] == {k: best[k] for k in ("artifact", "runtime", "threads", "batch_size", "ms_per_frame")}
    assert profile["machine"] == machine_key() and profile["frame"]["tissue_tiles"] > 0
    # the reference artifact agrees with itself; the fp32 ONNX may differ from it by a few labels only
    ref = [r for r in rows if r["artifact"] == profile["frame"]["reference"]]
    assert ref and all(r["label_diff"] == 0 for r in ref)


def test_scanner_uses_the_profile_only_when_given_nothing(profile, release_dir, tmp_path, monkeypatch):
    path = save_profile(profile, tmp_path / "device.json")
    monkeypatch.setenv("EDGECNN_RELEASE_DIR", str(release_dir))
    monkeypatch.setenv("EDGECNN_DEVICE_PROFILE", str(path))
    c = profile["choice"]
    s = Scanner()
    d = s.describe()
    assert d["profile"] == str(path) and d["model"].endswith(c["artifact"])
    assert (d["runtime"], d["threads"], d["batch_size"]) == (c["runtime"], c["threads"], c["batch_size"])
    assert Scanner(threads=1).describe()["threads"] == 1                   # explicit settings win
    assert Scanner(profile=None).describe()["profile"] is None
    other = dict(profile, machine=dict(profile["machine"], cpu="some other CPU"))
    write_json(path, other)                                                  # made elsewhere: ignored
    assert load_profile(path) is None and Scanner().describe()["profile"] is None
    path.write_text("{not json")
    assert load_profile(path) is None


def test_tune_command_writes_the_profile(frame, release_dir, tmp_path, monkeypatch):
    from PIL import Image

    Image.fromarray(frame).save(tmp_path / "f.png")
    monkeypatch.setenv("EDGECNN_RELEASE_DIR", str(release_dir))
    res = runner.invoke(app, ["tune", str(tmp_path / "f.png"), "--threads", "1", "--batch-sizes", "64",
                              "--runtimes", "litert", "--rounds", "1", "--runs", "2", "--out", str(tmp_path / "p.json"),
                              "--json", str(tmp_path / "t.json"), "--quiet"])
    assert res.exit_code == 0, res.output
    prof = read_json(tmp_path / "p.json")
    assert prof["choice"]["runtime"] == "litert" and read_json(tmp_path / "t.json") == prof
    res = runner.invoke(app, ["tune", str(tmp_path / "f.png"), "--models", str(tmp_path / "empty")])
    assert res.exit_code == 2 and "no artifact" in res.output
    res = runner.invoke(app, ["tune", str(tmp_path / "missing.png")])
    assert res.exit_code == 2 and "missing.png" in res.output


def test_max_drop_decides_whether_the_student_may_win(frame, tmp_path):
    """The committed release model and student side by side: the student (~1 point lower recorded
    test BAC, 1/9 of the multiply-adds) is eligible only when --max-drop allows that point."""
    import shutil

    from edgecnn.paths import project_root

    folder = tmp_path / "models"
    folder.mkdir()
    for f in ("release/basic_cnn-int8-qat.tflite", "student/mobile_student_100-int8-qat.tflite"):
        src = project_root() / "exported" / f
        shutil.copy(src, folder / src.name)
        shutil.copy(src.with_name(src.name + ".json"), folder / (src.name + ".json"))
    for max_drop, student_ok in ((0.02, True), (0.005, False)):
        prof = tune(frame, folder, threads=[2], batch_sizes=[64], runtimes=["litert"], rounds=1, runs=1,
                    max_drop=max_drop)
        by = {r["artifact"]: r for r in prof["rows"]}
        student = by["mobile_student_100-int8-qat.tflite"]
        assert student["eligible"] is student_ok and by["basic_cnn-int8-qat.tflite"]["eligible"]
        assert prof["bac_floor"] == pytest.approx(by["basic_cnn-int8-qat.tflite"]["recorded_bac"] - max_drop)
        best = min((r for r in prof["rows"] if r["eligible"]), key=lambda r: r["ms_per_frame"])
        assert prof["choice"]["artifact"] == best["artifact"]
