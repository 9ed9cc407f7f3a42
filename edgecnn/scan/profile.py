"""The device profile ``edgecnn tune`` writes and ``Scanner`` reads: where it lives, its layout
check, whether it was made on this machine, and what it sets for a Scanner given no model.

Layout (JSON, ``profile_path()``; ``EDGECNN_DEVICE_PROFILE`` overrides):
    {"version": 1, "machine": {"cpu", "arch", "usable_cores"}, "created": ISO time,
     "release_dir": folder, "choice": {"artifact", "runtime", "threads", "batch_size", "ms_per_frame"},
     "rows": [every candidate measured], "frame": {...}}
It is used only on the machine that made it (same CPU model, architecture and usable cores).
The measuring itself is ``edgecnn.scan.tune``. No TensorFlow here.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from edgecnn.fsutil import read_json, write_json
from edgecnn.paths import cache_dir, release_model_dir

log = logging.getLogger("edgecnn.scan")

PROFILE_VERSION = 1


def profile_path() -> Path:
    env = os.environ.get("EDGECNN_DEVICE_PROFILE")
    return Path(env) if env else cache_dir() / "device-profile.json"


def machine_key() -> dict[str, Any]:
    from edgecnn.bench.machine import machine_info

    m = machine_info()
    return {"cpu": m["cpu"], "arch": m["arch"], "usable_cores": m["usable_cores"]}


def save_profile(profile: dict[str, Any], path: str | os.PathLike | None = None) -> Path:
    return write_json(Path(path) if path else profile_path(), profile)


def load_profile(path: str | os.PathLike | None = None) -> dict[str, Any] | None:
    """The device profile if it exists and was made on this machine, else None (with a log line why)."""
    path = Path(path) if path else profile_path()
    if not path.is_file():
        return None
    try:
        prof = read_json(path)
        _check_profile(prof)
    except (ValueError, KeyError, TypeError, OSError) as e:
        log.warning("%s: not a device profile (%s); run `edgecnn tune` again", path, e)
        return None
    if prof.get("machine") != machine_key():
        other = prof.get("machine")
        log.warning("%s was made on another machine (%s); ignored. Run `edgecnn tune` here", path,
                    other.get("cpu") if isinstance(other, dict) else other)
        return None
    return prof


def _check_profile(prof: Any) -> None:
    """The layout ``tune`` writes; the artifact is a file name in the release folder, nothing else."""
    choice = prof.get("choice") if isinstance(prof, dict) else None
    if prof.get("version") != PROFILE_VERSION or not isinstance(choice, dict):
        raise ValueError("unknown layout")
    art, threads, batch = choice.get("artifact"), choice.get("threads"), choice.get("batch_size")
    if not isinstance(art, str) or Path(art).name != art or art in ("", ".", ".."):
        raise ValueError(f"artifact {art!r} is not a file name of the release folder")
    if not isinstance(choice.get("runtime"), str):
        raise ValueError("no runtime")
    for name, v in (("threads", threads), ("batch_size", batch)):
        if not (v is None and name == "batch_size") and not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            raise ValueError(f"{name} {v!r} is not a positive whole number")


def apply_profile(profile: Any, runtime: str | None, threads: int | None, batch_size: int | None):
    """For Scanner(model=None): (model, runtime, threads, batch_size, profile path or None).

    The profile's artifact is used only if it is still in the release folder Scanner would use;
    whatever the caller set explicitly (runtime, threads, batch size) is kept.
    """
    path = profile_path() if profile == "auto" else Path(profile)
    prof = load_profile(path)
    if prof is None:
        return None, runtime, threads, batch_size, None
    art = release_model_dir() / prof["choice"]["artifact"]
    if not art.exists() or (runtime is not None and runtime != prof["choice"]["runtime"]):
        return None, runtime, threads, batch_size, None
    c = prof["choice"]
    return (art, c["runtime"], threads if threads is not None else int(c["threads"]),
            batch_size if batch_size is not None else int(c.get("batch_size") or 0) or None, path)
