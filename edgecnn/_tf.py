"""The one place TensorFlow is imported. tfmot needs Keras 2 (tf-keras), so the legacy flag is
set before TensorFlow loads. Modules that run on the device must never import this."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["tf", "keras"]
