"""Precise BatchNorm statistics.

Both CNNs put dropout in front of BatchNorm, so the moving statistics gathered during training
see dropped-out activations (and augmented colours) that inference never sees: the "variance
shift" of Li et al. 2019. On the shared data that swung validation AUC between 0.66 and 0.88 from
epoch to epoch. Re-estimating the statistics on clean training patches with dropout off, after
every epoch and before the model is scored or saved, removes the swing.
"""

from __future__ import annotations

import numpy as np


def inner_layers(model, kind) -> list:
    """Layers of ``kind``, looking inside wrappers (tfmot's QuantizeWrapper keeps it at ``.layer``)."""
    return [getattr(l, "layer", l) for l in model.layers if isinstance(getattr(l, "layer", l), kind)]


def set_dropout(model, rates: list[float] | float) -> list[float]:
    """Set every Dropout rate (eager calls read it each time); returns the old rates."""
    from edgecnn._tf import keras

    drops = inner_layers(model, keras.layers.Dropout)
    old = [d.rate for d in drops]
    for d, r in zip(drops, rates if isinstance(rates, list) else [rates] * len(drops)):
        d.rate = r
    return old


def recompute_bn_statistics(model, images: np.ndarray, max_patches: int = 4096, batch_size: int = 128,
                            seed: int = 0, input_size: int | None = None) -> int:
    """Replace BN moving mean/variance by their plain average over clean training batches.

    Setting momentum to 1 - 1/k at batch k turns Keras' exponential average into a cumulative
    mean. Returns the number of batches used (0 when the model has no BatchNorm).
    """
    from edgecnn._tf import keras, tf
    from edgecnn.preprocess import to_float

    bns = inner_layers(model, keras.layers.BatchNormalization)
    if not bns or len(images) == 0:
        return 0
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(images), size=min(max_patches, len(images)), replace=False))
    input_size = input_size or int(model.input_shape[1])
    moms = [bn.momentum for bn in bns]
    old = set_dropout(model, 0.0)
    k = 0
    try:
        for k, i in enumerate(range(0, len(idx), batch_size), start=1):
            for bn in bns:
                bn.momentum = 1.0 - 1.0 / k
            x = to_float(np.asarray(images[idx[i:i + batch_size]]))
            if x.shape[1] != input_size:
                x = tf.image.resize(x, (input_size, input_size))
            model(x, training=True)
    finally:
        for bn, m in zip(bns, moms):
            bn.momentum = m
        set_dropout(model, old)
    return k
