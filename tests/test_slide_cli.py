"""`edgecnn scan` on slides, a folder of slides and an image above --max-pixels, as a user runs it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import typer
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("openslide")

from edgecnn.scan.bigimage import write_pyramid  # noqa: E402
from edgecnn.scan.cli import scan  # noqa: E402
from edgecnn.scan.image import DEFAULT_MAX_PIXELS, set_max_pixels  # noqa: E402

PATIENT = "14082"
app = typer.Typer()
app.command("scan")(scan)
app.command("noop")(lambda: None)


@pytest.fixture(autouse=True)
def _cap_restored(monkeypatch):
    monkeypatch.setenv("EDGECNN_DEVICE_PROFILE", "/nonexistent/profile.json")
    yield
    set_max_pixels(DEFAULT_MAX_PIXELS)


class _Res:
    def __init__(self, r):
        self.returncode, self.stdout, self.stderr = r.exit_code, r.stdout, r.output
        assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)


def _scan(*args):
    return _Res(CliRunner().invoke(app, ["scan", *map(str, args), "--threads", "1"]))


def test_folder_of_slides(tmp_path, patient_mosaic):
    pixels = patient_mosaic(PATIENT).image
    folder = tmp_path / "slides"
    write_pyramid(pixels, folder / "a.tif", mpp=4.0)
    write_pyramid(pixels, folder / "nompp.tif")
    (folder / "broken.svs").write_bytes(b"II*\0" + b"\0" * 64)
    png = tmp_path / "field.png"
    Image.fromarray(pixels).save(png)
    out = tmp_path / "out"
    p = _scan(folder, png, "--out", out, "--json", tmp_path / "r.json", "--max-pixels", pixels.size // 3 - 1)
    assert p.returncode == 1, p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    doc = json.loads((tmp_path / "r.json").read_text())
    by = {os.path.basename(r["slide"]): r for r in doc["slides"]}
    assert set(by) == {"a.tif", "nompp.tif", "broken.svs"}
    assert "--mpp" in by["nompp.tif"]["error"] and "broken.svs" in by["broken.svs"]["error"]
    a = by["a.tif"]
    assert a["tissue_tiles"] > 100 and 0 <= a["idc_share"] <= 1
    assert all(os.path.isfile(f) for f in a["outputs"].values())
    (img,) = doc["images"]
    assert "above the cap" in img["error"] and "--max-pixels" in img["error"]


def test_mpp_override_and_level_error(tmp_path, patient_mosaic):
    pixels = patient_mosaic(PATIENT).image
    slide = write_pyramid(pixels, tmp_path / "s.tif", levels=2)
    p = _scan(slide, "--mpp", "4", "--level", "3", "--out", tmp_path / "o", "--json", "-", "-q")
    assert p.returncode == 1 and "no level 3" in p.stdout
    p = _scan(slide, "--mpp", "2", "--out", tmp_path / "o", "--json", "-", "-q")
    assert p.returncode == 0, p.stderr
    (s,) = json.loads(p.stdout)["slides"]
    assert s["reader"]["level"] == 1 and s["cols"] == pixels.shape[1] // 2 // 50


def test_sigkilled_scan_resumes(tmp_path, patient_mosaic):
    """A real kill (SIGKILL, no cleanup) mid-slide, then --resume: the same result as one clean run."""
    import signal
    import subprocess
    import sys
    import time

    import numpy as np

    pixels = np.tile(patient_mosaic(PATIENT).image, (3, 2, 1))     # 5600×7050: 18 bands
    slide = write_pyramid(pixels, tmp_path / "long.tif", mpp=4.0)
    out = tmp_path / "o"
    ck = out / "long.checkpoint.npz"
    cmd = [str(Path(sys.executable).with_name("edgecnn")), "scan", str(slide), "--out", str(out), "-t", "1", "-q",
           "--checkpoint-every", "0", "--json", str(tmp_path / "killed.json")]
    env = dict(os.environ, EDGECNN_DEVICE_PROFILE="/nonexistent/profile.json")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not ck.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and ck.exists(), "the scan ended before it could be killed"
    assert not (tmp_path / "killed.json").exists()
    p = _scan(slide, "--out", out, "--resume", "--json", "-", "-q")
    assert p.returncode == 0, p.stdout
    (resumed,) = json.loads(p.stdout)["slides"]
    assert resumed["resumed_from_y"] > 0 and not ck.exists()
    p = _scan(slide, "--out", tmp_path / "clean", "--json", "-", "-q")
    (clean,) = json.loads(p.stdout)["slides"]
    for key in ("tiles", "tissue_tiles", "positive_tiles", "idc_share", "tissue_area_mm2", "idc_area_mm2"):
        assert resumed[key] == clean[key], key


def test_dicom_slides_go_to_openslide(tmp_path):
    """A .dcm file, a folder of DICOM instances (no suffix, DICM magic) and an archive folder of
    such series are whole slides for OpenSlide, not images for Pillow; unreadable ones say so."""
    single = tmp_path / "one.dcm"
    single.write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)
    series = tmp_path / "archive" / "slide-a"
    series.mkdir(parents=True)
    for i in range(3):
        (series / f"1.2.840.{i}").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 64)
    for args in ((single,), (series,), (tmp_path / "archive",)):
        p = _scan(*args, "--out", tmp_path / "o", "--json", "-", "-q")
        assert p.returncode == 1 and "Traceback" not in p.stdout + p.stderr
        (rec,) = json.loads(p.stdout)["slides"]
        assert "OpenSlide" in rec["error"] and "DICOM" in rec["error"], rec
        assert os.path.basename(rec["slide"]) == ("one.dcm" if args[0] == single else "slide-a")
