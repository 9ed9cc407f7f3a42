"""An exponential moving average of the trainable weights, the candidate that gets scored.

With ~160 training patients one epoch's weights score a point or two apart on validation from
the next; averaging over the last few hundred steps (Polyak averaging, as timm's ModelEmaV2)
gives a model from the flat middle of that swing, and model selection then compares averages,
not lucky single epochs. BN statistics are re-estimated for the averaged weights before scoring
(see bn.py), so only trainable weights are averaged.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecnn.fsutil import atomic_path


class WeightEMA:
    def __init__(self, model, decay: float, path: Path | None = None):
        from edgecnn._tf import tf

        if not 0.0 < decay < 1.0:
            raise ValueError(f"--ema must be in (0, 1), e.g. 0.999, not {decay}")
        self.model, self.decay, self.path = model, decay, path
        self.updates = 0
        self.shadow = [tf.Variable(w, trainable=False) for w in model.trainable_weights]
        if path is not None and path.exists():
            with np.load(path) as z:
                self.updates = int(z["updates"])
                for i, s in enumerate(self.shadow):
                    s.assign(z[f"w{i}"])
        self._raw: list[np.ndarray] | None = None

    def update(self) -> None:
        # The first updates average over fewer steps (as tf.train.ExponentialMovingAverage's
        # num_updates), so early epochs are not dragged back to the random start.
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for s, w in zip(self.shadow, self.model.trainable_weights):
            s.assign(d * s + (1.0 - d) * w)

    def callback(self):
        from edgecnn._tf import keras

        outer = self

        class _EMA(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                outer.update()

        return _EMA()

    def swap_in(self) -> None:
        """Put the averaged weights into the model (the raw ones are kept for training on)."""
        self._raw = [w.numpy() for w in self.model.trainable_weights]
        for w, s in zip(self.model.trainable_weights, self.shadow):
            w.assign(s)

    def swap_out(self) -> None:
        if self._raw is None:
            raise RuntimeError("swap_out() without swap_in()")
        for w, r in zip(self.model.trainable_weights, self._raw):
            w.assign(r)
        self._raw = None

    def save(self) -> None:
        if self.path is None:
            return
        with atomic_path(self.path) as tmp:
            np.savez(tmp, updates=np.array(self.updates), **{f"w{i}": s.numpy() for i, s in enumerate(self.shadow)})
