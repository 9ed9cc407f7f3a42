"""Throughput of `edgecnn scan --cluster` against a local scan, on slides made from real mosaics.

    EDGECNN_DATA=../shared/data/idc python scripts/cluster_bench.py [--out /tmp/cluster-bench]

Four tiled pyramid TIFFs (three shared patients' mosaics and one mosaic 3 × 3) are scanned:
locally with 1 thread, then on `--cluster local:1` and `local:2` (one thread per task). Prints
wall seconds, Ray start-up seconds, tissue tiles/s and the cluster's overhead per slide (its wall
time without start-up, minus the local 1-thread scan's, per slide, at one worker).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edgecnn.data.mosaic import build_mosaic
from edgecnn.scan.bigimage import write_pyramid

PATIENTS = ("14082", "8863", "12886")
BIG = "10253"


def make_slides(data: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for p in PATIENTS:
        if not (folder / f"{p}.tif").exists():
            write_pyramid(build_mosaic(data / p).image, folder / f"{p}.tif", mpp=4.0)
    if not (folder / f"{BIG}x9.tif").exists():
        write_pyramid(np.tile(build_mosaic(data / BIG).image, (3, 3, 1)), folder / f"{BIG}x9.tif", mpp=4.0)
    return folder


def run(slides: Path, out: Path, *extra: str) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    cmd = [str(Path(sys.executable).parent / "edgecnn"), "scan", str(slides), "--out", str(out), "--json",
           str(out) + ".json", "-q", *extra]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env={**os.environ, "EDGECNN_DEVICE_PROFILE": "/nonexistent"})
    doc = json.loads(Path(str(out) + ".json").read_text())
    doc["wall"] = time.perf_counter() - t0
    return doc


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("/tmp/cluster-bench"))
    args = ap.parse_args()
    data = Path(os.environ.get("EDGECNN_DATA", "../shared/data/idc").split(":")[0])
    slides = make_slides(data, args.out / "slides")
    rows = [("local, 1 thread", run(slides, args.out / "local1", "--threads", "1"))]
    for n in (1, 2):
        rows.append((f"--cluster local:{n}", run(slides, args.out / f"ray{n}", "--cluster", f"local:{n}")))
    tiles = sum(r["tissue_tiles"] for r in rows[0][1]["slides"])
    print(f"{cpu_name()}, {os.cpu_count()} CPUs; {len(rows[0][1]['slides'])} slides, "
          f"{tiles:,} tissue tiles")
    print(f"{'run':22} {'wall s':>7} {'start-up s':>10} {'scan s':>7} {'tissue tiles/s':>15}")
    for name, doc in rows:
        c = doc.get("cluster") or {}
        start = c.get("startup_seconds", 0.0)
        scan_s = doc["wall"] - start
        print(f"{name:22} {doc['wall']:7.1f} {start:10.1f} {scan_s:7.1f} {tiles / scan_s:15,.0f}")
    local, one = rows[0][1]["wall"], rows[1][1]
    per_slide = (one["wall"] - one["cluster"]["startup_seconds"] - local) / len(one["slides"])
    print(f"cluster overhead per slide at one worker (without start-up): {per_slide:.2f} s")


if __name__ == "__main__":
    main()
