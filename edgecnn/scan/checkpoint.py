"""Tile results of a long slide scan, saved after every band so a killed scan resumes.

The checkpoint is one ``.npz`` beside the outputs, replaced atomically (a kill mid-write leaves
the previous one). It carries a fingerprint of what was scanned (file size and mtime, model,
threshold, tile size, scale, level); ``--resume`` with a different fingerprint is refused rather
than mixing two scans' tiles. Deleted when the scan completes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.fsutil import atomic_path


class CheckpointError(ValueError):
    """A checkpoint that does not belong to this scan; names the file and the fix."""


def fingerprint(path: Path, scanner_desc: dict[str, Any], reader_desc: dict[str, Any]) -> str:
    st = Path(path).stat()
    keep = {k: scanner_desc.get(k) for k in ("model", "threshold", "tile_size")}
    keep |= {k: reader_desc.get(k) for k in ("mpp", "target_mpp", "level", "rescale", "size")}
    return json.dumps({"size": st.st_size, "mtime": int(st.st_mtime), **keep}, sort_keys=True, default=str)


def save(path: Path, fp: str, next_y: int, elapsed_s: float, **arrays: np.ndarray) -> None:
    """``arrays``: the scan's state (grids, thumbnail); ``next_y``: the first band not yet in them."""
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, fingerprint=np.array(fp), next_y=np.array(next_y), elapsed_s=np.array(elapsed_s), **arrays)
            f.flush()
            os.fsync(f.fileno())


def load(path: Path, fp: str) -> dict[str, Any] | None:
    """The saved state, or None when there is no checkpoint; CheckpointError when it is another scan's."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as z:
            state = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError) as e:
        raise CheckpointError(f"{path}: unreadable checkpoint ({e}); delete it to start the scan over") from e
    if str(state["fingerprint"]) != fp:
        raise CheckpointError(f"{path}: checkpoint of a different scan (other file, model, threshold or scale); "
                              "delete it, or rerun without --resume to start over")
    state.pop("fingerprint")
    return state | {"next_y": int(state["next_y"]), "elapsed_s": float(state["elapsed_s"])}
