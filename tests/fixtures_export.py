"""Session fixtures for the quantize/export tests: a private copy of the shared tiny training run
(QAT writes into the run folder, so the shared one stays untouched) and its QAT fine-tune."""

from __future__ import annotations

import shutil

import pytest

from tests.shared import built_once

# limit: above the tiny run's validation size (~230 patches), so QAT picks its threshold on the
# same patches as the float model did; on a 200-patch draw of them it swung from 0.72 to 0.49 and
# the int8-qat artifact's label agreement with the float model fell below the export tests' 0.9.
QAT_QUICK = dict(epochs=1, steps_per_epoch=4, limit=1000, batch_size=32, progress=False)


@pytest.fixture(scope="session")
def export_run(tiny_run, tmp_path_factory):
    """A copy of `tiny_run` (trained basic_cnn on real patients) that export tests may modify."""
    from edgecnn.train.run import RunFolder

    dst = tmp_path_factory.mktemp("export-runs") / tiny_run.path.name
    shutil.copytree(tiny_run.path, dst, ignore=shutil.ignore_patterns("ckpt", "plots"))
    return RunFolder(dst)


@pytest.fixture(scope="session")
def qat_run(export_run):
    """`export_run` after a few QAT steps on its training patients: (RunFolder, qat metrics)."""
    from edgecnn.quantize import quantize_run

    metrics = quantize_run(export_run, **QAT_QUICK)
    return export_run, metrics


@pytest.fixture(scope="session")
def sym_qat_run(tiny_run, tmp_path_factory):
    """A copy of `tiny_run` after QAT with symmetric activation ranges (TensorRT's INT8), shared by
    the quantize and TensorRT tests: copy it before changing it."""
    from edgecnn.quantize import quantize_run
    from edgecnn.train.run import RunFolder

    def build(folder) -> None:
        run = RunFolder(shutil.copytree(tiny_run.path, folder / "run", ignore=shutil.ignore_patterns("ckpt", "plots")))
        quantize_run(run, activations="symmetric", **QAT_QUICK)

    return RunFolder(built_once(tmp_path_factory, "sym-qat", build) / "run")
