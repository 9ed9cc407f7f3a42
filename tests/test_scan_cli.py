"""`edgecnn scan` and `edgecnn data mosaic` through typer's CliRunner, on a real mosaic."""

from __future__ import annotations

import json

import numpy as np
import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

from edgecnn.fsutil import read_json
from edgecnn.scan.cli import mosaic_command, scan

app = typer.Typer()
app.command("scan")(scan)
app.command("mosaic")(mosaic_command)
runner = CliRunner()


@pytest.fixture(scope="module")
def mosaic_png(tmp_path_factory, idc_data):
    out = tmp_path_factory.mktemp("mosaic")
    res = runner.invoke(app, ["mosaic", str(idc_data / "14082"), "--out", str(out / "m.png"),
                              "--labels-out", str(out / "labels.png"), "--overlay-out", str(out / "ov.png"),
                              "--json", str(out / "m.json")])
    assert res.exit_code == 0, res.output
    return out


def test_mosaic_command_writes_image_labels_and_overlay(mosaic_png):
    summary = read_json(mosaic_png / "m.json")
    assert summary["patches"] == 478 and summary["grid_aligned"]
    img = np.asarray(Image.open(mosaic_png / "m.png"))
    labels = np.asarray(Image.open(mosaic_png / "labels.png"))
    assert img.shape == (summary["height"], summary["width"], 3) and labels.shape == img.shape[:2]
    assert set(np.unique(labels)) <= {0, 128, 255}
    assert (labels == 255).sum() == summary["idc_patches"] * 2500
    assert Image.open(mosaic_png / "ov.png").size == (summary["width"], summary["height"])


def test_scan_cli_json(mosaic_png, scan_model, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, ["scan", str(mosaic_png / "m.png"), "--model", str(scan_model), "--out", str(out),
                              "--threads", "2", "--json", str(tmp_path / "scan.json")])
    assert res.exit_code == 0, res.output
    assert "IDC-positive share" in res.output
    payload = read_json(tmp_path / "scan.json")
    rec = payload["images"][0]
    assert rec["tissue_tiles"] == 478 and rec["ms_per_frame"] > 0
    grid = rec["grid"]
    assert len(grid) == rec["rows"] and len(grid[0]) == rec["cols"] and rec["tiles"] == rec["rows"] * rec["cols"]
    flat = [v for row in grid for v in row]
    assert sum(v is not None for v in flat) == 478 and all(v is None or 0 <= v <= 1 for v in flat)
    assert (out / "m.overlay.png").exists()

    # '-' puts the JSON alone on stdout; a bad image is reported and makes the exit code 1
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    res = runner.invoke(app, ["scan", str(mosaic_png / "m.png"), str(bad), "--model", str(scan_model),
                              "--out", str(out), "--json", "-"])
    assert res.exit_code == 1
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("{")][0]
    recs = json.loads(line)["images"]
    assert "error" in recs[1] and "bad.png" in recs[1]["error"]


def test_scan_cli_default_model_and_missing_release(mosaic_png, release_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECNN_RELEASE_DIR", str(release_dir))
    res = runner.invoke(app, ["scan", str(mosaic_png / "m.png"), "--out", str(tmp_path), "--json", "-"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["model"].endswith("int8-ptq.tflite")
    monkeypatch.setenv("EDGECNN_RELEASE_DIR", str(tmp_path / "nowhere"))
    res = runner.invoke(app, ["scan", str(mosaic_png / "m.png"), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "no release model" in res.output


def test_scan_cli_watch(mosaic_png, scan_model, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    Image.open(mosaic_png / "m.png").crop((0, 0, 400, 300)).save(drop / "a.png")
    (drop / "b.png").write_bytes(b"broken")
    res = runner.invoke(app, ["scan", "--watch", str(drop), "--model", str(scan_model), "--out", str(tmp_path / "o"),
                              "--policy", "all", "--settle", "0.05", "--max-frames", "2", "--timeout", "30",
                              "--json", str(tmp_path / "w.json")])
    assert res.exit_code == 0, res.output
    w = read_json(tmp_path / "w.json")
    assert w["watch"]["scanned"] == 1 and w["watch"]["failed"] == 1 and w["watch"]["stopped_by"] == "max_frames"
    assert (tmp_path / "o" / "a.overlay.png").exists()
