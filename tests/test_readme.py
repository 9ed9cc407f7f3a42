"""The README is a newcomer's landing page: short, free of work-log references, and every
`edgecnn …` command it and the docs show exists with the flags shown (checked against `--help`, no data).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgecnn.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_LINES = 200
# References to the project's work log ("issue 12", "session 9", "stop #3") belong nowhere in the docs.
WORKLOG = re.compile(r"\b(issue|session|stop) #?[0-9]+", re.IGNORECASE)
FLAG = re.compile(r"(?<![\w-])--[A-Za-z][\w-]*")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Wide, plain help so that no option name is wrapped or coloured.
HELP_ENV = {"COLUMNS": "240", "TERMINAL_WIDTH": "240", "NO_COLOR": "1", "TERM": "dumb"}


def _docs():
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def test_readme_is_short():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"README.md has {n} lines (at most {MAX_LINES}); move detail into docs/"


@pytest.mark.parametrize("doc", _docs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_worklog_references(doc):
    hits = [f"{doc.name}:{i}: {line.strip()}" for i, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1)
            if WORKLOG.search(line)]
    assert not hits, "work-log references:\n" + "\n".join(hits)


def _edgecnn_lines(text: str) -> list[str]:
    """The `edgecnn …` commands of a page's code: fenced blocks and 4-space-indented ones, shell
    continuations joined, a leading `$ ` and a trailing `  # comment` dropped."""
    out, pending, fenced = [], "", False
    for raw in text.splitlines():
        if re.match(r"^\s*```", raw):
            fenced, pending = not fenced, ""
            continue
        if not (fenced or raw.startswith("    ")):
            pending = ""
            continue
        line = raw.strip().removeprefix("$ ")
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        if line.startswith("edgecnn "):
            out.append(line.split("  #", 1)[0].strip())
    return out


LINES = _edgecnn_lines(README.read_text(encoding="utf-8"))
# Every page's commands, README included: a newcomer copies them from docs/ as well.
PAGE_LINES = [(doc.relative_to(ROOT).as_posix(), line) for doc in _docs()
              for line in _edgecnn_lines(doc.read_text(encoding="utf-8"))]


def test_readme_shows_commands():
    assert len(LINES) >= 10, LINES
    shown = {" ".join(_subcommand(line)[0]) for line in LINES}
    for cmd in ("data info", "train", "evaluate", "quantize", "export", "bench", "scan", "tune", "context fit"):
        assert cmd in shown, f"the README's command block lacks `edgecnn {cmd}`"


def _looks_like_path(word: str) -> bool:
    return any(c in word for c in "/.~$") or word.startswith("-")


def _subcommand(line: str):
    """(leading command words, the line's tokens): the words before the first option or path,
    resolved through the click groups (`data`, `context` have their own subcommands)."""
    words = shlex.split(line)[1:]
    group = typer.main.get_command(app)
    cmd = []
    for w in words:
        commands = getattr(group, "commands", None)   # a group (edgecnn, data, context) has subcommands
        if _looks_like_path(w) or not commands:
            break
        sub = commands.get(w)
        assert sub is not None, f"`edgecnn {' '.join(cmd + [w])}` is not a command (line: {line})"
        cmd.append(w)
        group = sub
    return cmd, words


@pytest.mark.parametrize("page,line", PAGE_LINES)
def test_documented_command_exists_with_its_flags(page, line):
    cmd, _ = _subcommand(line)
    assert cmd, f"no subcommand in {page} line: {line}"
    r = CliRunner().invoke(app, [*cmd, "--help"], env=HELP_ENV)
    assert r.exit_code == 0, f"`edgecnn {' '.join(cmd)} --help` failed:\n{r.output}"
    help_text = ANSI.sub("", r.output)
    known = set(FLAG.findall(help_text))
    missing = [f for f in FLAG.findall(line) if f not in known]
    assert not missing, f"`edgecnn {' '.join(cmd)}` has no {missing} ({page} line: {line})"
