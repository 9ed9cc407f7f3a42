"""Which rows a bench measures: each artifact on each applicable, asked, installed runtime, at each
thread count, plain and (``tta``) with test-time augmentation."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from edgecnn.formats import SUFFIX_RUNTIME


def _unavailable(rt: str) -> str:
    return ("TensorRT is not installed (pip install edgecnn[trt]; needs an NVIDIA GPU)" if rt == "tensorrt"
            else f"{rt} is not installed")


def plan_rows(artifacts: list[Path], runtimes: Sequence[str] | None, threads: Sequence[int], tta: bool = False
              ) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(rows to run, skips with reasons)."""
    from edgecnn.runtime import canonical_runtime, runtime_available, runtimes_for

    asked = [canonical_runtime(r) for r in runtimes] if runtimes else None
    rows, skipped = [], []
    for art in artifacts:
        usable = runtimes_for(art)
        chosen = [r for r in usable if asked is None or r in asked]
        if not chosen:
            skipped.append({"artifact": str(art), "runtime": ",".join(asked or []),
                            "reason": f"no asked runtime runs {art.suffix} (it runs on {', '.join(usable)})"})
            continue
        for rt in chosen:
            if not runtime_available(rt):
                # An optional second runtime that is missing is not worth a line; the artifact's own is.
                if asked is not None or rt == SUFFIX_RUNTIME[art.suffix.lower()]:
                    skipped.append({"artifact": str(art), "runtime": rt, "reason": _unavailable(rt)})
                continue
            for t in threads:
                for aug in ((False, True) if tta else (False,)):
                    rows.append({"kind": "artifact", "artifact": str(art), "runtime": rt, "threads": int(t),
                                 "tta": aug})
    return rows, skipped
