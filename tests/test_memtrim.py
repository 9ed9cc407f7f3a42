"""The live loop's heap trim really hands freed pages back (glibc only)."""

import threading

import pytest

from edgecnn.memtrim import _malloc_trim, trim_heap


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


@pytest.mark.skipif(_malloc_trim() is None, reason="malloc_trim is glibc's; this C library has none")
def test_trim_returns_a_threads_freed_buffers():
    survivors = []

    def frames():
        buffers = [b"x" * 100_000 for _ in range(1000)]   # 100 MB of frame-sized buffers in a thread's arena
        survivors.append(buffers[::50])                   # a few live on and pin the arena, as in a live loop

    t = threading.Thread(target=frames)
    t.start()
    t.join()
    before = _rss_mb()
    assert trim_heap()
    assert _rss_mb() < before - 50
