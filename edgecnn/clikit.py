"""What every `edgecnn` command shares: the error console, `fail`, and `--json FILE|-` output.
No TensorFlow here."""

from __future__ import annotations

import json
import sys
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from edgecnn.fsutil import json_default

# soft_wrap: messages stay on one line, so logs and tests can grep them whatever the terminal width.
err = Console(stderr=True, soft_wrap=True)

JSON_HELP = "Write the result as JSON to FILE, or - for stdout (then stdout holds only the JSON)."
MULTI_DATA_HELP = (" Repeat --data to read several sources as one (e.g. --data idc --data idc-more; a patch in both is"
                   " counted once); $EDGECNN_DATA may list several, separated by ':'.")


def data_spec(values: Optional[list]) -> Optional[str]:
    """Repeated --data values as the one string load_patches and config.json take (None if none)."""
    if not values:
        return None
    from edgecnn.data.sources import join_sources

    return join_sources(values)


def fail(msg: Any, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {escape(str(msg))}", highlight=False)
    raise typer.Exit(code)


def to_jsonable(o: Any) -> Any:
    """numpy values and paths as JSON; anything else as its text (a report must not fail here)."""
    try:
        return json_default(o)
    except TypeError:
        return str(o)


def emit_json(obj: Any, dest: Optional[str]) -> bool:
    """Write ``obj`` as JSON to ``dest`` (a file, atomically) or stdout for ``-``; True if stdout."""
    if dest is None:
        return False
    text = json.dumps(obj, indent=2, default=to_jsonable)
    if dest == "-":
        sys.stdout.write(text + "\n")
        return True
    from edgecnn.fsutil import write_bytes

    write_bytes(dest, (text + "\n").encode())
    err.print(f"JSON written to {dest}")
    return False
