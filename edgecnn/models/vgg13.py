"""The seed's VGG13 with BatchNorm: 5 blocks of two 3×3 'same' convs (64, 128, 256, 512, 512),
BN after each block's second conv, max-pool, dropout .25; dense 4096, 4096, 1000 (dropout .5),
softmax over 2. At 224×224 that is 133,055,738 parameters; the dense head shrinks with the input.
"""

from __future__ import annotations

from edgecnn._tf import keras, tf
from edgecnn.models.layers import L, conv_bn_relu

CPU_INPUT_SIZE = 50     # the patches' native size: upscaling adds pixels, not information
GPU_INPUT_SIZE = 224    # the seed's size (ImageNet's), for GPU users who want to reproduce it


def default_input_size() -> int:
    """224 as in the seed where TensorFlow sees a GPU; the native 50 on CPU (224 is ~2.7 h/epoch on 2 cores)."""
    return GPU_INPUT_SIZE if tf.config.list_physical_devices("GPU") else CPU_INPUT_SIZE


def build_vgg13(input_size: int | None = None, seed_order: bool = False, dropout: bool = True):
    input_size = input_size or default_input_size()
    if input_size < 32:
        raise ValueError(f"vgg13 needs an input of at least 32 px (five 2× poolings); got {input_size}")
    inputs = keras.Input((input_size, input_size, 3), name="patch")
    x = inputs
    for i, filters in enumerate((64, 128, 256, 512, 512), start=1):
        x = L.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{i}_conv1")(x)
        x = conv_bn_relu(x, filters, name=f"block{i}_2", padding="same", seed_order=seed_order)
        x = L.MaxPooling2D(2, name=f"block{i}_pool")(x)
        if dropout:
            x = L.Dropout(0.25, name=f"block{i}_drop")(x)
    x = L.Flatten(name="flatten")(x)
    for j, units in enumerate((4096, 4096, 1000), start=1):
        x = L.Dense(units, activation="relu", name=f"fc{j}")(x)
        if dropout:
            x = L.Dropout(0.5, name=f"fc{j}_drop")(x)
    # float32 output keeps softmax stable under a mixed_float16 policy (GPU training).
    outputs = L.Dense(2, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name="vgg13_seed_order" if seed_order else "vgg13")
