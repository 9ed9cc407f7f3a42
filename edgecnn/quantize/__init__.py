"""Quantization-aware training (tfmot).

Names load on first use: `edgecnn.export` reads run data through `edgecnn.quantize.rundata`,
and the TF-free CLI must not pull TensorFlow in by importing this package.
"""

import importlib

_LAZY = {
    "BN_MODES": "edgecnn.quantize.qat", "DEFAULTS": "edgecnn.quantize.qat", "quantize_run": "edgecnn.quantize.qat",
    "load_qat_model": "edgecnn.quantize.scheme", "quantize_keras_model": "edgecnn.quantize.scheme",
    "quantize_scope": "edgecnn.quantize.scheme",
}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edgecnn.quantize' has no attribute {name!r}")
