"""Atomic file writes: a killed process leaves either the old file or the new one, never half.
And ``exclusive``: one process at a time for work two processes must not do at once (the same
patch-cache entry, the same export folder)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

try:
    import fcntl
except ImportError:      # Windows: no flock; atomic renames still keep every file whole
    fcntl = None


TEMP_PREFIX = "."  # every temporary name starts with it: listings skip them (is_temp)


def is_temp(path: str | os.PathLike) -> bool:
    """A file or folder an atomic write (or export staging) was still making: never a result.
    A killed process leaves these behind; they never replace or shadow a finished file."""
    return Path(path).name.startswith(TEMP_PREFIX)


def temp_beside(path: str | os.PathLike, suffix: str | None = None) -> Path:
    """A new empty temporary file beside ``path`` (same folder, so a rename replaces ``path``).

    Its name, ``.<stem>.<pid>-<random><suffix>``, is hidden (``is_temp``) and records the writing
    process: what a killed writer left for the same target is removed first
    (``remove_orphaned_temps``), so repeated kills do not pile up half-written copies. The
    suffix is the target's unless given, because several writers (Keras, TFLite, ONNX, OpenCV)
    pick the file format from it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    remove_orphaned_temps(path, suffix)
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.stem}.{os.getpid()}-", suffix=suffix, dir=path.parent)
    os.close(fd)
    # mkstemp makes 0600 files; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    return Path(tmp)


def remove_orphaned_temps(path: str | os.PathLike, suffix: str | None = None) -> list[Path]:
    """Temporaries that a writer of ``path`` left when it was killed (its pid no longer runs):
    removed. A running writer's own temporary, and names without a pid, are left alone."""
    path = Path(path)
    suffix = path.suffix if suffix is None else suffix
    name = re.compile(re.escape(f"{TEMP_PREFIX}{path.stem}.") + r"(\d+)-[^.]*" + re.escape(suffix))
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for e in entries:
        m = name.fullmatch(e.name)
        if m and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                os.unlink(e.path)
                removed.append(Path(e.path))
    return removed


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OverflowError, ValueError):
        return False
    return True


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (``temp_beside``); rename it over ``path`` only on
    success."""
    path = Path(path)
    tmp_path = temp_beside(path, suffix)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def exclusive(lock: str | os.PathLike, on_wait: Callable[[int | None], None] | None = None) -> Iterator[None]:
    """Run the block while holding an exclusive ``flock`` on the file ``lock``; a second process
    asking for the same lock waits, after ``on_wait(pid of the holder or None)`` once.

    flock, because the kernel drops it when its holder dies, SIGKILL included: a killed process
    never leaves a lock that blocks the next run. The holder removes the file on release; a
    process that was waiting on it then finds its file gone and locks the new one, so two
    holders never meet (the usual open-lock-stat loop). Without fcntl (Windows) the block runs
    unlocked; what it writes is still atomic."""
    if fcntl is None:
        yield
        return
    path = Path(lock)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _lock_fd(path, on_wait)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)


def _lock_fd(path: Path, on_wait: Callable[[int | None], None] | None) -> int:
    told = False
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None and not told:
                    on_wait(_holder(fd))
                    told = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            if _still_there(fd, path):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)      # the holder removed this file while we waited: lock the one there now


def _holder(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode() or "x")
    except (OSError, ValueError):
        return None


def _still_there(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_bytes(path, (dumps_strict(obj) + "\n").encode())


def dumps_strict(obj: Any, default: Callable[[Any], Any] | None = None, indent: int | None = 2) -> str:
    """Strict JSON (RFC 8259): NaN and ±inf become null, since `NaN` breaks every other parser
    (jq, JavaScript, Go). ``default`` converts other objects (json_default: numpy, paths)."""
    return json.dumps(finite(obj, default or json_default), indent=indent, allow_nan=False)


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def finite(o: Any, default: Callable[[Any], Any] = None) -> Any:
    """``o`` with every non-finite float (numpy's too) as None; other objects through ``default``."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if o is None or isinstance(o, (str, int)):
        return o
    if isinstance(o, dict):
        return {k: finite(v, default) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [finite(v, default) for v in o]
    return finite((default or json_default)(o), default)


def json_default(o: Any) -> Any:
    # numpy scalars and arrays show up in metrics; keep numpy an optional import here.
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
