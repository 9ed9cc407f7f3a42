"""--init-from: a run that starts from another model's weights, on real patches; the checks that
refuse a source of another shape, an exported file, or one that trained on this run's val/test."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgecnn.train.run import RunError
from tests.fixtures_train import TINY, model_card_text


def test_weights_copied_exactly(tiny_run):
    from edgecnn.models import create_model
    from edgecnn.train.warmstart import load_init_weights

    model = create_model("basic_cnn", input_size=50)
    info = load_init_weights(model, str(tiny_run.path))
    source = tiny_run.load_model()
    for mine, theirs in zip(model.get_weights(), source.get_weights()):
        np.testing.assert_array_equal(mine, theirs)
    assert info["path"].endswith("model.keras") and len(info["sha256"]) == 64


def test_refuses_other_shape_and_exported_files(tiny_run, tmp_path):
    from edgecnn.models import create_model
    from edgecnn.train.warmstart import init_source, load_init_weights

    with pytest.raises(RunError, match="--input-size"):
        load_init_weights(create_model("basic_cnn", input_size=64), str(tiny_run.path))
    with pytest.raises(RunError, match="--seed-order"):
        load_init_weights(create_model("basic_cnn", input_size=50, seed_order=True), str(tiny_run.path))
    with pytest.raises(RunError, match="not an exported"):
        init_source(str(tmp_path / "model.tflite"))
    with pytest.raises(RunError, match="no model.keras"):
        init_source(str(tmp_path))


def test_fine_tune_run_starts_where_the_source_ends(tiny_run, idc_data, tmp_path):
    """Same patients and split, a learning rate too small to move anything: the first epoch must
    score what the source scored (a random start would be near 0.5), and config.json says where
    the weights came from."""
    from edgecnn.fsutil import sha256_file
    from edgecnn.train.fit import TrainConfig, train

    cfg = TrainConfig(out=str(tmp_path / "ft"), data=str(idc_data), **dict(TINY, epochs=1, steps_per_epoch=2),
                      lr=1e-9, init_from=str(tiny_run.path))
    run = train(cfg, progress=False)
    source_bac = tiny_run.model_info()["val_balanced_accuracy"]
    assert run.model_info()["val_balanced_accuracy"] == pytest.approx(source_bac, abs=0.02)
    recorded = run.config()["init_from_source"]
    assert recorded["checked"] and recorded["sha256"] == sha256_file(tiny_run.model_path)
    card = model_card_text(run, tmp_path / "card")
    assert f"Started from the weights of `{tiny_run.path.name}/model.keras`" in card
    assert str(tiny_run.path.parent) not in card


def test_refuses_a_source_that_saw_the_validation_patients(tiny_run, idc_data, tmp_path):
    from edgecnn.train.fit import TrainConfig, train

    split = json.loads(tiny_run.split_path.read_text())
    swapped = tmp_path / "swapped.json"
    swapped.write_text(json.dumps(dict(split, train=split["val"], val=split["train"])))
    cfg = TrainConfig(out=str(tmp_path / "leak"), data=str(idc_data), **TINY, split=str(swapped),
                      init_from=str(tiny_run.path))
    with pytest.raises(RunError, match="inflated"):
        train(cfg, progress=False)
    assert not (tmp_path / "leak" / "config.json").exists()
