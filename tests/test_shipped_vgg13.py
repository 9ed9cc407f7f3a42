"""The VGG13 release (exported/vgg13): a pure int8 graph at 50 px that loads with its checked
sha256, and on the real test patients passes the bench gate against its own recorded score.
The 32.5 MB file is in git; a clone without it (e.g. fetched without large files) skips with
the command that rebuilds it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgecnn.bench.cli import bench
from edgecnn.manifest import read_manifest

SHIPPED = Path(__file__).resolve().parents[1] / "exported" / "vgg13"
ARTIFACT = SHIPPED / "vgg13-int8-qat.tflite"

pytestmark = pytest.mark.skipif(not ARTIFACT.exists(), reason=f"no {ARTIFACT.name} in {SHIPPED} : `MODEL=vgg13 make release` rebuilds it")


def test_vgg13_artifact_is_pure_int8_at_50_px():
    m = read_manifest(ARTIFACT)
    assert m["model"] == "vgg13" and m["precision"] == "int8-qat"
    assert m["integer_only"] and m["float_ops"] == []
    assert list(m["input"]["shape"])[1:] == [50, 50, 3]
    assert 20e6 < m["size_bytes"] == ARTIFACT.stat().st_size < 40e6
    assert m["source"]["split"]["file"] == "split.json" and (SHIPPED / "split.json").exists()


def test_vgg13_on_the_test_patients_passes_its_gate(idc_data, tmp_path):
    app = typer.Typer()
    app.command()(bench)
    out = tmp_path / "bench.json"
    r = CliRunner().invoke(app, [str(SHIPPED), "--data", str(idc_data), "--split", str(SHIPPED / "split.json"),
                                 "--threads", "2", "--rounds", "1", "--runs", "20", "--warmup", "3",
                                 "--batch-sizes", "1", "--budget", "3", "--json", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    rows = json.loads(out.read_text())["rows"]
    assert [Path(row["artifact"]).name for row in rows] == [ARTIFACT.name]
    row = rows[0]
    assert row["passed_gate"], row["gate_reason"]
    assert row["balanced_accuracy"] > 0.8 and row["roc_auc"] > 0.85
    assert not row["tf_imported"]
