"""Where the data comes from when a command is given no path.

Order: the explicit path, else ``EDGECNN_DATA``, else a Kaggle download through ``kagglehub``
(only when it is installed and Kaggle credentials exist), else a synthetic stand-in under
``cache_dir()/synthetic`` with a loud warning: commands still run offline, but nobody should
mistake its numbers for results.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edgecnn.data.layout import KAGGLE_DATASET, DataError, layout_help
from edgecnn.data.sources import join_sources, parse_sources
from edgecnn.paths import cache_dir

Kind = Literal["explicit", "env", "kaggle", "synthetic"]


@dataclass(frozen=True)
class DataSource:
    path: Path                      # the first (often only) source
    kind: Kind
    note: str = ""
    paths: tuple[Path, ...] = ()    # every source, when several were given

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def spec(self) -> str:
        """What ``load_patches`` and a run's config.json take: the sources joined by ``os.pathsep``."""
        return join_sources(self.paths or (self.path,))

    @property
    def synthetic(self) -> bool:
        return self.kind == "synthetic"


def kaggle_credentials() -> bool:
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    cfg = Path(os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle") / "kaggle.json"
    try:
        d = json.loads(cfg.read_text())
        return bool(d.get("username") and d.get("key"))
    except (OSError, ValueError, AttributeError):
        return False


def _kaggle_download() -> tuple[Path | None, str]:
    try:
        import kagglehub  # optional: pip install 'edgecnn[kaggle]'
    except ImportError:
        return None, "kagglehub is not installed (pip install 'edgecnn[kaggle]')"
    if not kaggle_credentials():
        return None, "no Kaggle credentials (KAGGLE_USERNAME/KAGGLE_KEY or ~/.kaggle/kaggle.json)"
    try:
        return Path(kagglehub.dataset_download(KAGGLE_DATASET)), f"kagglehub {KAGGLE_DATASET}"
    except Exception as e:  # network, auth, quota: any failure falls back to the stand-in
        return None, f"kagglehub download failed: {type(e).__name__}: {e}"


def _existing(paths: list[Path], kind: Kind, missing: str) -> DataSource:
    for p in paths:
        if not p.exists():
            raise DataError(missing.format(p=p) + "\n" + layout_help(p))
    return DataSource(paths[0], kind, paths=tuple(paths))


def synthetic_dir() -> Path:
    return cache_dir() / "synthetic"


def warn(message: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.panel import Panel

    Console(stderr=True).print(Panel(escape(message), title="[bold red]WARNING: SYNTHETIC DATA", border_style="red"))


def resolve_data(path=None, allow_download: bool = True,
                 allow_synthetic: bool = True, quiet: bool = False) -> DataSource:
    """The data folder(s) or zip(s) a command should read, and where they came from.

    ``path``: one path, a list (``--data A --data B``), or an ``os.pathsep``-joined string.
    """
    if path is not None and (isinstance(path, (str, os.PathLike)) or len(path)):
        return _existing(parse_sources(path), "explicit", "data path {p} does not exist.")
    env = os.environ.get("EDGECNN_DATA")
    if env:
        # Set but wrong is a mistake to fix, not a reason to silently train on fake data.
        return _existing(parse_sources(env), "env", f"EDGECNN_DATA={env}: {{p}} does not exist; fix or unset it.")
    reason = "download disabled"
    if allow_download:
        got, reason = _kaggle_download()
        if got is not None:
            return DataSource(got, "kaggle", reason)
    if not allow_synthetic:
        raise DataError(f"no data: pass a path or set EDGECNN_DATA ({reason}).\n" + layout_help("PATH"))
    from edgecnn.data.synth import is_synthetic, make_synthetic

    out = synthetic_dir()
    if not is_synthetic(out):
        if out.exists() and not any(out.iterdir()):
            out.rmdir()
        make_synthetic(out)
    # Even --quiet (and --json -) says it in one line on stderr: numbers from fake tissue must
    # never pass for real ones.
    warn(f"No real data found ({reason}); using the synthetic stand-in at {out}." + ("" if quiet else
         "\nResults on it say nothing about cancer. Pass a path or set EDGECNN_DATA to the Kaggle data\n"
         f"(https://www.kaggle.com/datasets/{KAGGLE_DATASET})."))
    return DataSource(out, "synthetic", reason)
