"""Folders the pytest-xdist workers of one test session share (`make test` runs two): the first
worker that needs one builds it under a file lock, the others wait and reuse it, so the tiny model
is trained and exported once per session however many workers run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Callable


def under_xdist() -> bool:
    return bool(os.environ.get("PYTEST_XDIST_WORKER"))


def session_root(tmp_path_factory) -> Path:
    """The session's temporary root: the workers' common parent under xdist, else pytest's basetemp."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if under_xdist() else base


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """``root/name``, made by ``build(folder)`` once per session. A build that failed (or a worker
    killed in it) leaves no ``.done`` mark, so the next worker starts the folder afresh."""
    if not under_xdist():
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    from filelock import FileLock

    root = session_root(tmp_path_factory)
    folder, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            done.touch()
    return folder
