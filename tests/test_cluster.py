"""`edgecnn scan --cluster` on a real Ray cluster started here (a head and a second worker node,
both on 127.0.0.1, stopped at the end): the same outputs as a local scan, a worker killed
mid-task changes nothing, and a rerun does no work."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the cluster tests need Ray: pip install 'edgecnn[cluster]'")
pytest.importorskip("openslide", reason="slides need the [slides] extra")
psutil = pytest.importorskip("psutil")

from edgecnn.scan.bigimage import write_pyramid  # noqa: E402
from edgecnn.scan.cluster import ClusterError, parse_cluster, plan_chunks  # noqa: E402

BIN = Path(sys.executable).parent
TIMING = {"seconds", "tiles_per_s", "grid_tiles_per_s", "outputs", "cluster", "fingerprint", "skipped"}
OUTPUTS = ("heat.png", "overlay.png", "geojson")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _edgecnn(*args, env=None, **kw):
    env = {**(env or os.environ), "EDGECNN_DEVICE_PROFILE": "/nonexistent/profile.json"}
    return subprocess.Popen([str(BIN / "edgecnn"), *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.fixture(scope="module")
def slides(tmp_path_factory, patient_mosaic):
    """Four tiled pyramid TIFFs from real mosaics; one is the mosaic 3×3, so its task runs long
    enough to be killed."""
    folder = tmp_path_factory.mktemp("archive")
    for p in ("14082", "8863", "12886"):
        write_pyramid(patient_mosaic(p).image, folder / f"{p}.tif", mpp=4.0)
    write_pyramid(np.tile(patient_mosaic("10253").image, (3, 3, 1)), folder / "10253x9.tif", mpp=4.0)
    return folder


@pytest.fixture(scope="module")
def local_scan(slides, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    p = _edgecnn("scan", slides, "--out", out, "--json", out / "r.json", "--threads", "1", "-q")
    assert p.wait(timeout=300) == 0, p.stderr.read()
    return out


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """`ray start --head` plus a second node joining it, 1 CPU each, on 127.0.0.1."""
    port = _free_port()
    tmp = Path(f"/tmp/edgecnn-ray-{os.getpid()}")
    ray_cli = [str(BIN / "ray"), "start", "--num-cpus", "1", "--disable-usage-stats"]
    # Ray >= 2.59 turns token authentication on for clusters on this machine: every node and the
    # driver share one token, as docs/cluster.md tells users to do.
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    try:
        subprocess.run(ray_cli + ["--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                                  "--include-dashboard", "false", "--temp-dir", str(tmp)],
                       check=True, capture_output=True, timeout=180, env=env)
        subprocess.run(ray_cli + ["--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1"],
                       check=True, capture_output=True, timeout=180, env=env)
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True, timeout=120)


def _records(path: Path) -> dict[str, dict]:
    doc = json.loads(path.read_text())
    return {Path(r["slide"]).name: {k: v for k, v in r.items() if k not in TIMING} for r in doc["slides"]}


def _same_outputs(a: Path, b: Path) -> None:
    stems = sorted(p.name[:-len(".geojson")] for p in a.glob("*.geojson"))
    assert len(stems) == 4
    for stem in stems:
        for suffix in OUTPUTS:
            assert (a / f"{stem}.{suffix}").read_bytes() == (b / f"{stem}.{suffix}").read_bytes(), f"{stem}.{suffix}"


def _kill_one_running_task(proc, timeout: float = 120.0) -> int:
    """SIGKILL a Ray worker while it executes a scan task (its process title is ray::scan_chunk)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and proc.poll() is None:
        for w in psutil.process_iter(["pid", "cmdline"]):
            if any("ray::scan_chunk" in c for c in (w.info["cmdline"] or [])):
                time.sleep(0.5)          # well inside the task: the long slide takes several seconds
                os.kill(w.info["pid"], signal.SIGKILL)
                return w.info["pid"]
        time.sleep(0.05)
    pytest.fail("no scan task was seen running on the cluster")


def test_cluster_scan_matches_local_and_survives_a_killed_worker(slides, local_scan, cluster, tmp_path):
    address, env = cluster
    out = tmp_path / "ray"
    proc = _edgecnn("scan", slides, "--out", out, "--json", out.with_suffix(".json"), "--cluster", address, "-q", env=env)
    killed = _kill_one_running_task(proc)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()
    assert killed not in {p.pid for p in psutil.process_iter()}
    assert _records(out.with_suffix(".json")) == _records(local_scan / "r.json")
    _same_outputs(local_scan, out)
    doc = json.loads(out.with_suffix(".json").read_text())
    # The 3 × 3 slide is as large as the three others together: it is split, the others are one task each.
    assert doc["cluster"]["workers"] == 2 and doc["cluster"]["chunks"] >= 5
    # The two nodes both worked.
    assert len({w for r in doc["slides"] for w in r["cluster"]["workers"]}) >= 2

    again = _edgecnn("scan", slides, "--out", out, "--json", tmp_path / "again.json", "--cluster", address, "-q",
                     env=env)
    assert again.wait(timeout=120) == 0, again.stderr.read()
    doc = json.loads((tmp_path / "again.json").read_text())
    assert doc["cluster"]["skipped"] == 4 and doc["cluster"]["chunks"] == 0
    assert all(r["skipped"] == "outputs complete" for r in doc["slides"])


def test_bad_slide_fails_alone_and_bad_address_is_named(slides, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "ok.tif").symlink_to(slides / "12886.tif")
    (folder / "broken.svs").write_bytes(b"II*\0" + b"\0" * 64)
    p = _edgecnn("scan", folder, "--out", tmp_path / "o", "--json", "-", "--cluster", "local:1", "-q")
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 1, stderr
    by = {Path(r["slide"]).name: r for r in json.loads(stdout)["slides"]}
    assert "broken.svs" in by["broken.svs"]["error"] and by["ok.tif"]["tissue_tiles"] > 0
    p = _edgecnn("scan", folder, "--out", tmp_path / "o", "--cluster", "nowhere", "-q")
    _, stderr = p.communicate(timeout=120)
    assert p.returncode == 2 and "--cluster 'nowhere'" in stderr and "Traceback" not in stderr


def test_chunks_cover_every_row_once():
    for rows, workers in (([100, 30], 4), ([5, 7, 9], 2), ([1], 8), ([17] * 5, 3)):
        chunks = plan_chunks(rows, workers, band_rows=8)
        for i, n in enumerate(rows):
            mine = sorted((c.r0, c.r1) for c in chunks if c.slide == i)
            assert mine[0][0] == 0 and mine[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(mine, mine[1:]))
            assert all(c.r0 % 8 == 0 for c in chunks)
        assert len(chunks) >= min(workers, sum(-(-n // 8) for n in rows)) or len(rows) >= workers


def test_cluster_addresses():
    assert parse_cluster("local:3")["num_cpus"] == 3
    assert parse_cluster("ray://10.0.0.5:10001") == {"address": "ray://10.0.0.5:10001"}
    assert parse_cluster("auto") == {"address": "auto"}
    for bad in ("local:0", "http://x:1", "", "ray://nohost"):
        with pytest.raises(ClusterError, match="--cluster"):
            parse_cluster(bad)
