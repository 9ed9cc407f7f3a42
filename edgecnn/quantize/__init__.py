"""Quantization-aware training (tfmot). Imports TensorFlow."""

from edgecnn.quantize.qat import BN_MODES, DEFAULTS, quantize_run
from edgecnn.quantize.scheme import load_qat_model, quantize_keras_model, quantize_scope

__all__ = ["BN_MODES", "DEFAULTS", "load_qat_model", "quantize_keras_model", "quantize_run", "quantize_scope"]
