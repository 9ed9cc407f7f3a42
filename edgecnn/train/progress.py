"""A rich progress bar over one epoch's batches, fed by a Keras callback (training and QAT)."""

from __future__ import annotations


class EpochBar:
    def __init__(self, label: str, steps: int, enabled: bool = True):
        from edgecnn._tf import keras

        self.enabled = enabled
        outer = self

        class _CB(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if outer.enabled:
                    outer.progress.update(outer.task, advance=1, loss=float((logs or {}).get("loss", 0.0)))

        self.callback = _CB()
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("loss {task.fields[loss]:.4f}"), TimeRemainingColumn(), transient=True)
            self.task = self.progress.add_task(label, total=steps, loss=0.0)

    def __enter__(self):
        if self.enabled:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.enabled:
            self.progress.__exit__(*exc)
