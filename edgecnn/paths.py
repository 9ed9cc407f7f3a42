"""Where edgecnn reads data and writes caches. Data folders may be read-only: never write there."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``EDGECNN_CACHE``, else ``$XDG_CACHE_HOME/edgecnn``, else ``~/.cache/edgecnn``."""
    env = os.environ.get("EDGECNN_CACHE")
    if env:
        base = Path(env)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgecnn"
    base.mkdir(parents=True, exist_ok=True)
    return base


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


def release_model_dir() -> Path:
    """The committed release model (``exported/release``), the default of scan and bench."""
    env = os.environ.get("EDGECNN_RELEASE_DIR")
    return Path(env) if env else project_root() / "exported" / "release"
