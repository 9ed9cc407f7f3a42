"""The command line as a newcomer meets it: every command has --help, and the CLI itself never
loads TensorFlow (the device install has none)."""

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from edgecnn.cli import app

COMMANDS = [["models"], ["train"], ["evaluate"], ["quantize"], ["export"], ["bench"], ["scan"], ["tune"], ["demo"],
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
    assert {row["name"] for row in rows} == {"basic_cnn", "vgg13", "mobile_student_100", "mobile_student_125"}
    # Only the seed's two networks have a published parameter count.
    assert {row["seed_params"] for row in rows} == {665_890, 133_055_738, None}


def _help(cmd: list[str]) -> str:
    r = CliRunner().invoke(app, [*cmd, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    return r.output


LEAF_COMMANDS = [c for c in COMMANDS if c != ["data"]]


@pytest.mark.parametrize("cmd", LEAF_COMMANDS, ids=" ".join)
def test_every_command_has_an_example_and_the_shared_log_options(cmd):
    out = _help(cmd)
    assert "Example" in out, f"`edgecnn {' '.join(cmd)} --help` shows no example"
    for flag in ("--quiet", "-q", "--verbose", "-v"):
        assert f" {flag} " in out, f"`edgecnn {' '.join(cmd)}` has no {flag}"
    # A flag takes no value: typer 0.2x printed `--force <bool>`, which reads as if it did.
    assert "<bool>" not in out
    # One form per flag: `--force`, not a `--force/--no-force` pair (as --resume everywhere).
    assert "[default: no-" not in out, [line for line in out.splitlines() if "[default: no-" in line]


def test_one_spelling_per_concept():
    """The same concept is the same flag everywhere (the issue's "One CLI")."""
    assert "--official-split" in _help(["train"]) and "--official-split" in _help(["data", "split"])
    for cmd in (["train"], ["quantize"]):
        out = _help(cmd)
        assert " --resume " in out and "--no-resume" not in out
    for cmd in (["quantize"], ["export"]):
        assert " -n " in _help(cmd) and " -b " in _help(cmd)   # --limit -n and --batch-size -b, as in bench/train
    assert "--no-force" not in _help(["export"])


def test_export_help_format_table_is_aligned():
    import re

    from edgecnn.formats import FORMATS

    starts = set()
    for f in FORMATS:
        row = re.search(rf"^( *){re.escape(f.format)}( +){re.escape(f.precision)}( +)\S", _help(["export"]), re.M)
        assert row, f"{f.key} missing from `export --help`"
        indent, gap1, gap2 = (len(g) for g in row.groups())
        # format, precision and description start in the same column on every row
        starts.add((indent, indent + len(f.format) + gap1, indent + len(f.format) + gap1 + len(f.precision) + gap2))
    assert len(starts) == 1, starts


def test_litert_missing_is_an_install_hint_not_tensorflow(tmp_path):
    """The device layer never falls back to TensorFlow's tf.lite: without LiteRT, a clear hint."""
    from pathlib import Path

    model = Path(__file__).resolve().parents[1] / "exported" / "release" / "basic_cnn-int8-qat.tflite"
    code = ("import sys\n"
            "sys.modules['ai_edge_litert'] = None; sys.modules['tflite_runtime'] = None\n"
            "from edgecnn.runtime import load, RuntimeUnavailable, runtime_available\n"
            "assert not runtime_available('litert')\n"
            "try:\n"
            f"    load({str(model)!r})\n"
            "except RuntimeUnavailable as e:\n"
            "    print('HINT', e)\n"
            "assert 'tensorflow' not in sys.modules, 'the device layer imported TensorFlow'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "HINT" in out.stdout and "pip install ai-edge-litert" in out.stdout


def test_json_is_strict_for_a_one_class_patient(idc_data, tmp_path):
    """ROC AUC of a patient with one class is undefined: --json writes null, never NaN."""
    import json
    import shutil
    from pathlib import Path

    release = Path(__file__).resolve().parents[1] / "exported" / "release"
    patient = next(p for p in sorted(idc_data.iterdir()) if p.is_dir() and any(p.glob("0/*.png")))
    dest = tmp_path / "one-class" / patient.name / "0"
    dest.mkdir(parents=True)
    for f in sorted(patient.glob("0/*.png"))[:40]:
        shutil.copy(f, dest / f.name)
    out = tmp_path / "m.json"
    r = CliRunner().invoke(app, ["evaluate", str(release / "basic_cnn-int8-qat.tflite"), "--data",
                                 str(tmp_path / "one-class"), "--json", str(out), "--quiet"])
    assert r.exit_code == 0, r.output

    def no_constants(name):
        raise AssertionError(f"non-standard JSON constant {name} in {out}")

    doc = json.loads(out.read_text(), parse_constant=no_constants)
    assert doc["roc_auc"] is None and doc["n_patients"] == 1


def test_emit_json_and_write_json_share_one_strict_path(tmp_path, capsys):
    import json

    import numpy as np

    from edgecnn.clikit import emit_json
    from edgecnn.fsutil import read_json, write_json

    obj = {"nan": float("nan"), "inf": [float("inf"), -np.inf], "np": np.float32("nan"), "ok": np.arange(2),
           "nested": {"x": (1.5, float("-inf"))}}
    want = {"nan": None, "inf": [None, None], "np": None, "ok": [0, 1], "nested": {"x": [1.5, None]}}
    assert read_json(write_json(tmp_path / "a.json", obj)) == want
    emit_json(obj, "-")
    assert json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(c)) == want
    emit_json(obj, str(tmp_path / "b.json"))
    assert "NaN" not in (tmp_path / "b.json").read_text() and read_json(tmp_path / "b.json") == want
