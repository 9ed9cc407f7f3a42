"""Where a context stage comes from: the artifact's manifest, or a JSON file given by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgecnn.context.stage import ContextError, ContextStage, stage_from_dict


def stage_of_manifest(manifest: dict[str, Any] | None, where: str) -> ContextStage | None:
    d = (manifest or {}).get("context")
    return None if d is None else stage_from_dict(d, f"{where}: manifest's \"context\"")


def stage_of_artifact(artifact: str | Path) -> ContextStage | None:
    from edgecnn.manifest import read_manifest

    from edgecnn.formats import SUFFIX_RUNTIME

    path = Path(artifact)
    if not path.is_file() or path.suffix not in SUFFIX_RUNTIME:
        what = "a folder" if path.is_dir() else "no such file" if not path.exists() else "not an exported artifact"
        raise FileNotFoundError(f"{artifact}: {what}; pass an exported artifact with its manifest (e.g. "
                                "exported/release/basic_cnn-int8-qat.tflite)")
    return stage_of_manifest(read_manifest(path), str(artifact))


def stage_of_file(path: str | Path) -> ContextStage:
    """A stage from a JSON file: a bare stage, or a manifest that carries one."""
    from edgecnn.fsutil import read_json

    try:
        d = read_json(path)
    except (OSError, ValueError) as e:
        raise ContextError(f"{path}: cannot read a context stage ({e}); pass a JSON file that "
                           "`edgecnn context fit --json` or `context show --json` wrote") from e
    if isinstance(d, dict) and "context" in d and "kind" not in d:
        d = d["context"]
    if not isinstance(d, dict):
        raise ContextError(f"{path}: holds no context stage")
    return stage_from_dict(d, str(path))
