"""Which files are artifacts, and what their manifests say (no TensorFlow)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from edgecnn.bench.data import BenchError
from edgecnn.formats import SUFFIX_RUNTIME, npu_only
from edgecnn.fsutil import read_json
from edgecnn.manifest import ArtifactError, artifact_files, read_manifest

# What an interrupted write leaves: edgecnn.fsutil.atomic_path's ".<stem>.XXXXXXXX<suffix>" (any
# dot-file, also the OpenVINO exporter's), tempfile's default "tmpXXXXXXXX<suffix>", and the usual
# partial-download and editor names.
_TEMP = re.compile(r"^(?:\..*|tmp[a-z0-9_]{6,}\..*|.*(?:\.tmp|\.part|\.partial|~)(?:\..*)?)$", re.IGNORECASE)


def is_temp_file(path: str | Path) -> bool:
    return bool(_TEMP.match(Path(path).name))


def discover_artifacts(paths: Sequence[str | Path] | None, ignored: list[str] | None = None) -> list[Path]:
    """Files given, plus every artifact (known suffix) directly inside a folder given.

    Temporary files in a folder are never artifacts: they are left out and, when ``ignored`` is
    a list, named there so the report can say so.
    """
    if not paths:
        from edgecnn.paths import release_model_dir

        paths = [release_model_dir()]
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found.extend(_in_folder(p, ignored))
        elif p.exists():
            found.append(_one_file(p))
        else:
            raise BenchError(f"{p}: no such file or folder"
                             + ("; the release model is made by `edgecnn export ... --release`" if "release" in str(p) else ""))
    return list(dict.fromkeys(found))


def _in_folder(folder: Path, ignored: list[str] | None) -> list[Path]:
    known = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in SUFFIX_RUNTIME and not npu_only(f))
    temps = [f for f in known if is_temp_file(f)]
    if ignored is not None:
        ignored.extend(str(f) for f in temps)
    inside = [f for f in known if f not in temps]
    if not inside:
        raise BenchError(f"{folder}: no artifacts ({', '.join(sorted(SUFFIX_RUNTIME))}) in this folder"
                         + (f" (only temporary files left by an interrupted write: {', '.join(f.name for f in temps)})"
                            if temps else "") + "; run `edgecnn export` first or pass artifact files")
    return inside


def _one_file(p: Path) -> Path:
    if npu_only(p):
        raise BenchError(f"{p}: compiled by Vela for an Ethos-U NPU; no CPU runtime runs it. Its manifest holds Vela's "
                         "estimates (vela: NPU share, SRAM, flash, ms per tile); bench the int8 TFLite it came from")
    if p.suffix.lower() not in SUFFIX_RUNTIME:
        raise BenchError(f"{p}: not an artifact (known: {', '.join(sorted(SUFFIX_RUNTIME))})")
    if is_temp_file(p):
        raise BenchError(f"{p}: a temporary file left by an interrupted write, not an artifact; delete it and "
                         "re-run `edgecnn export`")
    return p


def recorded_score(metrics: dict[str, Any] | None) -> dict[str, Any] | None:
    """The model's own test score as its export (manifest ``metrics.test``) or training run
    (metrics.json) recorded it: balanced accuracy and the counts its noise follows from."""
    m = (metrics or {}).get("test", metrics) if metrics else None
    if not isinstance(m, dict) or m.get("balanced_accuracy") is None:
        return None
    keep = ("balanced_accuracy", "recall", "specificity", "n_patches", "n_positive")
    return {k: m.get(k) for k in keep}


def describe(path: Path) -> dict[str, Any]:
    try:
        m = read_manifest(path, required=False) or {}
    except ArtifactError:
        m = {}  # unreadable manifest: the row's worker reports the error
    shape = (m.get("input") or {}).get("shape") or []
    files = [f for f in artifact_files(path) if f.exists()]
    return {
        "model": m.get("model", path.stem), "format": m.get("format", path.suffix.lstrip(".")),
        "precision": m.get("precision", "unknown"), "threshold": float(m.get("threshold", 0.5)),
        "input_size": int(shape[1]) if len(shape) == 4 and shape[1] else None,
        "size_bytes": int(m.get("size_bytes") or sum(f.stat().st_size for f in files)),
        "recorded": recorded_score(m.get("metrics")),
        "macs_per_tile": (m.get("compute") or {}).get("macs_per_tile"),
    }


def keras_reference(ref: str | Path) -> dict[str, Any]:
    """The float Keras model of ``--keras-ref`` (run folder or .keras) and what its sidecars say."""
    p = Path(ref).expanduser()
    if p.is_dir():
        model_file, meta_file, cfg_file, metrics_file = (p / "model.keras", p / "model.json", p / "config.json",
                                                         p / "metrics.json")
    elif p.suffix == ".keras":
        # Same sidecar rule as evaluate.keras_threshold: the JSON of the same stem.
        model_file, meta_file, cfg_file, metrics_file = (p, p.with_suffix(".json"), p.with_name("config.json"),
                                                         p.with_name("metrics.json"))
    else:
        raise BenchError(f"--keras-ref {p}: pass a run folder (with model.keras) or a .keras file")
    if not model_file.exists():
        raise BenchError(f"--keras-ref {p}: {model_file.name} not found; train a run first (edgecnn train --out RUN)")
    meta = read_json(meta_file) if meta_file.exists() else {}
    cfg = read_json(cfg_file) if cfg_file.exists() else {}
    recorded = recorded_score(read_json(metrics_file)) if metrics_file.exists() else None
    return {"path": model_file, "model": meta.get("model") or cfg.get("model"), "format": "keras",
            "precision": "fp32", "threshold": meta.get("threshold"),
            "input_size": meta.get("input_size") or cfg.get("input_size"),
            "size_bytes": model_file.stat().st_size, "recorded": recorded}
