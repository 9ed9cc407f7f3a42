"""``predict_probs``: IDC probabilities of a Keras model, in chunks. Training, evaluation,
warm-start checks, distillation, QAT and export all score a Keras model through it."""

from __future__ import annotations

import numpy as np


def predict_probs(model, images: np.ndarray, batch_size: int = 512, input_size: int | None = None,
                  training: bool = False, tta: bool = False) -> np.ndarray:
    """IDC probabilities of a Keras model (inference mode unless ``training``), in chunks
    (memmaps stay on disk); ``tta``: mean over the 8 dihedral views (edgecnn.tta)."""
    from edgecnn._tf import tf
    from edgecnn.preprocess import to_float

    if tta:
        from edgecnn.tta import tta_predict

        return tta_predict(lambda v: predict_probs(model, v, batch_size, input_size, training), images)
    input_size = input_size or int(model.input_shape[1])
    out = np.empty(len(images), dtype=np.float32)
    for i in range(0, len(images), batch_size):
        x = to_float(np.asarray(images[i:i + batch_size]))
        if x.shape[1] != input_size:
            x = tf.image.resize(x, (input_size, input_size)).numpy()
        out[i:i + batch_size] = model(x, training=training).numpy()[:, 1]
    return out
