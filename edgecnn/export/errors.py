"""Export errors: every one says what is wrong and how to fix it."""

from __future__ import annotations


class ExportError(RuntimeError):
    """An export cannot be made (bad request, missing input, artifact exists, failed check)."""


class ToolMissing(ExportError):
    """A converter or builder the requested format needs is not installed here (or no GPU)."""
