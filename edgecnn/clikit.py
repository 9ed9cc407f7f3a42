"""What every `edgecnn` command shares: the error console, `fail`, `--json FILE|-` output (strict
JSON), and the `--quiet` / `--verbose` options. No TensorFlow here."""

from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer
from rich.console import Console
from rich.markup import escape

from edgecnn.fsutil import dumps_strict, json_default

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
    text = dumps_strict(obj, to_jsonable)
    if dest == "-":
        sys.stdout.write(text + "\n")
        return True
    from edgecnn.fsutil import write_bytes

    write_bytes(dest, (text + "\n").encode())
    err.print(f"JSON written to {dest}")
    return False


QUIET_HELP = "No progress bars or progress messages; results, warnings and errors still print."
VERBOSE_HELP = "Also show TensorFlow's, the converters' and the runtimes' own log lines (hidden by default)."


def _verbose(value: bool) -> bool:
    # A callback, so it acts while the options are parsed: before the command imports TensorFlow.
    if value:
        from edgecnn import logfilter

        logfilter.set_verbose()
    return value


# Shared options: `quiet: Quiet = False, verbose: Verbose = False` in any command's signature.
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help=QUIET_HELP)]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP, callback=_verbose)]


def quiet_logs() -> None:
    """Hide TensorFlow's and LiteRT's native log lines for this process (the app callback calls it)."""
    from edgecnn import logfilter

    logfilter.install()


def _hide_flag_types() -> None:
    """typer 0.2x's rich help prints `<bool>` beside every flag (`--force <bool>`), which reads as if
    the flag took a value. Flags take none: show no type for them."""
    from typer.core import TyperOption

    if getattr(TyperOption.display_type_rich, "_edgecnn", False):
        return
    shown = TyperOption.display_type_rich

    def display_type_rich(self, ctx):
        if self.is_flag and self.metavar is None:
            return None
        return shown(self, ctx)

    display_type_rich._edgecnn = True
    TyperOption.display_type_rich = display_type_rich


_hide_flag_types()


def int_list(text: Optional[str], opt: str) -> Optional[list[int]]:
    """A comma list of positive integers (`--threads 1,2`), or None when the option was not given."""
    if text is None:
        return None
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{opt} takes comma-separated integers, e.g. 1,2; got {text!r}") from None
    if not vals or min(vals) < 1:
        raise typer.BadParameter(f"{opt} takes positive integers; got {text!r}")
    return vals
