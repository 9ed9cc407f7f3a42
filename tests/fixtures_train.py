"""Session fixtures for the training tests: one tiny real training run shared by every test
that needs a trained model (export, runtime, bench, scan)."""

from __future__ import annotations

import pytest

TINY = dict(model="basic_cnn", epochs=3, batch_size=32, steps_per_epoch=12, max_patients=40, seed=0, patience=5)


@pytest.fixture(scope="session")
def tiny_run(idc_data, tmp_path_factory):
    """A basic_cnn trained for 3×12 steps on 40 real patients (≈20 s on 2 cores)."""
    from edgecnn.train.fit import TrainConfig, train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    return train(TrainConfig(out=str(out), data=str(idc_data), **TINY), progress=False)
