"""Session fixtures for the data tests (and anyone who needs patches)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def idc_patches(idc_data):
    """All real patches (border="pad"), decoded once per session into the session cache."""
    from edgecnn.data import load_patches

    return load_patches(idc_data)


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory):
    """A small synthetic Kaggle-layout folder (12 patients x 40 patches), made once per session."""
    from edgecnn.data.synth import make_synthetic

    return make_synthetic(tmp_path_factory.mktemp("synth") / "idc-synthetic", patients=12, patches_per_patient=40, seed=0)
