"""Models trained under a mixed-precision policy (`--mixed-precision on|bf16`) are saved with that
policy in every layer; loading them for QAT, export, evaluation and bench must give float32
compute with the very same weights, or every downstream number would silently be bf16/fp16."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture()
def bf16_run(tmp_path):
    """A run folder holding a Basic CNN built and saved under mixed_bfloat16, as a bf16 training
    run saves it."""
    from edgecnn._tf import keras
    from edgecnn.models.registry import create_model

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = create_model("basic_cnn", input_size=50)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.1, w.shape).astype("float32") for w in model.get_weights()])
    model.save(tmp_path / "model.keras")
    (tmp_path / "model.json").write_text(json.dumps({"model": "basic_cnn", "input_size": 50, "threshold": 0.5,
                                                    "class_names": ["no_idc", "idc"]}))
    return tmp_path, model


def test_mixed_model_loads_as_float32(bf16_run, idc_patches):
    from edgecnn.models.precision import as_float32, is_mixed_precision
    from edgecnn.preprocess import to_float
    from edgecnn.train.run import RunFolder

    path, bf16_model = bf16_run
    assert is_mixed_precision(bf16_model) and bf16_model.layers[1].compute_dtype == "bfloat16"
    loaded = RunFolder(path).load_model()
    assert not is_mixed_precision(loaded)
    assert {layer.compute_dtype for layer in loaded.layers} == {"float32"}
    for a, b in zip(loaded.get_weights(), bf16_model.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = to_float(idc_patches.images[:64])
    p32, p16 = loaded.predict(x, verbose=0), bf16_model.predict(x, verbose=0)
    # Same function, two precisions: close, and not bit-equal (else the copy changed nothing).
    assert np.abs(p32 - p16).max() < 0.05 and not np.array_equal(p32, p16)
    assert as_float32(loaded) is loaded


def test_bad_precision_is_refused(tmp_path):
    from edgecnn.train.fit import TrainConfig

    with pytest.raises(ValueError, match="--mixed-precision must be one of auto, on, bf16, off"):
        TrainConfig(out=str(tmp_path), mixed_precision="fp8").validate()


def test_bf16_training_restores_the_global_policy(tmp_path, idc_data):
    """Keras' compute policy is process-global: after `train --mixed-precision bf16` the caller's
    next model must be float32 again."""
    from edgecnn._tf import keras
    from edgecnn.models.registry import create_model
    from edgecnn.train.fit import TrainConfig, train

    cfg = TrainConfig(out=str(tmp_path / "run"), data=str(idc_data), epochs=1, steps_per_epoch=2, max_patients=8,
                      mixed_precision="bf16")
    run = train(cfg, progress=False)
    assert json.loads(run.config_path.read_text())["mixed_precision"] == "bf16"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert create_model("basic_cnn").layers[1].compute_dtype == "float32"
