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


def packaged_model_dir() -> Path:
    """``edgecnn/_models``: the release int8 TFLite and its manifest, which the wheel's build step
    (setup.py) copies from ``exported/release``. Absent in a source checkout."""
    return Path(__file__).resolve().parent / "_models"


def release_model_dir() -> Path:
    """The release model, the default of scan and bench: ``EDGECNN_RELEASE_DIR``, else the committed
    ``exported/release`` of a source checkout, else the copy a wheel install carries
    (``packaged_model_dir``: the int8 TFLite alone)."""
    env = os.environ.get("EDGECNN_RELEASE_DIR")
    if env:
        return Path(env)
    source = project_root() / "exported" / "release"
    packaged = packaged_model_dir()
    return packaged if not source.is_dir() and packaged.is_dir() else source
