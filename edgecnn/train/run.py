"""The run folder: what `edgecnn train` writes and quantize/export/evaluate read.

Layout (see docs/architecture.md):
    config.json  split.json  model.keras  model.json  history.json  metrics.json  plots/  ckpt/  qat/
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgecnn.fsutil import read_json


class RunError(RuntimeError):
    """A run folder is missing something or holds a file that cannot be read."""


@dataclass
class RunFolder:
    path: Path

    def __post_init__(self):
        self.path = Path(self.path)

    # Files -------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def split_path(self) -> Path:
        return self.path / "split.json"

    @property
    def model_path(self) -> Path:
        return self.path / "model.keras"

    @property
    def model_info_path(self) -> Path:
        return self.path / "model.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    @property
    def history_path(self) -> Path:
        return self.path / "history.json"

    @property
    def plots_dir(self) -> Path:
        return self.path / "plots"

    @property
    def ckpt_dir(self) -> Path:
        return self.path / "ckpt"

    @property
    def qat_dir(self) -> Path:
        return self.path / "qat"

    @property
    def qat_model_path(self) -> Path:
        return self.qat_dir / "model.keras"

    @property
    def name(self) -> str:
        return self.path.name

    # Readers -----------------------------------------------------------------------------
    def _json(self, p: Path, what: str) -> Any:
        if not p.exists():
            raise RunError(f"{self.path}: no {p.name} ({what}). Is this a folder made by `edgecnn train`?")
        try:
            return read_json(p)
        except ValueError as e:
            raise RunError(f"{p}: unreadable JSON ({e}); retrain or restore the file") from e

    def config(self) -> dict[str, Any]:
        return self._json(self.config_path, "training configuration")

    def model_info(self) -> dict[str, Any]:
        return self._json(self.model_info_path, "model name, input size and threshold")

    def split(self):
        from edgecnn.data.split import Split

        if not self.split_path.exists():
            raise RunError(f"{self.path}: no split.json (the run's patient split)")
        return Split.load(self.split_path)

    @property
    def threshold(self) -> float:
        return float(self.model_info().get("threshold", 0.5))

    @property
    def model_name(self) -> str:
        return self.model_info()["model"]

    @property
    def input_size(self) -> int:
        return int(self.model_info()["input_size"])

    def require_model(self) -> Path:
        if not self.model_path.exists():
            hint = " Training was interrupted: resume with `edgecnn train --resume --out {}`.".format(self.path) \
                if (self.ckpt_dir / "last.keras").exists() else " Train one with `edgecnn train --out {}`.".format(self.path)
            raise RunError(f"{self.path}: no trained model (model.keras).{hint}")
        return self.model_path

    def qat_ready(self) -> bool:
        """qat/model.keras is a finished `edgecnn quantize` result: qat/model.json, written after it,
        records its sha256. A quantize killed in between leaves a model nothing describes (False);
        a model.json without the field is an older edgecnn's, taken as it is."""
        from edgecnn.fsutil import sha256_file

        info = self.qat_dir / "model.json"
        if not self.qat_model_path.exists() or not info.exists():
            return False
        try:
            sha = read_json(info).get("model_sha256")
        except (OSError, ValueError, AttributeError):
            return False
        return sha is None or sha == sha256_file(self.qat_model_path)

    def require_qat_model(self) -> Path:
        """qat/model.keras if ``qat_ready``, else a RunError saying which command makes it."""
        if not self.qat_model_path.exists():
            raise RunError(f"{self.path}: no QAT model; run `edgecnn quantize {self.path}` first")
        if not self.qat_ready():
            raise RunError(f"{self.qat_model_path} is not a finished QAT model (qat/model.json does not describe it: "
                           f"`edgecnn quantize` was interrupted); finish it with `edgecnn quantize {self.path} --resume`")
        return self.qat_model_path

    def load_model(self, qat: bool = False):
        """Load the float (or QAT) Keras model; a corrupt file gets an error that names it."""
        from edgecnn.models.precision import load_float32

        path = self.require_qat_model() if qat else self.require_model()
        try:
            if qat:
                # Importing the scheme registers the custom QuantizeConfig of seed_order models.
                from edgecnn.quantize.scheme import load_qat_model

                return load_qat_model(path)
            return load_float32(path)
        except Exception as e:  # Keras raises many types for a damaged file
            raise RunError(f"{path}: cannot load the model ({type(e).__name__}: {e}). "
                           "The file is damaged or from another version: retrain, or restore it from a checkpoint.") from e


def is_run_folder(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "config.json").exists()
