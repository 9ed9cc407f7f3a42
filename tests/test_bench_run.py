"""edgecnn.bench: run_bench rows on real artifacts, the accuracy gate, reports and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from edgecnn.bench import BenchError, Latency, apply_gate, discover_artifacts, measure_latency, run_bench
from edgecnn.bench.cli import bench
from edgecnn.manifest import manifest_path, new_manifest, write_manifest
from edgecnn.metrics import binary_metrics
from edgecnn.runtime import load

ROW_KEYS = {"artifact", "format", "precision", "runtime", "threads", "batch", "accuracy", "balanced_accuracy", "f1",
            "roc_auc", "agreement", "max_abs_dp", "latency_ms", "throughput_per_s", "peak_rss_mb", "size_bytes",
            "load_s", "passed_gate", "gate_reason"}
FAST = dict(threads=[1], runs=50, warmup=5, budget_s=5.0, throughput_s=0.2, batches=(1, 32))


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(bench)
    return app


def test_latency_stats():
    lat = Latency.from_samples(np.arange(1, 101, dtype=float))
    assert (lat.p50, lat.min, lat.max, lat.n) == (50.5, 1.0, 100.0, 100)
    assert lat.p90 == pytest.approx(90.1) and lat.p99 == pytest.approx(99.01) and lat.mean == 50.5
    assert lat.stdev == pytest.approx(np.std(np.arange(1, 101), ddof=1))
    # A zero time budget still takes the 100 samples a p99 needs.
    assert measure_latency(lambda: None, runs=1000, warmup=0, budget_s=1e-9).n == 100
    assert measure_latency(lambda: None, runs=30, warmup=0, budget_s=1e-9).n == 30
    with pytest.raises(ValueError):
        Latency.from_samples([])


def test_run_bench_rows(rt_artifacts, rt_patches, tmp_path):
    # A TensorRT engine beside them: a counted skip when tensorrt is missing, not a crash.
    d = tmp_path / "exported"
    d.mkdir()
    for key in ("tflite_int8", "onnx_fp32"):
        for f in (Path(rt_artifacts[key]), manifest_path(rt_artifacts[key])):
            shutil.copy(f, d / f.name)
    engine = d / "basic_cnn-fp16.engine"
    engine.write_bytes(b"engine bytes")
    write_manifest(engine, new_manifest(model="basic_cnn", fmt="trt", precision="fp16", input_shape=[None, 50, 50, 3]))
    x, y = rt_patches["eval_x"], rt_patches["eval_y"]
    seen = []
    res = run_bench([d], (x, y), runtimes=["litert", "onnxruntime", "tensorrt"], min_bac=0.0, max_drop=1.0,
                    progress=lambda i, n, label: seen.append((i, n)), **FAST)

    assert {"machine", "rows", "skipped", "failures", "passed", "data", "config"} <= set(res)
    assert {"cpu", "logical_cores", "isa", "versions"} <= set(res["machine"])
    assert res["machine"]["versions"]["onnxruntime"]
    rows = {Path(r["artifact"]).name: r for r in res["rows"]}
    assert set(rows) == {"basic_cnn-int8-ptq.tflite", "basic_cnn-fp32.onnx"}
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        assert [s["runtime"] for s in res["skipped"]] == ["tensorrt"]
        assert "pip install edgecnn[trt]" in res["skipped"][0]["reason"]
    assert seen[0] == (0, 2) and seen[-1] == (2, 2)
    for r in rows.values():
        assert ROW_KEYS <= set(r), ROW_KEYS - set(r)
        assert r["error"] is None and r["passed_gate"] is True and r["threads"] == 1 and r["batch"] == 32
        lat = r["latency_ms"]
        assert lat["n"] == 50 and 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert r["throughput_per_s"] > 0 and r["load_s"] > 0
        assert r["peak_rss_mb"] > r["model_rss_mb"] > 0
        assert r["size_bytes"] == Path(r["artifact"]).stat().st_size
        # Metrics are those of the artifact itself at its manifest threshold.
        with load(r["artifact"]) as b:
            m = binary_metrics(y, b.predict(x), b.threshold)
        assert r["balanced_accuracy"] == pytest.approx(m["balanced_accuracy"], abs=1e-9)
        assert r["roc_auc"] == pytest.approx(m["roc_auc"], abs=1e-9)
    fp32, int8 = rows["basic_cnn-fp32.onnx"], rows["basic_cnn-int8-ptq.tflite"]
    assert fp32["agreement"] == 1.0 and fp32["max_abs_dp"] == 0.0
    assert "basic_cnn-fp32.onnx" in int8["reference"]
    assert int8["agreement"] >= 0.9 and 0 < int8["max_abs_dp"] < 0.05
    assert int8["bac_drop"] == pytest.approx(fp32["balanced_accuracy"] - int8["balanced_accuracy"])


def test_gate_rules():
    rows = [
        {"artifact": "a.onnx", "runtime": "onnxruntime", "threads": 1, "balanced_accuracy": 0.90, "bac_drop": 0.0,
         "reference": "a.onnx"},
        {"artifact": "b.tflite", "runtime": "litert", "threads": 1, "balanced_accuracy": 0.87, "bac_drop": 0.03,
         "reference": "a.onnx"},
        {"artifact": "c.tflite", "runtime": "litert", "threads": 2, "balanced_accuracy": 0.80, "bac_drop": None},
        {"artifact": "d.onnx", "runtime": "openvino", "threads": 1, "error": "ArtifactError: sha256"},
    ]
    failures = apply_gate(rows, min_bac=0.84, max_drop=0.01)
    assert [r["passed_gate"] for r in rows] == [True, False, False, False]
    assert "drop 0.0300" in rows[1]["gate_reason"] and "--max-drop 0.01" in rows[1]["gate_reason"]
    assert "0.8000 < --min-bac 0.84" in rows[2]["gate_reason"]
    assert rows[3]["gate_reason"].startswith("error: ArtifactError")
    assert len(failures) == 3 and failures[0].startswith("b.tflite [litert, threads=1]")


def test_tampered_artifact_is_a_failed_row(rt_artifacts, rt_patches, tmp_path):
    f = tmp_path / Path(rt_artifacts["onnx_fp32"]).name
    shutil.copy(rt_artifacts["onnx_fp32"], f)
    shutil.copy(manifest_path(rt_artifacts["onnx_fp32"]), manifest_path(f))
    data = bytearray(f.read_bytes())
    data[-10] ^= 0xFF
    f.write_bytes(bytes(data))
    res = run_bench([f], (rt_patches["eval_x"], rt_patches["eval_y"]), runtimes=["onnxruntime"], min_bac=0.0, **FAST)
    (row,) = res["rows"]
    assert "sha256" in row["error"] and row["passed_gate"] is False and not res["passed"]


def test_discover_errors(tmp_path, monkeypatch):
    with pytest.raises(BenchError, match="no artifacts"):
        discover_artifacts([tmp_path])
    monkeypatch.setenv("EDGECNN_RELEASE_DIR", str(tmp_path / "release"))
    with pytest.raises(BenchError, match="release"):
        discover_artifacts(None)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BenchError, match="not an artifact"):
        discover_artifacts([tmp_path / "notes.txt"])


def test_cli_gate_failure_exits_1_and_writes_reports(rt_artifacts, idc_data, idc_patches, tmp_path):
    out = tmp_path / "r"
    args = [str(rt_artifacts["tflite_int8"]), str(rt_artifacts["onnx_fp32"]), "--data", str(idc_data),
            "--limit", "300", "--runtimes", "litert,onnxruntime", "--runs", "50", "--warmup", "5", "--threads", "1", "--batch", "1,16",
            "--min-bac", "1.01", "--json", f"{out}.json", "--md", f"{out}.md", "--plot", f"{out}.png", "-q"]
    r = CliRunner().invoke(_app(), args)
    assert r.exit_code == 1, r.output
    assert "gate failed" in r.output and "basic_cnn-int8-ptq.tflite [litert, threads=1]" in r.output
    res = json.loads(Path(f"{out}.json").read_text())
    assert res["passed"] is False and res["data"]["n_patches"] == 300 and len(res["rows"]) == 2
    assert all(ROW_KEYS <= set(row) and row["passed_gate"] is False for row in res["rows"])
    assert all("< --min-bac 1.01" in row["gate_reason"] for row in res["rows"])
    md = Path(f"{out}.md").read_text()
    assert "| artifact | runtime |" in md and "basic_cnn-fp32.onnx" in md and "## Gate failures" in md
    from PIL import Image

    with Image.open(f"{out}.png") as im:
        assert im.format == "PNG" and im.size[0] > 300


def test_cli_keras_reference_and_json_stdout(rt_artifacts, rt_patches, tmp_path):
    npz = tmp_path / "eval.npz"
    np.savez(npz, images=rt_patches["eval_x"][:128], labels=rt_patches["eval_y"][:128])
    args = [str(rt_artifacts["tflite_int8"]), "--data", str(npz), "--keras-ref", str(rt_artifacts["keras"]),
            "--runs", "20", "--warmup", "2", "--threads", "1", "--batch", "1,16", "--min-bac", "0",
            "--max-drop", "1", "--json", "-"]
    r = CliRunner().invoke(_app(), args)
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    keras_row, int8 = res["rows"]
    assert keras_row["runtime"] == "keras" and keras_row["error"] is None
    assert keras_row["latency_ms"]["n"] == 20 and keras_row["threshold"] == pytest.approx(rt_artifacts["threshold"])
    assert "keras" in int8["reference"] and int8["agreement"] >= 0.9 and int8["max_abs_dp"] < 0.05
    assert res["passed"] is True


def test_cli_bad_input_exits_2(tmp_path):
    r = CliRunner().invoke(_app(), [str(tmp_path), "--data", str(tmp_path / "none")])
    assert r.exit_code == 2 and "no artifacts" in r.output
