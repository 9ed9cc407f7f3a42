"""The one place TensorFlow is imported. tfmot needs Keras 2 (tf-keras), so the legacy flag is
set before TensorFlow loads. Modules that run on the device must never import this.

Logs: TF 2.21's native lines (oneDNN, cudart, cuInit) ignore TF_CPP_MIN_LOG_LEVEL; the CLI hides
them with edgecnn.logfilter (fd level). Its Python-side warnings are hidden here, after import,
because TensorFlow sets up absl logging while it loads; `--verbose` (EDGECNN_VERBOSE=1) keeps them.
"""

import os
import sys

if os.environ.get("TF_USE_LEGACY_KERAS", "1") != "1":
    # Keras 3 would load under the same names and tfmot would fail much later with an obscure error.
    print(f"edgecnn: TF_USE_LEGACY_KERAS={os.environ['TF_USE_LEGACY_KERAS']} replaced by 1: edgecnn's QAT "
          "(tensorflow-model-optimization) needs Keras 2 (tf-keras)", file=sys.stderr)
os.environ["TF_USE_LEGACY_KERAS"] = "1"
if os.environ.get("EDGECNN_VERBOSE") != "1":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

from edgecnn.logfilter import quiet_python_loggers  # noqa: E402

quiet_python_loggers()

__all__ = ["tf", "keras"]
