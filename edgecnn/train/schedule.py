"""Learning-rate schedules for the epoch loop.

``plateau`` (halve after a few epochs without a validation gain) reacts to a validation score
that swings by a point or two between epochs on a few dozen patients, so its decay points are
partly noise. ``cosine`` decays on a fixed curve from a short linear warm-up to zero at the last
epoch, per step; it depends only on the step number, so a resumed run continues on the same curve.
"""

from __future__ import annotations

import math

SCHEDULES = ("plateau", "cosine")


def cosine_lr(base: float, step: int, total_steps: int, warmup_steps: int = 0) -> float:
    """Linear warm-up to ``base`` over ``warmup_steps``, then half a cosine down to 0 at ``total_steps``."""
    if warmup_steps and step < warmup_steps:
        return base * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / span)
    return base * 0.5 * (1.0 + math.cos(math.pi * t))


def cosine_callback(model, base: float, epoch: int, steps: int, epochs: int, warmup_epochs: int = 1):
    """A Keras callback that sets the optimizer's learning rate before every batch of ``epoch``."""
    from edgecnn._tf import keras

    total, warm = epochs * steps, min(warmup_epochs, max(0, epochs - 1)) * steps

    class _Cosine(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            keras.backend.set_value(model.optimizer.learning_rate, cosine_lr(base, epoch * steps + batch, total, warm))

    return _Cosine()
