"""Kill trials: SIGKILL a real edgecnn command at a random moment, run it again the way a user
would (with --resume where it has one), and check that nothing was lost or half-written.

    EDGECNN_DATA=../shared/data/idc python scripts/kill_trials.py --trials 20 [--kinds slide,cache,export,train]

Kinds (each against a reference run of the same command, uninterrupted):
- slide:  `scan SLIDE --checkpoint-every 0`, then `--resume`: heat map, GeoJSON and tile counts
          byte-identical to the reference;
- cache:  `data info DIR` with an empty patch cache, then again: the same counts, and a third
          run decodes nothing (the cache left behind is whole);
- export: `export RUN --format tflite --precision int8-ptq`, then again with --force: the output
          folder never holds a file without its manifest or a temporary, and the artifact verifies;
- train:  `train --epochs 3` (tiny), then `--resume` (or a fresh start if killed before the first
          checkpoint): the run finishes, its history has each epoch once.

Prints one row per kind (trials, kills that landed mid-run, recovered, mismatches) and writes
``--json``. Exit 1 if any trial lost or corrupted something.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

EDGECNN = [str(Path(sys.executable).with_name("edgecnn"))]
ENV = {**os.environ, "EDGECNN_DEVICE_PROFILE": "/nonexistent/profile.json"}
VOLATILE = {"decode_seconds", "from_cache"}   # data info fields that say how, not what


def run(args: list[str], env=None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(EDGECNN + args, env=env or ENV, capture_output=True, text=True, timeout=timeout)


def kill_after(args: list[str], delay: float, env=None) -> bool:
    """Start the command, SIGKILL its process group after ``delay`` s; True if it was still running."""
    p = subprocess.Popen(EDGECNN + args, env=env or ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    try:
        p.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        return True


def timed(args: list[str], env=None) -> float:
    t0 = time.perf_counter()
    r = run(args, env)
    if r.returncode != 0:
        raise SystemExit(f"reference run failed: {' '.join(args)}\n{r.stderr[-2000:]}")
    return time.perf_counter() - t0


def files_of(folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    return {n: (folder / n).read_bytes() for n in names if (folder / n).exists()}


# --- the kinds ------------------------------------------------------------------------------------

def slide_kind(work: Path, data: Path) -> Callable[[int, random.Random], tuple[bool, str | None]]:
    import numpy as np

    from edgecnn.data.mosaic import build_mosaic
    from edgecnn.scan.bigimage import write_pyramid

    slide = work / "slide.tif"
    if not slide.exists():
        write_pyramid(np.tile(build_mosaic(data / "10253").image, (3, 3, 1)), slide, mpp=4.0)
    args = [str(slide), "--threads", "1", "--checkpoint-every", "0", "-q"]
    ref_out = work / "slide-ref"
    t_ref = timed(["scan", *args, "--out", str(ref_out), "--json", str(ref_out) + ".json"])
    names = ("slide.heat.png", "slide.geojson")
    ref = files_of(ref_out, names)
    ref_counts = {k: json.loads(Path(str(ref_out) + ".json").read_text())["slides"][0][k]
                  for k in ("tiles", "tissue_tiles", "positive_tiles")}

    def trial(i: int, rng: random.Random) -> tuple[bool, str | None]:
        out = work / f"slide-{i}"
        shutil.rmtree(out, ignore_errors=True)
        landed = kill_after(["scan", *args, "--out", str(out)], rng.uniform(0.15, 0.9) * t_ref)
        r = run(["scan", *args, "--out", str(out), "--resume", "--json", str(out) + ".json"])
        if r.returncode != 0:
            return landed, f"resume failed: {r.stderr[-300:]}"
        counts = {k: json.loads(Path(str(out) + ".json").read_text())["slides"][0][k] for k in ref_counts}
        if counts != ref_counts or files_of(out, names) != ref:
            return landed, f"outputs differ from the reference (counts {counts})"
        return landed, None
    return trial


def cache_kind(work: Path, data: Path) -> Callable[[int, random.Random], tuple[bool, str | None]]:
    ref_env = {**ENV, "EDGECNN_CACHE": str(work / "cache-ref")}
    t_ref = timed(["data", "info", str(data), "--json", str(work / "cache-ref.json"), "-q"], ref_env)
    ref = json.loads((work / "cache-ref.json").read_text())

    def trial(i: int, rng: random.Random) -> tuple[bool, str | None]:
        cache = work / f"cache-{i}"
        shutil.rmtree(cache, ignore_errors=True)
        env = {**ENV, "EDGECNN_CACHE": str(cache)}
        landed = kill_after(["data", "info", str(data), "-q"], rng.uniform(0.15, 0.9) * t_ref, env)
        for attempt in ("after the kill", "from the cache"):
            r = run(["data", "info", str(data), "--json", str(cache) + ".json", "-q"], env)
            if r.returncode != 0:
                return landed, f"data info {attempt} failed: {r.stderr[-300:]}"
            got = json.loads(Path(str(cache) + ".json").read_text())
            if {k: v for k, v in got.items() if k not in VOLATILE} != {k: v for k, v in ref.items() if k not in VOLATILE}:
                return landed, f"counts {attempt} differ from the reference"
            if attempt == "from the cache" and not got["from_cache"]:
                return landed, "the cache left after the kill was not used"
        shutil.rmtree(cache, ignore_errors=True)
        return landed, None
    return trial


def _tiny_run(work: Path, data: Path, name: str, epochs: int) -> list[str]:
    return ["train", "--model", "basic_cnn", "--data", str(data), "--out", str(work / name), "--epochs", str(epochs),
            "--steps-per-epoch", "4", "--max-patients", "10", "-q"]


def export_kind(work: Path, data: Path) -> Callable[[int, random.Random], tuple[bool, str | None]]:
    from edgecnn.manifest import read_manifest, verify_artifact

    run_dir = work / "export-run"
    if not (run_dir / "model.keras").exists():
        timed(_tiny_run(work, data, "export-run", 1))
    args = ["export", str(run_dir), "--format", "tflite", "--precision", "int8-ptq", "--limit", "100", "-q"]
    t_ref = timed([*args, "--out", str(work / "export-ref"), "--force"])

    def trial(i: int, rng: random.Random) -> tuple[bool, str | None]:
        out = work / f"export-{i}"
        shutil.rmtree(out, ignore_errors=True)
        landed = kill_after([*args, "--out", str(out)], rng.uniform(0.15, 0.9) * t_ref)
        left = sorted(p.name for p in out.iterdir()) if out.exists() else []
        arts = [n for n in left if n.endswith(".tflite")]
        if any(n.startswith(".") or not (out / (n + ".json")).exists() for n in left if not n.endswith(".json")):
            return landed, f"half-written output after the kill: {left}"
        for n in arts:
            verify_artifact(out / n, read_manifest(out / n))
        r = run([*args, "--out", str(out), "--force"])
        if r.returncode != 0:
            return landed, f"export after the kill failed: {r.stderr[-300:]}"
        if stray := [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.export-")]:
            return landed, f"staging folders left beside the output: {stray}"
        return landed, None
    return trial


def train_kind(work: Path, data: Path) -> Callable[[int, random.Random], tuple[bool, str | None]]:
    t_ref = timed(_tiny_run(work, data, "train-ref", 3))

    def trial(i: int, rng: random.Random) -> tuple[bool, str | None]:
        name = f"train-{i}"
        shutil.rmtree(work / name, ignore_errors=True)
        args = _tiny_run(work, data, name, 3)
        landed = kill_after(args, rng.uniform(0.15, 0.9) * t_ref)
        resumable = (work / name / "ckpt" / "state.json").exists()
        r = run(["train", "--out", str(work / name), "--resume", "-q"] if resumable else args)
        if r.returncode != 0 and "already holds a run" in r.stderr:
            return landed, "killed before the first checkpoint, the folder cannot be restarted or resumed"
        if r.returncode != 0:
            return landed, f"{'resume' if resumable else 'restart'} failed: {r.stderr[-300:]}"
        epochs = [h["epoch"] for h in json.loads((work / name / "history.json").read_text())]
        if epochs != sorted(set(epochs)) or not (work / name / "metrics.json").exists():
            return landed, f"history epochs {epochs}"
        shutil.rmtree(work / name, ignore_errors=True)
        return landed, None
    return trial


KINDS = {"slide": slide_kind, "cache": cache_kind, "export": export_kind, "train": train_kind}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgecnn-kill-trials"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    data = Path(os.environ.get("EDGECNN_DATA", "../shared/data/idc").split(":")[0])
    a.work.mkdir(parents=True, exist_ok=True)
    rng, report = random.Random(a.seed), {}
    for kind in a.kinds.split(","):
        trial = KINDS[kind](a.work, data)
        rows = [trial(i, rng) for i in range(a.trials)]
        report[kind] = {"trials": a.trials, "killed_mid_run": sum(landed for landed, _ in rows),
                        "failures": [err for _, err in rows if err]}
        r = report[kind]
        print(f"{kind:7} trials {r['trials']:3}  killed mid-run {r['killed_mid_run']:3}  "
              f"recovered {r['trials'] - len(r['failures']):3}  failures {len(r['failures'])}", flush=True)
        for err in r["failures"]:
            print(f"        {err}")
    if a.json:
        a.json.write_text(json.dumps(report, indent=2))
    return 1 if any(r["failures"] for r in report.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
