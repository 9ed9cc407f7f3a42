"""One rich progress bar for every long task (decoding, epochs, export); no TensorFlow here.

Disabled (``--quiet``, tests, ``--json -``) it is rich's own no-op, so callers never branch.
"""

from __future__ import annotations

from typing import Any


class Bar:
    def __init__(self, *columns: Any, total: int | None, enabled: bool = True, console=None,
                 transient: bool = True, **fields: Any):
        from rich.progress import Progress

        self.progress = Progress(*columns, console=console, transient=transient, disable=not enabled)
        self.task = self.progress.add_task("", total=total, **fields)

    def __enter__(self) -> "Bar":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def advance(self, n: int = 1, **fields: Any) -> None:
        self.progress.update(self.task, advance=n, **fields)

    def describe(self, what: str) -> None:
        self.progress.update(self.task, description=what)
