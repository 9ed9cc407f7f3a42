"""Kill trials: SIGKILL a real edgecnn command at a random moment, run it again the way a user
would (with --resume where it has one), and check that nothing was lost or half-written.

    EDGECNN_DATA=../shared/data/idc python scripts/kill_trials.py --trials 20 [--kinds slide,cache,export,...]

Kinds (each against a reference run of the same command, uninterrupted):
- slide:    `scan SLIDE --checkpoint-every 0`, then `--resume`: heat map, GeoJSON and tile counts
            byte-identical to the reference;
- cache:    `data info DIR` with an empty patch cache, then again: the same counts, and a third
            run decodes nothing (the cache left behind is whole);
- export:   `export RUN --format tflite --precision int8-ptq`, then again with --force: the output
            folder never holds a file without its manifest or a temporary, and the artifact verifies;
- train:    `train --epochs 3` (tiny), then `--resume` (the same command if there is nothing to
            resume): every file left by the kill reads back whole; the run finishes with each epoch
            once, and history, metrics, model.json, split and the weights of model.keras and
            ckpt/last.keras equal the uninterrupted run's (training is seeded per epoch);
- quantize: `quantize RUN --epochs 3` (tiny), then `--resume`: export never takes an unfinished
            qat/model.keras; the QAT weights, metrics, model.json and checkpoint state equal the
            uninterrupted run's; no temporary is left;
- tune:     `tune FRAME --out PROFILE` (odd trials over an existing profile): after the kill the
            profile is absent, the old one byte for byte, or a whole valid one; the rerun writes a
            valid profile measuring the same candidates as the reference; no temporary is left;
- video:    `scan CLIP --out CLIP.overlay.mp4 --json` (odd trials over an existing video): after
            the kill the video is absent or the old one; the rerun's decoded frames and JSON lines
            (less timings) equal the reference's; no temporary is left.

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

# `python -m edgecnn.cli` with this interpreter: the edgecnn on its path (PYTHONPATH wins over an
# editable install elsewhere), where a console script beside it would import whichever it was made for.
EDGECNN = [sys.executable, "-m", "edgecnn.cli"]
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


# --- what a killed run may leave ------------------------------------------------------------------

# How long, not what (differs between any two runs), and where the output went.
TIMING = {"seconds", "train_seconds", "capture_ms", "scan_ms", "ms_per_frame", "timing_ms", "elapsed_s", "fps",
          "bound_fps", "fps_vs_bound", "slowest_stage", "stages_ms", "video"}


def strip(obj, keys=TIMING):
    """``obj`` without the ``keys`` (at any depth)."""
    if isinstance(obj, dict):
        return {k: strip(v, keys) for k, v in obj.items() if k not in keys}
    if isinstance(obj, list):
        return [strip(v, keys) for v in obj]
    return obj


def temporaries(folder: Path) -> list[str]:
    """What an unfinished write left (fsutil's dot names), anywhere under ``folder``."""
    from edgecnn.fsutil import is_temp

    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if is_temp(p)) if folder.exists() else []


def clean_up(folder: Path) -> str | None:
    """A trial's last check: no temporary left under ``folder`` (then removed), else what was left."""
    if left := temporaries(folder):
        return f"temporaries left: {left}"
    shutil.rmtree(folder, ignore_errors=True)
    return None


def broken_files(folder: Path) -> list[str]:
    """Files under ``folder`` with a finished name that do not read back whole: JSON that does not
    parse, a .keras / .h5 / .npz that is neither a whole zip nor a whole HDF5 file, an mp4 OpenCV
    cannot open."""
    import zipfile

    from edgecnn.fsutil import is_temp

    bad = []
    for p in sorted(folder.rglob("*")) if folder.exists() else []:
        if not p.is_file() or any(is_temp(q) for q in p.relative_to(folder).parents if q.name) or is_temp(p):
            continue
        try:
            if p.suffix == ".json":
                json.loads(p.read_text())
            elif p.suffix in (".keras", ".h5", ".npz"):
                if zipfile.is_zipfile(p):
                    with zipfile.ZipFile(p) as z:
                        if z.testzip() is not None:
                            raise ValueError("bad zip member")
                else:
                    _h5_digest(p)
            elif p.suffix == ".mp4":
                if not _frames(p):
                    raise ValueError("no frames")
        except Exception as e:  # noqa: BLE001 - any failure to read back is the finding
            bad.append(f"{p.relative_to(folder)} ({type(e).__name__})")
    return bad


def _h5_digest(source) -> str:
    """sha256 over every dataset of an HDF5 file (names and values, not the file's bytes)."""
    import hashlib

    import h5py

    h = hashlib.sha256()
    with h5py.File(source, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                h.update(name.encode())
                h.update(obj[()].tobytes() if hasattr(obj[()], "tobytes") else repr(obj[()]).encode())
        f.visititems(visit)
    return h.hexdigest()


def weights_digest(path: Path) -> str | None:
    """The weights of a saved Keras model (zip .keras or HDF5), without its save date."""
    import io
    import zipfile

    if not path.exists():
        return None
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return _h5_digest(io.BytesIO(z.read("model.weights.h5")))
    return _h5_digest(path)


def _frames(path: Path):
    import cv2

    cap, frames = cv2.VideoCapture(str(path)), []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


def _json_or_none(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


# --- training and QAT -----------------------------------------------------------------------------

TRAIN_EPOCHS = 3


def _tiny_run(work: Path, data: Path, name: str, epochs: int) -> list[str]:
    return ["train", "--model", "basic_cnn", "--data", str(data), "--out", str(work / name), "--epochs", str(epochs),
            "--steps-per-epoch", "4", "--max-patients", "10", "-q"]


def run_fingerprint(run: Path) -> dict:
    """What a finished run folder holds, less timings: compared with an uninterrupted run's."""
    state = _json_or_none(run / "ckpt" / "state.json")
    return {"history": strip(_json_or_none(run / "history.json")), "metrics": strip(_json_or_none(run / "metrics.json")),
            "model.json": _json_or_none(run / "model.json"), "split": _json_or_none(run / "split.json"),
            "config": strip(_json_or_none(run / "config.json"), {"out"}), "state": strip(state),
            "model weights": weights_digest(run / "model.keras"),
            "last-epoch weights": weights_digest(run / "ckpt" / "last.keras"),
            "plots": sorted(p.name for p in (run / "plots").glob("*.png")) if (run / "plots").exists() else []}


def train_kind(work: Path, data: Path) -> Callable[[int, random.Random], tuple]:
    shutil.rmtree(work / "train-ref", ignore_errors=True)
    t_ref = timed(_tiny_run(work, data, "train-ref", TRAIN_EPOCHS))
    ref = run_fingerprint(work / "train-ref")

    def trial(i: int, rng: random.Random) -> tuple:
        out = work / f"train-{i}"
        shutil.rmtree(out, ignore_errors=True)
        args = _tiny_run(work, data, out.name, TRAIN_EPOCHS)
        landed = kill_after(args, rng.uniform(0.15, 0.9) * t_ref)
        state = _json_or_none(out / "ckpt" / "state.json")
        info = {"checkpointed_epoch": state["epoch"] if state else None}
        if bad := broken_files(out):
            return landed, f"half-written files after the kill: {bad}", info
        # As a user would: --resume; if there is nothing to resume, the same command again.
        r = run(["train", "--out", str(out), "--resume", "-q"])
        if r.returncode != 0 and "nothing to resume" in r.stderr:
            info["restarted"] = True
            r = run(args)
        if r.returncode != 0:
            return landed, f"rerun failed: {r.stderr.strip()[-300:]}", info
        got = run_fingerprint(out)
        epochs = [h["epoch"] for h in got["history"]]
        if epochs != list(range(1, TRAIN_EPOCHS + 1)):
            return landed, f"history epochs {epochs}", info
        if diff := [k for k in ref if got[k] != ref[k]]:
            return landed, f"differs from the uninterrupted run: {diff}", info
        return landed, clean_up(out), info
    return trial


QAT_ARGS = ["--epochs", "3", "--limit", "300", "--batch-size", "32", "-q"]


def qat_fingerprint(run: Path) -> dict:
    q = run / "qat"
    return {"metrics": strip(_json_or_none(q / "metrics.json")), "model.json": strip(_json_or_none(q / "model.json"),
                                                                                     TIMING | {"model_sha256"}),
            "state": _json_or_none(q / "ckpt" / "state.json"), "qat weights": weights_digest(q / "model.keras"),
            "files": sorted(p.name for p in q.iterdir()) if q.exists() else []}


def qat_ready(run: Path) -> bool:
    """Whether `export --precision int8` would take ``run``'s qat/model.keras as a finished QAT model."""
    from edgecnn.train.run import RunFolder

    return RunFolder(run).qat_ready()


def quantize_kind(work: Path, data: Path) -> Callable[[int, random.Random], tuple]:
    base = work / "quantize-run"
    if not (base / "metrics.json").exists():
        shutil.rmtree(base, ignore_errors=True)
        timed(_tiny_run(work, data, base.name, 2))
    ref_dir = work / "quantize-ref"
    shutil.rmtree(ref_dir, ignore_errors=True)
    shutil.copytree(base, ref_dir)
    t_ref = timed(["quantize", str(ref_dir), *QAT_ARGS])
    ref = qat_fingerprint(ref_dir)

    def trial(i: int, rng: random.Random) -> tuple:
        out = work / f"quantize-{i}"
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(base, out)
        landed = kill_after(["quantize", str(out), *QAT_ARGS], rng.uniform(0.15, 0.9) * t_ref)
        state = _json_or_none(out / "qat" / "ckpt" / "state.json")
        info = {"checkpointed_epoch": state["epoch"] if state else None,
                "qat_files": sorted(p.name for p in (out / "qat").iterdir()) if (out / "qat").exists() else []}
        if bad := broken_files(out / "qat"):
            return landed, f"half-written files after the kill: {bad}", info
        if qat_ready(out) and not all((out / "qat" / n).exists() for n in ("model.json", "metrics.json")):
            return landed, f"export would take an unfinished QAT model: {info['qat_files']}", info
        r = run(["quantize", str(out), "--resume", *QAT_ARGS])
        if r.returncode != 0:
            return landed, f"quantize --resume failed: {r.stderr.strip()[-300:]}", info
        got = qat_fingerprint(out)
        if diff := [k for k in ref if got[k] != ref[k]]:
            return landed, f"differs from the uninterrupted run: {diff}", info
        if not qat_ready(out):
            return landed, "the finished QAT model is not taken by export", info
        return landed, clean_up(out), info
    return trial


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



# --- scanning: device profile and annotated video -------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "field-14082.png"


def _example():
    import cv2

    return cv2.imread(str(EXAMPLE))   # BGR, as cv2 writes it back


def _profile_ok(path: Path) -> str | None:
    """None if ``path`` is a whole device profile of this machine, else why not."""
    from edgecnn.scan.profile import _check_profile, machine_key

    try:
        prof = json.loads(path.read_text())
        _check_profile(prof)
    except Exception as e:  # noqa: BLE001
        return f"not a device profile ({type(e).__name__}: {e})"
    return None if prof.get("machine") == machine_key() else "another machine's profile"


def _tune_shape(prof: dict) -> dict:
    """The measurement a profile describes (candidates, frame, rounds), not its timings or choice."""
    return {"rows": sorted((r["artifact"], r["runtime"], r["threads"], r["batch_size"], r["label_diff"])
                           for r in prof["rows"]),
            **{k: prof[k] for k in ("version", "machine", "release_dir", "frame", "rounds", "runs_per_round")}}


def tune_kind(work: Path, data: Path) -> Callable[[int, random.Random], tuple]:
    import cv2

    frame = work / "tune-frame.png"
    cv2.imwrite(str(frame), _example()[:480, :640])
    args = ["tune", str(frame), "--threads", "1", "--batch-sizes", "64", "--rounds", "2", "--runs", "2", "-q"]
    ref_path = work / "tune-ref" / "profile.json"
    shutil.rmtree(ref_path.parent, ignore_errors=True)
    t_ref = timed([*args, "--out", str(ref_path)])
    ref = _tune_shape(json.loads(ref_path.read_text()))

    def trial(i: int, rng: random.Random) -> tuple:
        folder = work / f"tune-{i}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        path = folder / "profile.json"
        # Odd trials replace an existing profile (the reference's), even ones write the first.
        old = ref_path.read_bytes() if i % 2 else None
        if old:
            path.write_bytes(old)
        landed = kill_after([*args, "--out", str(path)], rng.uniform(0.15, 0.9) * t_ref)
        info = {"replaced_an_old_profile": bool(old), "after_kill": "absent"}
        if path.exists():
            info["after_kill"] = "old" if path.read_bytes() == old else "new"
            if info["after_kill"] == "new" and (why := _profile_ok(path)):
                return landed, f"profile after the kill: {why}", info
        r = run([*args, "--out", str(path)])
        if r.returncode != 0:
            return landed, f"tune after the kill failed: {r.stderr.strip()[-300:]}", info
        if why := _profile_ok(path):
            return landed, f"profile after the rerun: {why}", info
        if _tune_shape(json.loads(path.read_text())) != ref:
            return landed, "the rerun measured something else than the reference", info
        return landed, clean_up(folder), info
    return trial


VIDEO_FRAMES = 400


def _make_clip(path: Path, n: int = VIDEO_FRAMES, size: tuple[int, int] = (480, 360)) -> Path:
    """A pan across the example field: ``n`` frames of ``size`` (w, h) at 10 fps."""
    import cv2

    img = _example()
    w, h = size
    xs = [round(x) for x in (i * (img.shape[1] - w) / (n - 1) for i in range(n))]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h))
    for i, x in enumerate(xs):
        y = (i * 7) % (img.shape[0] - h)
        writer.write(img[y:y + h, x:x + w])
    writer.release()
    return path


def _video_result(folder: Path) -> tuple:
    import numpy as np

    lines = [json.loads(s) for s in (folder / "clip.jsonl").read_text().splitlines()] \
        if (folder / "clip.jsonl").exists() else []
    frames = _frames(folder / "clip.overlay.mp4") if (folder / "clip.overlay.mp4").exists() else []
    return strip(lines), [np.asarray(f).tobytes() for f in frames]


def video_kind(work: Path, data: Path) -> Callable[[int, random.Random], tuple]:
    clip = work / "clip.mp4"
    if not clip.exists():
        _make_clip(clip)

    def args(folder: Path) -> list[str]:
        return ["scan", str(clip), "--threads", "1", "--policy", "all", "--out", str(folder / "clip.overlay.mp4"),
                "--json", str(folder / "clip.jsonl"), "-q"]
    ref_dir = work / "video-ref"
    shutil.rmtree(ref_dir, ignore_errors=True)
    t_ref = timed(args(ref_dir))
    ref_lines, ref_frames = _video_result(ref_dir)
    if len(ref_frames) != VIDEO_FRAMES or len(ref_lines) != VIDEO_FRAMES + 1:
        raise SystemExit(f"reference video: {len(ref_frames)} frames, {len(ref_lines)} JSON lines")
    old = (ref_dir / "clip.overlay.mp4").read_bytes()

    def trial(i: int, rng: random.Random) -> tuple:
        folder = work / f"video-{i}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        target = folder / "clip.overlay.mp4"
        if i % 2:   # odd trials overwrite an existing annotated video (the reference's)
            target.write_bytes(old)
        landed = kill_after(args(folder), rng.uniform(0.15, 0.9) * t_ref)
        info = {"replaced_an_old_video": bool(i % 2), "after_kill": "absent",
                "temporaries_after_kill": len(temporaries(folder))}
        if target.exists():
            info["after_kill"] = "old" if target.read_bytes() == old else "new"
            if info["after_kill"] == "new" and _video_result(folder)[1] != ref_frames:
                return landed, f"a video that is not the whole result under the final name ({len(_frames(target))} frames)", info
        r = run(args(folder))
        if r.returncode != 0:
            return landed, f"scan after the kill failed: {r.stderr.strip()[-300:]}", info
        lines, frames = _video_result(folder)
        if frames != ref_frames:
            return landed, f"rerun's video differs from the reference ({len(frames)} frames)", info
        if lines != ref_lines:
            return landed, "rerun's JSON lines differ from the reference", info
        return landed, clean_up(folder), info
    return trial


KINDS = {"slide": slide_kind, "cache": cache_kind, "export": export_kind, "train": train_kind,
         "quantize": quantize_kind, "tune": tune_kind, "video": video_kind}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--kinds", default=",".join(KINDS))
    ap.add_argument("--work", type=Path, default=Path("/tmp/edgecnn-kill-trials"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("-v", "--verbose", action="store_true", help="print each trial as it ends")
    a = ap.parse_args()
    data = Path(os.environ.get("EDGECNN_DATA", "../shared/data/idc").split(":")[0])
    a.work.mkdir(parents=True, exist_ok=True)
    rng, report = random.Random(a.seed), {}
    for kind in a.kinds.split(","):
        trial = KINDS[kind](a.work, data)
        rows = []
        for i in range(a.trials):
            landed, err, *info = trial(i, rng)
            rows.append({"trial": i, "killed_mid_run": landed, "error": err, **(info[0] if info else {})})
            if a.verbose:
                print(f"  {kind} {i}: {rows[-1]}", flush=True)
        report[kind] = {"trials": a.trials, "killed_mid_run": sum(r["killed_mid_run"] for r in rows),
                        "failures": [r["error"] for r in rows if r["error"]], "rows": rows}
        r = report[kind]
        print(f"{kind:8} trials {r['trials']:3}  killed mid-run {r['killed_mid_run']:3}  "
              f"recovered {r['trials'] - len(r['failures']):3}  failures {len(r['failures'])}", flush=True)
        for err in r["failures"]:
            print(f"        {err}")
    if a.json:
        a.json.write_text(json.dumps(report, indent=2))
    return 1 if any(r["failures"] for r in report.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
