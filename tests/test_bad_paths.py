"""Every command given a missing file, a folder, or a file that is not what it wants: a clear
message naming the path and exit 2 — never a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from edgecnn.cli import app

runner = CliRunner()
REAL_FIELD = "examples/field-14082.png"

# command → argv for a bad path P (data-free where the command allows it).
COMMANDS = {
    "evaluate": lambda p, d: ["evaluate", p, "--data", d],
    "scan --model": lambda p, d: ["scan", REAL_FIELD, "--model", p, "--out", d + "/out"],
    "scan": lambda p, d: ["scan", p, "--out", d + "/out"],
    "export": lambda p, d: ["export", p],
    "quantize": lambda p, d: ["quantize", p],
    "context show": lambda p, d: ["context", "show", p],
    "context fit": lambda p, d: ["context", "fit", p, "--data", d, "--split", "exported/release/split.json"],
    "data info": lambda p, d: ["data", "info", p],
    "tune": lambda p, d: ["tune", p],
    "bench": lambda p, d: ["bench", p, "--data", d + "/patches.npz", "--rounds", "1", "--runs", "5", "--warmup", "1",
                           "--threads", "1"],
}


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    (root / "folder").mkdir()
    (root / "not-a-model.tflite").write_text("hello")
    (root / "notes.txt").write_text("hello")
    import numpy as np

    np.savez(root / "patches.npz", images=np.full((8, 50, 50, 3), 200, np.uint8), labels=np.arange(8) % 2)
    return {"missing": root / "missing.tflite", "folder": root / "folder",
            "not-a-model": root / "not-a-model.tflite", "text": root / "notes.txt", "root": root}


@pytest.mark.parametrize("kind", ["missing", "folder", "not-a-model", "text"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_path_is_a_clear_error(command, kind, bad):
    path = str(bad[kind])
    r = runner.invoke(app, COMMANDS[command](path, str(bad["root"])))
    assert r.exception is None or isinstance(r.exception, SystemExit), f"traceback: {r.exception!r}"
    said = " ".join(r.output.split())
    # bench runs every file it is given as a row of its report: a file without a manifest fails its
    # row and the gate (exit 1), with the reason; every other bad path stops the command (exit 2).
    expected = 1 if (command, kind) == ("bench", "not-a-model") else 2
    assert r.exit_code == expected, said[-500:]
    assert "Traceback" not in said and bad[kind].name in said, said[-500:]
