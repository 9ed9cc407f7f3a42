"""The seed's Basic CNN (665,890 parameters at 50×50).

Per block: Conv 'same' + ReLU, Conv 'valid' → BN → ReLU, max-pool, dropout .25.
Blocks of 32, 64, 64 filters take 50×50 to 4×4×64; dense 512, dropout .5, softmax over 2.
"""

from __future__ import annotations

from edgecnn._tf import keras
from edgecnn.models.layers import L, conv_bn_relu


def build_basic_cnn(input_size: int = 50, seed_order: bool = False, dropout: bool = True):
    inputs = keras.Input((input_size, input_size, 3), name="patch")
    x = inputs
    for i, filters in enumerate((32, 64, 64), start=1):
        x = L.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{i}_conv1")(x)
        x = conv_bn_relu(x, filters, name=f"block{i}_2", padding="valid", seed_order=seed_order)
        x = L.MaxPooling2D(2, name=f"block{i}_pool")(x)
        if dropout:
            x = L.Dropout(0.25, name=f"block{i}_drop")(x)
    x = L.Flatten(name="flatten")(x)
    x = L.Dense(512, activation="relu", name="fc1")(x)
    if dropout:
        x = L.Dropout(0.5, name="fc1_drop")(x)
    # float32 output keeps softmax stable under a mixed_float16 policy (GPU training).
    outputs = L.Dense(2, activation="softmax", dtype="float32", name="probs")(x)
    return keras.Model(inputs, outputs, name="basic_cnn_seed_order" if seed_order else "basic_cnn")
