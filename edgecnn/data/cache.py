"""On-disk cache of decoded patches: ``cache_dir()/patches/<key>/``.

Images live in an uncompressed uint8 ``images.npy`` that is opened with ``mmap_mode="r"``,
so the full 277k-patch dataset (about 2 GB) costs no RAM until rows are touched. The key
hashes the file listing (names, sizes, mtimes / CRCs), the border rule and the patch size:
a changed dataset or rule gets a new entry. Entries are built in a temporary folder and
renamed into place, so a killed process never leaves a half-written entry behind.

Two processes, one key (two trainings started together on the same data): the entry is built
under ``building(key)``, an flock on ``patches/.lock-<key>``. The second process says it is
waiting, then reads the entry the first one published instead of decoding everything again.
(Without the lock both would decode, and the second rename would fail and discard its copy:
never a corrupt entry, only the work twice.)
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.fsutil import exclusive, json_default
from edgecnn.paths import cache_dir

log = logging.getLogger("edgecnn.data")

CACHE_VERSION = 1
_ARRAYS = ("labels", "patients", "xs", "ys", "files")
_STALE_TMP_S = 24 * 3600


def cache_key(fingerprint: str, border: str, patch_size: int) -> str:
    raw = f"v{CACHE_VERSION}|{fingerprint}|border={border}|size={patch_size}"
    return hashlib.sha256(raw.encode()).hexdigest()[:24]


def patches_root() -> Path:
    root = cache_dir() / "patches"
    root.mkdir(parents=True, exist_ok=True)
    return root


def entry_dir(key: str) -> Path:
    return patches_root() / key


def load(key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The cached arrays (images memory-mapped) and report, or None when absent or damaged."""
    d = entry_dir(key)
    if not d.exists():
        return None
    try:
        arrays = {"images": np.load(d / "images.npy", mmap_mode="r")}
        for name in _ARRAYS:
            arrays[name] = np.load(d / f"{name}.npy", allow_pickle=False)
        with open(d / "report.json", encoding="utf-8") as f:
            report = json.load(f)
        n = len(arrays["labels"])
        if any(len(a) != n for a in arrays.values()) or report.get("n_patches") != n:
            raise ValueError("array lengths disagree")
    except (OSError, ValueError, json.JSONDecodeError):
        # Entries are published whole by rename, so a broken one was damaged later: rebuild it.
        shutil.rmtree(d, ignore_errors=True)
        return None
    return arrays, report


@contextlib.contextmanager
def building(key: str):
    """Hold the key's lock while its entry is built; another process building it makes this wait."""
    def say(pid: int | None) -> None:
        who = f"process {pid}" if pid else "another process"
        log.warning("waiting for %s, which is decoding the same data into the patch cache (%s); "
                    "this run then reads it from there", who, entry_dir(key))

    with exclusive(patches_root() / f".lock-{key}", on_wait=say):
        yield


class CacheWriter:
    """Decode straight into a memory-mapped ``images.npy`` in a temp folder, then publish it."""

    def __init__(self, key: str, n_rows: int, patch_size: int):
        self.key = key
        root = patches_root()
        _remove_stale_tmp(root)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{key}-", dir=root))
        self.images = np.lib.format.open_memmap(
            self.tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(max(n_rows, 1), patch_size, patch_size, 3)
        )
        self.n_rows = n_rows

    def commit(self, n_kept: int, arrays: dict[str, np.ndarray], report: dict[str, Any]) -> Path:
        self.images.flush()
        shape = self.images.shape
        del self.images  # close the memmap before the file is shrunk or renamed
        if n_kept != shape[0]:
            _shrink_npy(self.tmp / "images.npy", (n_kept, *shape[1:]))
        for name in _ARRAYS:
            np.save(self.tmp / f"{name}.npy", arrays[name], allow_pickle=False)
        # report.json is written last: its presence marks a complete entry.
        with open(self.tmp / "report.json", "w", encoding="utf-8") as f:
            json.dump(report, f, indent=1, default=json_default)
            f.flush()
            os.fsync(f.fileno())
        final = entry_dir(self.key)
        try:
            os.rename(self.tmp, final)
        except OSError:
            # Another process published the same key first; its entry is equivalent.
            shutil.rmtree(self.tmp, ignore_errors=True)
        return final

    def abort(self) -> None:
        self.images = None
        shutil.rmtree(self.tmp, ignore_errors=True)


def _shrink_npy(path: Path, shape: tuple[int, ...]) -> None:
    """Cut a C-order uint8 .npy down to its first ``shape[0]`` rows without copying the data."""
    with open(path, "r+b") as f:
        version = np.lib.format.read_magic(f)
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _, _, dtype = reader(f)
        offset = f.tell()
        buf = io.BytesIO()
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
        writer = np.lib.format.write_array_header_1_0 if version == (1, 0) else np.lib.format.write_array_header_2_0
        writer(buf, header)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if len(buf.getvalue()) == offset:
            f.seek(0)
            f.write(buf.getvalue())
            f.truncate(offset + nbytes)
            return
    # The header would change length (rare: padding is 64-byte aligned); copy in chunks instead.
    src = np.load(path, mmap_mode="r")
    tmp = path.with_suffix(".shrink.npy")
    dst = np.lib.format.open_memmap(tmp, mode="w+", dtype=src.dtype, shape=shape)
    step = 8192
    for i in range(0, shape[0], step):
        dst[i : i + step] = src[i : i + step]
    dst.flush()
    del dst, src
    os.replace(tmp, path)


def _remove_stale_tmp(root: Path) -> None:
    now = time.time()
    for p in root.glob(".tmp-*"):
        try:
            if now - p.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass


def clear(key: str | None = None) -> int:
    """Remove one entry (or all of them); returns how many were removed."""
    root = patches_root()
    targets = [root / key] if key else [p for p in root.iterdir() if p.is_dir()]
    n = 0
    for p in targets:
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)
            n += 1
    return n
