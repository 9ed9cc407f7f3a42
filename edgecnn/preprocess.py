"""The model's input contract, shared by training, export and every runtime.

Models take float32 RGB in [0, 1] (uint8 / 255), NHWC. Keeping the scaling outside the graph
lets an int8 model take raw uint8 pixels: with input scale 1/255 and zero point -128 the
quantized input is just ``pixel - 128``.
"""

from __future__ import annotations

import numpy as np

SCALE = 1.0 / 255.0
OFFSET = 0.0

PREPROCESSING = {
    "input": "RGB uint8 patches, NHWC",
    "scale": SCALE,
    "offset": OFFSET,
    "formula": "x = pixel * scale + offset",
}


def to_float(patches: np.ndarray) -> np.ndarray:
    return patches.astype(np.float32) * np.float32(SCALE) + np.float32(OFFSET)
