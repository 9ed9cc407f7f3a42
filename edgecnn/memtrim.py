"""Hand freed heap memory back to the operating system (glibc's ``malloc_trim``).

A process that frees large buffers on several threads keeps the freed pages in glibc's
per-thread arenas, so its RSS grows in steps long after its working set stopped growing
(docs/reliability.md, "Soak"). ``malloc_trim(0)`` releases every whole free page of every arena;
elsewhere (musl, macOS, Windows) this is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):   # not glibc: no malloc_trim
        return None


def trim_heap() -> bool:
    """Release free heap pages; True when glibc did (it returns 1 if any memory was released)."""
    fn = _malloc_trim()
    return bool(fn(0)) if fn is not None else False
