"""Float32 copies of models trained under a mixed-precision policy.

A model trained with ``--mixed-precision on|bf16`` is saved with a float16/bfloat16 compute policy
in every layer's config, and Keras restores that policy on load. QAT, TFLite/ONNX export and the
reference scores all expect float32 compute, so Keras files are read with :func:`load_float32`.
"""

from __future__ import annotations

from typing import Any


def _is_mixed(dtype: Any) -> bool:
    return isinstance(dtype, dict) and "mixed" in str(dtype.get("config", {}).get("name", ""))


def is_mixed_precision(model) -> bool:
    return any(_is_mixed(layer.get_config().get("dtype")) for layer in model.layers)


def as_float32(model):
    """The model itself when it computes in float32, else a float32 rebuild with the same weights
    (weights are float32 under every mixed policy, so nothing is rounded)."""
    if not is_mixed_precision(model):
        return model
    config = model.get_config()
    for layer in config["layers"]:
        if _is_mixed(layer["config"].get("dtype")):
            layer["config"]["dtype"] = "float32"
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def load_float32(path):
    """``keras.models.load_model`` (no optimizer) with float32 compute, whatever the training policy.

    Keras' safe mode stays on and no custom objects are registered: a file from elsewhere that
    holds a Lambda layer (Python code) or an unknown class is refused, naming the file."""
    from edgecnn._tf import keras

    try:
        model = keras.models.load_model(path, compile=False, safe_mode=True)
    except (ValueError, TypeError) as e:
        raise ValueError(f"{path}: refused: not a model edgecnn can load safely ({e}). edgecnn loads Keras files "
                         "in safe mode and knows only its own layers; rebuild the model with `edgecnn train`, "
                         "or load it yourself if you trust where it came from") from e
    return as_float32(model)
