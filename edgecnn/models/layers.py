"""The conv block both CNNs share."""

from __future__ import annotations

from edgecnn._tf import keras

L = keras.layers
BN_MOMENTUM = 0.9


def conv_bn_relu(x, filters: int, name: str, padding: str = "same", seed_order: bool = False):
    """Conv → BN → ReLU (quantizes into fused int8 conv), or the seed's Conv(relu) → BN.

    tfmot rejects a BatchNormalization that follows a ReLU, so ``seed_order`` models need a
    custom QuantizeConfig for the standalone BN (see edgecnn.quantize).

    BN momentum is 0.9, not Keras' 0.99, so the moving statistics follow the weights within an
    epoch; training still replaces them by precise statistics after each epoch (train/bn.py).
    """
    if seed_order:
        x = L.Conv2D(filters, 3, padding=padding, activation="relu", name=f"{name}_conv")(x)
        return L.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    x = L.Conv2D(filters, 3, padding=padding, name=f"{name}_conv")(x)
    x = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x)
