"""Session fixtures for the training tests: one tiny real training run shared by every test
that needs a trained model (export, runtime, bench, scan)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.shared import built_once

TINY = dict(model="basic_cnn", epochs=3, batch_size=32, steps_per_epoch=12, max_patients=40, seed=0, patience=5)


@pytest.fixture(scope="session")
def tiny_run(idc_data, tmp_path_factory):
    """A basic_cnn trained for 3×12 steps on 40 real patients (≈20 s on 2 cores), once for all xdist
    workers: read it, or copy it first (`export_run`) to change it."""
    from edgecnn.train.fit import TrainConfig, train
    from edgecnn.train.run import RunFolder

    def build(folder: Path) -> None:
        train(TrainConfig(out=str(folder / "tiny"), data=str(idc_data), **TINY), progress=False)

    return RunFolder(built_once(tmp_path_factory, "runs", build) / "tiny")


def model_card_text(run, out: Path) -> str:
    """The release card that scripts/model_card.py writes for ``run`` (float model not shipped)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("model_card", Path(__file__).parents[1] / "scripts/model_card.py")
    card = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(card)
    out.mkdir()
    card.main(str(run.path), str(out), "--no-keras")
    return (out / "MODEL_CARD.md").read_text()
