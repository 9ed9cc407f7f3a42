"""The camera-drop folder loop: complete files only, bad frames skipped, newest-frame policy."""

from __future__ import annotations

import os
import time

from PIL import Image

from edgecnn.scan import Scanner, WatchStats, watch


def _save(path, frame, mtime=None):
    Image.fromarray(frame).save(path, format="PNG")
    if mtime is not None:
        os.utime(path, (mtime, mtime))


def test_bad_frame_is_skipped_and_the_loop_goes_on(tmp_path, mosaic, scan_backend):
    crop = mosaic.image[:200, :300]
    t = time.time() - 100
    _save(tmp_path / "f1.png", crop, t)
    _save(tmp_path / "f2.png", crop)
    data = (tmp_path / "f2.png").read_bytes()
    (tmp_path / "f2.png").write_bytes(data[:len(data) // 2])   # truncated frame
    os.utime(tmp_path / "f2.png", (t + 1, t + 1))
    _save(tmp_path / "f3.png", crop, t + 2)
    _save(tmp_path / ".f4.png", crop)                  # hidden temp name: never taken
    _save(tmp_path / "f5.png.part", crop)             # partial upload
    stats = WatchStats()
    events = list(watch(tmp_path, Scanner(scan_backend), policy="all", settle_s=0.05, max_frames=3,
                        timeout=30, stats=stats))
    assert [e.path.name for e in events] == ["f1.png", "f2.png", "f3.png"]
    assert [e.ok for e in events] == [True, False, True]
    assert "f2.png" in events[1].error and "truncated or corrupt" in events[1].error
    assert events[0].result.tiles == 24 and events[0].latency_ms >= events[0].result.ms_per_frame
    assert (stats.scanned, stats.failed, stats.dropped, stats.stopped_by) == (2, 1, 0, "max_frames")


def test_newest_policy_drops_backlog_and_takes_new_arrivals(tmp_path, mosaic, scan_backend):
    crop = mosaic.image[:100, :100]
    t = time.time() - 100
    for i in range(3):
        _save(tmp_path / f"old{i}.png", crop, t + i)

    stats = WatchStats()
    frames = watch(tmp_path, Scanner(scan_backend), policy="newest", settle_s=0.05, max_frames=2,
                   timeout=20, stats=stats)
    first = next(frames)   # the backlog is judged before the camera writes again: no race with a sleep
    tmp = tmp_path / "new.png.tmp"
    _save(tmp, crop)
    os.replace(tmp, tmp_path / "new.png")           # the temp-name convention
    events = [first, *frames]
    assert [e.path.name for e in events] == ["old2.png", "new.png"]
    assert stats.dropped == 2 and events[0].dropped == 2 and all(e.ok for e in events)


def test_timeout_and_skip_existing(tmp_path, mosaic, scan_backend):
    _save(tmp_path / "there.png", mosaic.image[:100, :100])
    stats = WatchStats()
    t0 = time.monotonic()
    events = list(watch(tmp_path, Scanner(scan_backend), include_existing=False, timeout=0.5, stats=stats))
    # The stop reason is the check; the bound only catches a watch that never ends (not a speed test).
    assert events == [] and stats.stopped_by == "timeout" and time.monotonic() - t0 < 60


def test_memory_follows_the_folder_not_the_run(tmp_path, mosaic):
    """What the watch remembers between polls (files taken, files settling) is bounded by what the
    folder holds: files dropped under "newest", and files moved away after their scan, are
    forgotten. Before, both stayed for the whole run (a camera folder emptied by another process
    grew the watch by every file it ever held)."""
    from edgecnn.scan.watch import FolderWatch

    crop = mosaic.image[:60, :60]
    t = time.time() - 100
    for i in range(30):
        _save(tmp_path / f"f{i:02d}.png", crop, t + i)
    src = FolderWatch(tmp_path, policy="newest", settle_s=0, poll_s=0.01, timeout=30)
    frames = iter(src)
    assert next(frames).name == "f29.png" and src.dropped == 29
    assert src.tracked == 30                       # one per file in the folder (it was 59)
    for p in tmp_path.glob("*.png"):               # another process archives the scanned frames
        p.unlink()
    _save(tmp_path / "g.png", crop)
    assert next(frames).name == "g.png"
    assert src.tracked == 1                        # (it was 60)
    src.close()
