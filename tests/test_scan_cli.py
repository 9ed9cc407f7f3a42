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
    recs = json.loads(res.stdout)["images"]                 # stdout holds only the JSON document
    assert "error" in recs[1] and "bad.png" in recs[1]["error"]


def test_scan_cli_default_model_and_missing_release(mosaic_png, release_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGECNN_RELEASE_DIR", str(release_dir))
    res = runner.invoke(app, ["scan", str(mosaic_png / "m.png"), "--out", str(tmp_path), "--json", "-"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["model"].endswith("int8-ptq.tflite")
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
                              "--json", str(tmp_path / "w.jsonl")])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in (tmp_path / "w.jsonl").read_text().splitlines()]
    frames, summary = lines[:-1], lines[-1]["summary"]["sources"][0]
    assert sorted(f["name"] for f in frames) == ["a.png", "b.png"]
    assert [("error" in f) for f in sorted(frames, key=lambda f: f["name"])] == [False, True]
    assert (summary["scanned"], summary["failed"], summary["stopped_by"]) == (1, 1, "max_frames")
    assert summary["source"]["kind"] == "watch" and summary["policy"] == "all"
    assert (tmp_path / "o" / "a.overlay.png").exists()


def test_scan_cli_video(mosaic, make_video, scan_model, tmp_path):
    from tests.fixtures_scan import video_frames

    path, frames = make_video("cli.avi", n=6)
    res = runner.invoke(app, ["scan", str(path), "--model", str(scan_model), "--out", str(tmp_path / "ann.mp4"),
                              "--threads", "2", "--batch-size", "128", "--json", "-", "--quiet"])
    assert res.exit_code == 0, res.output
    lines = [json.loads(line) for line in res.stdout.splitlines()]      # stdout holds only the JSON lines
    assert [f["frame"] for f in lines[:-1]] == list(range(6))
    assert all(len(f["grid"]) == f["rows"] and f["tissue_tiles"] > 0 for f in lines[:-1])
    s = lines[-1]["summary"]
    assert s["scanner"]["threads"] == 2 and s["scanner"]["batch_size"] == 128
    live = s["sources"][0]
    assert live["rendered"] == 6 and live["policy"] == "all" and live["video"].endswith("ann.mp4")
    assert {"p50", "p99"} <= set(live["stages_ms"]["scan"]) and live["fps"] > 0
    written = video_frames(tmp_path / "ann.mp4")
    assert len(written) == 6 and written[0].shape == frames[0].shape


def test_scan_cli_bad_sources(mosaic_png, scan_model, tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    res = runner.invoke(app, ["scan", str(mosaic_png / "m.png"), "--show", "--model", str(scan_model), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "--show needs a display" in res.output
    res = runner.invoke(app, ["scan", "--camera", "57", "--model", str(scan_model), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "camera 57: cannot open it" in res.output
    fake = tmp_path / "x.mkv"
    fake.write_bytes(b"\x00" * 100)
    res = runner.invoke(app, ["scan", str(fake), "--model", str(scan_model), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "x.mkv" in res.output and "cannot open it as a video" in res.output
    res = runner.invoke(app, ["scan", "--model", str(scan_model)])
    assert res.exit_code == 2 and "--camera" in res.output
    res = runner.invoke(app, ["scan", "--camera", "0", "--watch", str(tmp_path), "--model", str(scan_model)])
    assert res.exit_code == 2 and "give one" in res.output


def test_scan_help_has_an_example():
    res = runner.invoke(app, ["scan", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "Example" in res.output and "--camera" in res.output and "--quiet" in res.output


def test_a_killed_video_write_leaves_the_old_video_and_the_rerun_no_temporary(make_video, scan_model, tmp_path):
    """SIGKILL while the annotated video is being written: the old video stays whole under its
    name (only a hidden temporary is half-written), and the next scan to that name removes what
    the killed one left (scripts/kill_trials.py --kinds video found one leftover per kill)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from edgecnn.fsutil import is_temp
    from tests.fixtures_scan import video_frames

    clip, _ = make_video("long.avi", n=150)
    out = tmp_path / "ann.mp4"
    out.write_bytes(b"the old annotated video")
    cmd = [sys.executable, "-m", "edgecnn.cli", "scan", str(clip), "--model", str(scan_model), "--out", str(out),
           "--threads", "1", "--policy", "all", "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and not any(map(is_temp, tmp_path.iterdir())):
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the scan ended before the kill"
    left = [p for p in tmp_path.iterdir() if is_temp(p)]
    assert len(left) == 1 and out.read_bytes() == b"the old annotated video"
    res = runner.invoke(app, ["scan", str(clip), "--model", str(scan_model), "--out", str(out), "--max-frames", "3",
                              "--quiet"])
    assert res.exit_code == 0, res.output
    assert sorted(os.listdir(tmp_path)) == ["ann.mp4"] and len(video_frames(out)) == 3
