"""Soak: run the real `edgecnn scan` live loop for a long while and watch its memory and file
descriptors from outside (/proc/<pid>), the way a device running for hours would show a leak.

    python scripts/soak.py                       # 2,000-frame video and 1,000 dropped files, both policies
    python scripts/soak.py --frames 200 --files 100 --json soak.json

Kinds (each under --policy all and newest):
- video: a 640x480 mp4 panning across examples/field-14082.png (a real tissue field), written
  to the work folder, scanned with `--out clip.overlay.mp4 --json clip.jsonl`;
- watch: `--watch DIR` while another thread drops real-tissue PNG crops into DIR (each written
  under a temporary name, then renamed, as a camera should).

Checks per run: RSS after the warm-up (--warmup: a share of the loop's time) and at the end differ by less
than --max-growth (5 %); the open file descriptors after the warm-up and at the end are equal
(allowing --fd-slack for a file being read or written at that instant); under `all` every frame
is scanned once (none lost); under `newest` scanned + failed + dropped = frames offered, and the
drops are counted. RSS and fds are sampled every --interval s from /proc/<pid>/status and
/proc/<pid>/fd, so the CLI runs unmodified. Progress goes to stderr; one row per run to stdout,
and --json writes every number. Exit 1 when a check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FIELD = ROOT / "examples" / "field-14082.png"
MODEL = ROOT / "exported" / "release" / "basic_cnn-int8-qat.tflite"
# The CLI as a user runs it, but from this checkout (PYTHONPATH) whatever the venv's install points at.
CLI = [sys.executable, "-m", "edgecnn.cli"]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
       "EDGECNN_DEVICE_PROFILE": "/nonexistent/profile.json", "TF_USE_LEGACY_KERAS": "1"}


# --- inputs ---------------------------------------------------------------------------------------

def field_image() -> np.ndarray:
    from PIL import Image

    with Image.open(FIELD) as im:
        return np.asarray(im.convert("RGB"))


def pan_window(image: np.ndarray, i: int, h: int, w: int) -> np.ndarray:
    """Frame i of a stage moving back and forth across the field (consecutive frames differ)."""
    span_y, span_x = image.shape[0] - h, image.shape[1] - w
    x, y = (i * 7) % (2 * span_x), (i * 3) % (2 * span_y)
    x, y = (x if x < span_x else 2 * span_x - x), (y if y < span_y else 2 * span_y - y)
    return image[y:y + h, x:x + w]


def make_video(path: Path, frames: int, size: tuple[int, int] = (480, 640), fps: float = 10.0) -> Path:
    import cv2

    image = field_image()
    h, w = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if not writer.isOpened():
        raise SystemExit(f"OpenCV cannot write {path} (mp4v) here")
    for i in range(frames):
        writer.write(np.ascontiguousarray(pan_window(image, i, h, w)[..., ::-1]))
    writer.release()
    return path


def crop_pngs(n: int, size: int = 200, distinct: int = 50) -> list[bytes]:
    """``distinct`` real-tissue crops as PNG bytes, reused round-robin for the n files."""
    from PIL import Image
    import io

    image = field_image()
    out = []
    for i in range(min(n, distinct)):
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(pan_window(image, 37 * i, size, size))).save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def drop_files(folder: Path, n: int, rate: float, stop: threading.Event) -> list[str]:
    """Write n PNGs into folder at ``rate`` per second, each under a temporary name then renamed."""
    blobs = crop_pngs(n)
    names = []
    t0 = time.monotonic()
    for i in range(n):
        if stop.is_set():
            break
        name = f"frame-{i:06d}.png"
        tmp = folder / f".{name}.tmp"
        tmp.write_bytes(blobs[i % len(blobs)])
        os.replace(tmp, folder / name)
        names.append(name)
        delay = t0 + (i + 1) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return names


# --- watching the process -------------------------------------------------------------------------

def rss_kb(pid: int) -> tuple[int, int] | None:
    """(VmRSS, VmHWM) in kB, or None once the process is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    vals = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    try:
        return int(vals["VmRSS"].split()[0]), int(vals["VmHWM"].split()[0])
    except (KeyError, ValueError, IndexError):
        return None   # a zombie has no VmRSS


def fd_count(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


class LineCounter:
    """Lines written so far to a JSON-lines file the process appends to (its progress)."""

    def __init__(self, path: Path):
        self.path, self.pos, self.lines = path, 0, 0

    def poll(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                chunk = f.read()
        except OSError:
            return self.lines
        done = chunk.rfind(b"\n") + 1      # count whole lines only
        self.lines += chunk[:done].count(b"\n")
        self.pos += done
        return self.lines


@dataclass
class Sample:
    t: float
    frames: int
    rss_kb: int
    hwm_kb: int
    fds: int


@dataclass
class Trace:
    samples: list[Sample] = field(default_factory=list)



def follow(proc: subprocess.Popen, progress: LineCounter, interval: float, label: str, total: int,
           quiet: bool, on_sample=None) -> Trace:
    """Sample the process until it exits; print a progress line every few seconds."""
    trace, t0, last_print = Trace(), time.monotonic(), 0.0
    while proc.poll() is None:
        mem, fds = rss_kb(proc.pid), fd_count(proc.pid)
        frames = progress.poll()
        if mem is not None and fds is not None:
            trace.samples.append(Sample(time.monotonic() - t0, frames, mem[0], mem[1], fds))
            if on_sample is not None:
                on_sample(trace.samples[-1])
        now = time.monotonic()
        if not quiet and now - last_print >= 5 and trace.samples:
            s = trace.samples[-1]
            print(f"  {label}: {s.frames}/{total} frames, RSS {s.rss_kb / 1024:.1f} MB, fds {s.fds}, "
                  f"{s.t:.0f} s", file=sys.stderr, flush=True)
            last_print = now
        time.sleep(interval)
    return trace


# --- one run --------------------------------------------------------------------------------------

def scan_args(model: Path, threads: int, policy: str, out: Path, jsonl: Path) -> list[str]:
    return ["scan", "--model", str(model), "--threads", str(threads), "--policy", policy,
            "--out", str(out), "--json", str(jsonl), "-q"]


def read_jsonl(path: Path) -> tuple[list[dict], dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    summary = next((r["summary"] for r in rows if "summary" in r), {})
    return [r for r in rows if "summary" not in r], summary


def measure(trace: Trace, warmup: float, rendered: int, fd_slack: int) -> dict:
    """RSS and fds after the warm-up and at the end. The loop runs from the first rendered frame
    to the last sample taken while frames were still being rendered (after it the process only
    closes its outputs and exits); the warm-up is the first ``warmup`` share of that time (time,
    not frames: under "newest" few of the frames offered are rendered)."""
    running = [s for s in trace.samples if 1 <= s.frames < rendered]
    if len(running) < 2:
        return {"error": f"{len(running)} samples while frames were rendered (run more frames)"}
    t_warm = running[0].t + warmup * (running[-1].t - running[0].t)
    warm, end = next(s for s in running if s.t >= t_warm), running[-1]
    if end is warm:
        return {"error": "no sample after the warm-up (run more frames)"}
    after = [s for s in trace.samples if s.t >= warm.t]
    return {"warmup_frames": warm.frames, "end_frames": end.frames, "samples": len(trace.samples),
            "rss_warm_mb": warm.rss_kb / 1024, "rss_end_mb": end.rss_kb / 1024,
            "rss_peak_mb": end.hwm_kb / 1024, "rss_growth": (end.rss_kb - warm.rss_kb) / warm.rss_kb,
            "fds_warm": warm.fds, "fds_end": end.fds, "fds_max": max(s.fds for s in after),
            "fds_flat": end.fds <= warm.fds + fd_slack and max(s.fds for s in after) <= warm.fds + fd_slack,
            "trace": [[round(s.t, 2), s.frames, round(s.rss_kb / 1024, 1), s.fds] for s in trace.samples]}


def check(policy: str, offered: int, rows: list[dict], summary: dict, mem: dict, max_growth: float,
          names: list[str]) -> list[str]:
    """What went wrong in one run (empty: nothing). ``names``: the frames offered, in order."""
    problems = []
    if "error" in mem:
        return [mem["error"]]
    if mem["rss_growth"] >= max_growth:
        problems.append(f"RSS grew {100 * mem['rss_growth']:.1f}% after the warm-up (limit {100 * max_growth:.0f}%)")
    if not mem["fds_flat"]:
        problems.append(f"open fds went from {mem['fds_warm']} to {mem['fds_end']} (max {mem['fds_max']})")
    src = (summary.get("sources") or [{}])[0]
    rendered, failed, dropped = src.get("rendered", 0), src.get("failed", 0), src.get("dropped", 0)
    if policy == "all":
        seen = [r["name"] for r in rows]
        if rendered + failed != offered or sorted(seen) != sorted(names):
            problems.append(f"frames lost: offered {offered}, rendered {rendered}, failed {failed}, "
                            f"distinct in JSON {len(set(seen))}")
    elif rendered + failed + dropped != offered:
        problems.append(f"frames unaccounted for: offered {offered}, rendered {rendered} + failed {failed} + "
                        f"dropped {dropped}")
    if failed:
        problems.append(f"{failed} frames failed")
    return problems


def fresh(*paths: Path) -> None:
    """A rerun into the same --work starts clean (an old JSON-lines file would read as progress)."""
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)


def run_video(work: Path, video: Path, frames: int, policy: str, a) -> dict:
    out, jsonl = work / f"video-{policy}.overlay.mp4", work / f"video-{policy}.jsonl"
    fresh(out, jsonl)
    proc = subprocess.Popen(CLI + scan_args(a.model, a.threads, policy, out, jsonl) + [str(video)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    trace = follow(proc, LineCounter(jsonl), a.interval, f"video {policy}", frames, a.quiet)
    stderr = proc.stderr.read()
    if proc.returncode != 0:
        return {"kind": "video", "policy": policy, "problems": [f"exit {proc.returncode}: {stderr[-500:]}"]}
    rows, summary = read_jsonl(jsonl)
    mem = measure(trace, a.warmup, len(rows), a.fd_slack)
    src = summary["sources"][0]
    return {"kind": "video", "policy": policy, "offered": frames, "rendered": src["rendered"],
            "failed": src["failed"], "dropped": src["dropped"], "fps": src["fps"], "elapsed_s": src["elapsed_s"],
            **mem, "problems": check(policy, frames, rows, summary, mem, a.max_growth,
                                     [f"{video.name}#{i}" for i in range(frames)])}


STOP_GRACE_S = 60.0     # after Ctrl-C, the scan finishes the frames in flight and writes its summary


def run_watch(work: Path, files: int, policy: str, a) -> dict:
    folder, out, jsonl = work / f"watch-{policy}", work / f"watch-{policy}-out", work / f"watch-{policy}.jsonl"
    fresh(folder, out, jsonl)
    folder.mkdir(parents=True)
    stop_when = ["--max-frames", str(files)] if policy == "all" else []
    proc = subprocess.Popen(CLI + scan_args(a.model, a.threads, policy, out, jsonl)
                            + ["--watch", str(folder), "--settle", "0"] + stop_when,
                            env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ctrl_c_works)
    stop, dropped_names, interrupted = threading.Event(), [], []
    dropper = threading.Thread(target=lambda: dropped_names.extend(drop_files(folder, files, a.rate, stop)))
    counter = LineCounter(jsonl)

    def interrupt_when_idle(sample: Sample) -> None:
        # Under "newest" nothing ends the run by count (drops do not count): Ctrl-C it once the
        # last file dropped has been scanned, as a user would stop a camera; kill it (a problem
        # reported below) if Ctrl-C does not end it.
        if policy != "newest":
            return
        if not interrupted and not dropper.is_alive() and dropped_names and _scanned(jsonl, dropped_names[-1]):
            proc.send_signal(signal.SIGINT)
            interrupted.append(time.monotonic())
        elif interrupted and time.monotonic() - interrupted[0] > STOP_GRACE_S:
            proc.kill()

    time.sleep(0.5)     # the folder is watched from the first poll: files dropped now are new arrivals
    dropper.start()
    trace = follow(proc, counter, a.interval, f"watch {policy}", files, a.quiet, interrupt_when_idle)
    stop.set()
    dropper.join()
    stderr = proc.stderr.read()
    if proc.returncode == -signal.SIGKILL:
        return {"kind": "watch", "policy": policy,
                "problems": [f"still running {STOP_GRACE_S:.0f} s after Ctrl-C (SIGINT); killed: {stderr[-500:]}"]}
    if proc.returncode not in (0, -signal.SIGINT, 130):
        return {"kind": "watch", "policy": policy, "problems": [f"exit {proc.returncode}: {stderr[-500:]}"]}
    rows, summary = read_jsonl(jsonl)
    mem = measure(trace, a.warmup, len(rows), a.fd_slack)
    src = summary["sources"][0]
    return {"kind": "watch", "policy": policy, "offered": len(dropped_names), "rendered": src["rendered"],
            "failed": src["failed"], "dropped": src["dropped"], "fps": src["fps"], "elapsed_s": src["elapsed_s"],
            **mem, "problems": check(policy, len(dropped_names), rows, summary, mem, a.max_growth,
                                     dropped_names)}


def _ctrl_c_works() -> None:
    """In the scan's child process, before exec: SIGINT back to its default. A command started in
    the background by a non-interactive shell (`cmd &`, as CI runners and nohup jobs do) inherits
    SIGINT ignored, and Python then installs no KeyboardInterrupt handler: Ctrl-C would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _scanned(jsonl: Path, name: str) -> bool:
    try:
        return f'"name": "{name}"' in jsonl.read_text()   # dumps_strict's separators
    except OSError:
        return False


# --- main -----------------------------------------------------------------------------------------

def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=2000, help="video frames (default 2000)")
    ap.add_argument("--files", type=int, default=1000, help="files dropped into the watched folder (default 1000)")
    ap.add_argument("--kinds", default="video,watch")
    ap.add_argument("--policies", default="all,newest")
    ap.add_argument("--size", default="640x480", help="video frame size WxH")
    ap.add_argument("--rate", type=float, default=50.0, help="files dropped per second (default 50)")
    ap.add_argument("--model", type=Path, default=MODEL)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=float, default=0.1, help="share of the loop's time before the first RSS reading (default 0.1)")
    ap.add_argument("--max-growth", type=float, default=0.05, help="largest RSS growth after the warm-up (0.05 = 5%%)")
    ap.add_argument("--fd-slack", type=int, default=2, help="fds open for a frame in flight at a sample")
    ap.add_argument("--interval", type=float, default=0.2, help="seconds between /proc samples")
    ap.add_argument("--work", type=Path, help="folder for the video, the watched folders and outputs (default: a temp folder)")
    ap.add_argument("--json", type=Path, help="write every number here")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    return ap.parse_args(argv)


def run_all(a: argparse.Namespace) -> list[dict]:
    work = a.work or Path(tempfile.mkdtemp(prefix="edgecnn-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    w, h = (int(v) for v in a.size.lower().split("x"))
    results = []
    for kind in a.kinds.split(","):
        if kind == "video":
            video = make_video(work / f"pan-{a.frames}.mp4", a.frames, (h, w))
        for policy in a.policies.split(","):
            if not a.quiet:
                print(f"{kind} --policy {policy} ...", file=sys.stderr, flush=True)
            r = run_video(work, video, a.frames, policy, a) if kind == "video" else run_watch(work, a.files, policy, a)
            results.append(r)
            print(row(r), flush=True)
    return results


def row(r: dict) -> str:
    head = f"{r['kind']:5} {r['policy']:6}"
    if "rss_warm_mb" not in r:
        return f"{head} FAILED: {'; '.join(r['problems'])}"
    return (f"{head} offered {r['offered']:5}  rendered {r['rendered']:5}  dropped {r['dropped']:5}  "
            f"RSS {r['rss_warm_mb']:.1f} → {r['rss_end_mb']:.1f} MB ({100 * r['rss_growth']:+.2f}%, peak "
            f"{r['rss_peak_mb']:.1f})  fds {r['fds_warm']} → {r['fds_end']} (max {r['fds_max']})  "
            f"{r['fps']:.1f} fps  {'ok' if not r['problems'] else 'FAILED: ' + '; '.join(r['problems'])}")


def main(argv=None) -> int:
    a = parse_args(argv)
    results = run_all(a)
    if a.json:
        a.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()}, "runs": results}, indent=2))
    return 1 if any(r["problems"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
