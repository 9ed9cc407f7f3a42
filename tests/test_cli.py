"""The command line as a newcomer meets it: every command has --help, and the CLI itself never
loads TensorFlow (the device install has none)."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from edgecnn.cli import app

COMMANDS = [["models"], ["train"], ["evaluate"], ["quantize"], ["export"], ["bench"], ["scan"], ["demo"],
            ["data"], ["data", "info"], ["data", "synth"], ["data", "split"], ["data", "mosaic"]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=" ".join)
def test_every_command_has_help(cmd):
    r = CliRunner().invoke(app, [*cmd, "--help"])
    assert r.exit_code == 0, r.output
    assert "Usage" in r.output and len(r.output) > 200


def test_cli_import_and_help_without_tensorflow():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom edgecnn.cli import app\n"
            "r = CliRunner().invoke(app, ['--help'])\nassert r.exit_code == 0\n"
            "assert 'tensorflow' not in sys.modules, 'the CLI imported TensorFlow'\nprint('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_models_json_lists_registry():
    import json

    r = CliRunner().invoke(app, ["models", "--json", "-"])
    assert r.exit_code == 0
    rows = json.loads(r.stdout[r.stdout.index("["):])
    assert {row["name"] for row in rows} == {"basic_cnn", "vgg13"}
    assert {row["seed_params"] for row in rows} == {665_890, 133_055_738}
