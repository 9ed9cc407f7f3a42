"""The soak (scripts/soak.py) at a small scale: the real `edgecnn scan` on a 200-frame video and
on 100 files dropped into a watched folder, each under --policy all and newest, with the release
model. No frame lost under `all`, every frame scanned or counted as dropped under `newest`, open
file descriptors flat, and RSS after the warm-up within a bound generous enough for a short run
(a leak of a frame's pixels per frame would double it). The 2,000-frame numbers are in
docs/reliability.md ("Soak")."""

from __future__ import annotations

import importlib.util
import signal
import sys
from pathlib import Path

import pytest

pytest.importorskip("cv2")
ROOT = Path(__file__).resolve().parents[1]


def _soak():
    spec = importlib.util.spec_from_file_location("soak", ROOT / "scripts" / "soak.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = mod          # its dataclasses look their module up by name
    spec.loader.exec_module(mod)
    return mod


def test_short_soak_loses_nothing_and_holds_fds_and_memory(tmp_path):
    soak = _soak()
    args = soak.parse_args(["--frames", "200", "--files", "100", "--warmup", "0.5", "--max-growth", "0.3",
                            "--interval", "0.05", "--work", str(tmp_path), "-q"])
    # As under a CI runner's background job: SIGINT ignored here, and so in every child that does
    # not restore it (the watched scan is stopped by Ctrl-C; it once waited forever this way).
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        runs = {(r["kind"], r["policy"]): r for r in soak.run_all(args)}
    finally:
        signal.signal(signal.SIGINT, previous)
    assert set(runs) == {(k, p) for k in ("video", "watch") for p in ("all", "newest")}
    for key, r in runs.items():
        assert r["problems"] == [], (key, r["problems"])
        assert r["fds_end"] <= r["fds_warm"] + 2 and r["rss_growth"] < 0.3, key
    assert (runs["video", "all"]["rendered"], runs["video", "all"]["dropped"]) == (200, 0)
    assert (runs["watch", "all"]["rendered"], runs["watch", "all"]["dropped"]) == (100, 0)
    newest = runs["video", "newest"]     # decoding outpaces scanning: the loop must drop, and count it
    assert newest["dropped"] > 0 and newest["rendered"] + newest["dropped"] == 200
    watched = runs["watch", "newest"]
    assert watched["rendered"] + watched["failed"] + watched["dropped"] == watched["offered"] == 100


def test_soak_check_reports_a_lost_frame_and_growth():
    """The check itself: it must fail a run that lost a frame, leaked fds or grew."""
    soak = _soak()
    names = [f"v.mp4#{i}" for i in range(3)]
    rows = [{"name": n} for n in names[:2]]
    summary = {"sources": [{"rendered": 2, "failed": 0, "dropped": 0}]}
    mem = {"rss_growth": 0.2, "fds_flat": False, "fds_warm": 8, "fds_end": 40, "fds_max": 40}
    problems = soak.check("all", 3, rows, summary, mem, 0.05, names)
    assert len(problems) == 3 and "frames lost" in problems[-1]
    ok = {"rss_growth": 0.01, "fds_flat": True}
    assert soak.check("all", 2, rows, summary, ok, 0.05, names[:2]) == []
    newest = {"sources": [{"rendered": 1, "failed": 0, "dropped": 1}]}
    assert "unaccounted" in soak.check("newest", 3, rows[:1], newest, ok, 0.05, names)[0]
