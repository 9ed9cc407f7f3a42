"""Multiply-adds per tile of a built Keras model, layer by layer (what the CPU or NPU must do).

Counted for the layers that hold nearly all the work: Conv2D (kh·kw·cin·cout per output pixel),
DepthwiseConv2D (kh·kw per output pixel and channel) and Dense. Pooling, BN (folded into the
convolutions at export) and activations are left out, as in the papers' counts.
"""

from __future__ import annotations

from typing import Any


def layer_macs(layer: Any) -> int:
    kind = type(layer).__name__
    if kind not in ("Conv2D", "DepthwiseConv2D", "Dense"):
        inner = getattr(layer, "layer", None)   # tfmot's QuantizeWrapper around the real layer
        return layer_macs(inner) if inner is not None else 0
    out = layer.output_shape if hasattr(layer, "output_shape") else layer.output.shape
    if isinstance(out, list):
        out = out[0]
    kernel = layer.get_weights()[0].shape if not hasattr(layer, "kernel") else tuple(layer.kernel.shape)
    if kind == "Dense":
        return int(kernel[0]) * int(kernel[1])
    pixels = int(out[1]) * int(out[2])
    if kind == "DepthwiseConv2D":
        return pixels * int(kernel[0]) * int(kernel[1]) * int(kernel[2]) * int(kernel[3])
    return pixels * int(kernel[0]) * int(kernel[1]) * int(kernel[2]) * int(kernel[3])


def count_macs(model: Any) -> int:
    """Multiply-adds for one tile through ``model``."""
    return sum(layer_macs(layer) for layer in model.layers)
