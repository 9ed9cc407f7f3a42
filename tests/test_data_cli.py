"""`edgecnn data ...` through typer's CliRunner."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from edgecnn.data.cli import app

runner = CliRunner()


def test_info_json_real(idc_data, idc_patches):
    res = runner.invoke(app, ["info", str(idc_data), "--json", "-"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["n_patches"] == 12057 and d["n_patients"] == 229
    assert d["class_counts"] == {"0": 8955, "1": 3102}
    assert d["sizes"] == {"50x50": 11958, "smaller": 99}
    assert d["from_cache"] is True and d["source_kind"] == "explicit"


def test_info_table_and_json_file(idc_data, idc_patches, tmp_path):
    res = runner.invoke(app, ["info", str(idc_data), "--json", str(tmp_path / "info.json")])
    assert res.exit_code == 0, res.output
    assert "12,057" in res.stdout and "229" in res.stdout and idc_patches.report["cache_key"] in res.stdout
    assert json.loads((tmp_path / "info.json").read_text())["n_files"] == 12057


def test_info_drop_rule(idc_data):
    res = runner.invoke(app, ["info", str(idc_data), "--border", "drop", "--json", "-"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_patches"] == 12057 - 99
    bad = runner.invoke(app, ["info", str(idc_data), "--border", "crop"])
    assert bad.exit_code == 2


def test_info_bad_folder_is_a_clean_error(tmp_path):
    res = runner.invoke(app, ["info", str(tmp_path)])
    assert res.exit_code == 2
    assert "expected" in res.output.lower() and "edgecnn data synth" in res.output
    assert "Traceback" not in res.output


def test_synth_then_info_lists_skipped(tmp_path):
    out = tmp_path / "syn"
    res = runner.invoke(app, ["synth", str(out), "--patients", "3", "--per-patient", "5", "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert len(list(out.rglob("*.png"))) == 15
    (out / "90000" / "0" / "90000_idx5_x9999_y1_class0.png").write_bytes(b"")
    res = runner.invoke(app, ["info", str(out)])
    assert res.exit_code == 0, res.output
    assert "skipped files" in res.output and "empty file" in res.output
    again = runner.invoke(app, ["synth", str(out)])
    assert again.exit_code == 2 and "not empty" in again.output


def test_split_official_and_random(idc_data, idc_patches, official_split_dir, tmp_path):
    res = runner.invoke(app, ["split", str(idc_data), "--out", str(tmp_path / "s.json"),
                              "--official", str(official_split_dir)])
    assert res.exit_code == 0, res.output
    d = json.loads((tmp_path / "s.json").read_text())
    assert len(d["train"]) == 82 and len(d["val"]) == 29 and len(d["test"]) == 118
    assert "8915" in res.output or "9024" in res.output  # the missing train ids are reported
    res = runner.invoke(app, ["split", str(idc_data), "--out", str(tmp_path / "r.json"), "--seed", "4",
                              "--json", "-"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.stdout)
    assert d["seed"] == 4 and d["method"] == "stratified"
    assert sum(d["counts"][k]["patches"] for k in ("train", "val", "test")) == 12057


def test_help_texts():
    for cmd in ([], ["info"], ["synth"], ["split"]):
        res = runner.invoke(app, [*cmd, "--help"])
        assert res.exit_code == 0 and "Usage" in res.output
