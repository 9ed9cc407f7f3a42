"""The README's first command, end to end: `edgecnn demo` on the synthetic stand-in (what a fresh
machine without the real data runs), through every pipeline step."""

import json
import re

import pytest
from typer.testing import CliRunner

from edgecnn.cli import app


@pytest.mark.slow
def test_demo_runs_end_to_end_on_synthetic_data(synth_data, tmp_path):
    out = tmp_path / "demo"
    r = CliRunner().invoke(app, ["demo", "--data", str(synth_data), "--out", str(out), "--epochs", "1", "--quick"])
    assert r.exit_code == 0, r.output[-3000:]
    for f in ("data.json", "train.json", "qat.json", "export.json", "bench.json", "bench.md", "bench.png", "scan.json"):
        assert (out / f).exists(), f
    exported = json.loads((out / "export.json").read_text())
    kinds = {(m["format"], m["precision"]) for m in exported["artifacts"]}
    assert {("tflite", "int8-qat"), ("onnx", "int8-ptq"), ("onnx", "fp32")} <= kinds
    bench = json.loads((out / "bench.json").read_text())
    assert len(bench["rows"]) >= len(exported["artifacts"])
    json.loads((out / "scan.json").read_text(), parse_constant=pytest.fail)      # strict JSON
    # The scanned field of view is a patient with IDC (a blank overlay would show nothing).
    (labels,) = out.glob("mosaic-*.labels.png")
    patient = labels.name[len("mosaic-"):-len(".labels.png")]
    assert any((synth_data / patient / "1").glob("*.png")), f"demo scanned patient {patient}, who has no IDC"
    assert "demo finished" in r.output and str(out / "exported") in r.output
    # Step 0: the committed release model on the real field shipped in examples/ (real tissue, offline).
    real = json.loads((out / "real-field.json").read_text())["images"][0]
    assert real["tissue_tiles"] == 221 and real["context"] and 0 < real["idc_share"] < 1
    assert (out / "real-field" / "field-14082.overlay.png").exists()
    assert "reused" not in r.output

    # Again on the same folder: finished steps are reused, and the demo says so.
    again = CliRunner().invoke(app, ["demo", "--data", str(synth_data), "--out", str(out), "--quick"])
    assert again.exit_code == 0, again.output[-3000:]
    for step in ("0/6 real tissue", "2/6 train", "3/6 quantize", "4/6 export", "5/6 bench", "6/6 scan"):
        assert re.search(rf"{re.escape(step)}.*\(reused\)", again.output), step
