"""A progress bar over one epoch's batches, fed by a Keras callback (training and QAT)."""

from __future__ import annotations

from edgecnn.progress import Bar


class EpochBar(Bar):
    def __init__(self, label: str, steps: int, enabled: bool = True):
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

        from edgecnn._tf import keras

        super().__init__(TextColumn(label), BarColumn(), MofNCompleteColumn(),
                         TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn(),
                         total=steps, enabled=enabled, loss=0.0)
        outer = self

        class _CB(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                outer.advance(loss=float((logs or {}).get("loss", 0.0)))

        self.callback = _CB()
