"""A small-device student: MobileNet-style depthwise-separable blocks after a strided stem.

The Basic CNN spends ~60 M multiply-adds per 50 px tile, most of them in full 3×3 convolutions
at 48×48 and 23×23. Here the first layer halves the resolution at once, and every later 3×3 is
depthwise (9 MACs per pixel and channel) followed by a 1×1 that mixes channels. At width 1.0 a
tile costs ~7 M MACs. Every block is Conv/DepthwiseConv (no activation) → BN → ReLU, which tfmot
folds into fused int8 ops, so QAT and every export path work as for the seed models.
"""

from __future__ import annotations

from edgecnn._tf import keras
from edgecnn.models.layers import BN_MOMENTUM, L

# (stride, output channels at width 1.0) of each depthwise-separable block after the stem.
BLOCKS = ((1, 48), (2, 96), (1, 96), (2, 192), (1, 192))
STEM = 24


def _channels(c: int, width: float) -> int:
    return max(8, int(round(c * width / 8)) * 8)   # multiples of 8 keep int8 kernels vectorised


def _bn_relu(x, name: str):
    x = L.BatchNormalization(momentum=BN_MOMENTUM, name=f"{name}_bn")(x)
    return L.ReLU(name=f"{name}_relu")(x)


def build_mobile_student(input_size: int = 50, width: float = 1.0, dropout: bool = True,
                         seed_order: bool = False):
    if seed_order:
        raise ValueError("mobile_student has no seed layer order (it is not one of the seed's networks); "
                         "train it without --seed-order")
    inputs = keras.Input((input_size, input_size, 3), name="patch")
    x = L.Conv2D(_channels(STEM, width), 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = _bn_relu(x, "stem")
    for i, (stride, c) in enumerate(BLOCKS, start=1):
        x = L.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"block{i}_dw")(x)
        x = _bn_relu(x, f"block{i}_dw")
        x = L.Conv2D(_channels(c, width), 1, use_bias=False, name=f"block{i}_pw")(x)
        x = _bn_relu(x, f"block{i}_pw")
    x = L.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = L.Dropout(0.2, name="pool_drop")(x)
    outputs = L.Dense(2, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name=f"mobile_student_{round(width * 100)}")
