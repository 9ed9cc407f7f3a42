"""The quantize/export command functions as the main app registers them."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def app():
    import typer

    from edgecnn.export.cli import export, quantize

    a = typer.Typer()
    a.command("quantize")(quantize)
    a.command("export")(export)
    return a


def test_help_explains_commands(app):
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["export", "--help"])
    assert r.exit_code == 0 and "--precision" in r.output and "int8-qat" in r.output
    r = CliRunner().invoke(app, ["quantize", "--help"])
    assert r.exit_code == 0 and "--epochs" in r.output and "--json" in r.output


def test_export_json_and_bad_format(app, export_run, tmp_path):
    from typer.testing import CliRunner

    r = CliRunner().invoke(app, ["export", str(export_run.path), "--format", "tflite", "--precision", "fp32",
                                 "--out", str(tmp_path), "--limit", "50", "--json", "-"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["artifacts"][0]["file"] == "basic_cnn-fp32.tflite" and doc["skipped"] == []
    r = CliRunner().invoke(app, ["export", str(export_run.path), "--format", "coreml"])
    assert r.exit_code == 2 and "unknown format" in r.output


def test_a_file_exports_only_to_vela(app, monkeypatch):
    """A shipped TFLite is a starting point for the NPU file only; other formats need the run."""
    from typer.testing import CliRunner

    from edgecnn.paths import release_model_dir

    art = str(release_model_dir() / "basic_cnn-int8-qat.tflite")
    r = CliRunner().invoke(app, ["export", art, "--format", "onnx"])
    assert r.exit_code == 2 and "only --format vela" in r.output and "RUN folder" in r.output
    monkeypatch.delenv("EDGECNN_DATA", raising=False)
    r = CliRunner().invoke(app, ["export", art, "--format", "vela"])
    assert r.exit_code == 2 and "--data is needed" in r.output, r.output
