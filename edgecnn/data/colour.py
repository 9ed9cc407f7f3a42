"""The colour augmentation's ranges and the H&E stain matrices, shared by the tf.data pipeline
and edgecnn.torchtrain's PyTorch augmentation (so neither copy can drift); no TensorFlow here."""

from __future__ import annotations

import numpy as np

BRIGHTNESS = 0.05      # additive, in [0, 1] units
CONTRAST = 0.10        # factor in [1 - c, 1 + c]
SATURATION = 0.10      # factor in [1 - s, 1 + s]
HUE = 0.02             # shift in turns of the colour wheel

# Ruifrok & Johnston's H&E-DAB stain vectors (as in scikit-image's rgb_from_hed), rows normalised.
RGB_FROM_HED = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]])
RGB_FROM_HED = RGB_FROM_HED / np.linalg.norm(RGB_FROM_HED, axis=1, keepdims=True)
HED_FROM_RGB = np.linalg.inv(RGB_FROM_HED)
OD_FLOOR = 1.0 / 255.0   # a black pixel's optical density stays finite
