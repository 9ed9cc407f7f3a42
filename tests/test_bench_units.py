"""edgecnn.bench pieces that need no model: round statistics, temp files, the gate rules, the
terminal table at 80 and 100 columns, Markdown, strict JSON, the plot and the data sources."""

from __future__ import annotations

import json
import math
import os
import statistics

import numpy as np
import pytest
from rich.console import Console

from edgecnn.bench import BenchError, Latency, apply_gate, discover_artifacts, load_eval_data, measure_latency
from edgecnn.bench.gate import bac_se, expected_floor, pick_reference
from edgecnn.bench.latency import spread_pct, summarize_rounds
from edgecnn.bench.report import markdown, print_table, report_json, write_plot
from edgecnn.fsutil import atomic_path, dumps_strict


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


def test_rounds_summary_is_robust_to_one_disturbed_round():
    rng = np.random.default_rng(0)
    calm = [list(1.0 + 0.01 * rng.standard_normal(200)) for _ in range(4)]
    disturbed = list(3.0 + 0.01 * rng.standard_normal(200))   # a neighbour took the CPU for one round
    s = summarize_rounds(calm[:2] + [disturbed] + calm[2:])
    assert s["rounds"] == 5 and s["n"] == 1000 and len(s["p50_rounds"]) == 5
    assert s["p50"] == pytest.approx(statistics.median(s["p50_rounds"]))
    assert abs(s["p50"] - 1.0) < 0.01                  # the median of medians ignores the bad round
    assert s["p50_pooled"] > s["p50"] and s["p99"] > 2.9  # the tail does show it
    assert s["p50_spread_pct"] == pytest.approx(100 * (max(s["p50_rounds"]) - min(s["p50_rounds"])) / 2 / s["p50"])
    assert spread_pct([1.0]) is None and spread_pct([1.0, 1.2, 1.1]) == pytest.approx(100 * 0.1 / 1.1)


def test_temp_files_of_an_interrupted_write_are_never_artifacts(tmp_path):
    real = tmp_path / "basic_cnn-fp32.onnx"
    real.write_bytes(b"model")
    (tmp_path / "tmpk2j3h4ab.tflite").write_bytes(b"half")
    # The exact temp name fsutil's atomic writes use, while the write is in progress (as if killed now).
    with atomic_path(tmp_path / "basic_cnn-int8-ptq.onnx") as tmp:
        tmp.write_bytes(b"half written")
        assert tmp.name.startswith(".") and tmp.suffix == ".onnx"
        ignored: list[str] = []
        assert discover_artifacts([tmp_path], ignored) == [real]
        assert sorted(os.path.basename(f) for f in ignored) == sorted([tmp.name, "tmpk2j3h4ab.tflite"])
        with pytest.raises(BenchError, match="temporary file"):
            discover_artifacts([tmp])
        real.unlink()
        with pytest.raises(BenchError, match="interrupted write"):
            discover_artifacts([tmp_path])


def test_discover_errors(tmp_path, monkeypatch):
    with pytest.raises(BenchError, match="no artifacts"):
        discover_artifacts([tmp_path])
    monkeypatch.setenv("EDGECNN_RELEASE_DIR", str(tmp_path / "release"))
    with pytest.raises(BenchError, match="release"):
        discover_artifacts(None)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(BenchError, match="not an artifact"):
        discover_artifacts([tmp_path / "notes.txt"])


def _row(name, runtime="onnxruntime", precision="fp32", threads=1, model="m", tta=False, **kw):
    fmt = name.rsplit(".", 1)[-1]
    return {"artifact": f"/x/{name}", "name": name, "runtime": runtime, "precision": precision, "threads": threads,
            "model": model, "format": fmt, "tta": tta, "threshold": 0.5, **kw}


def test_the_fp32_row_is_never_its_own_reference():
    rows = [_row("m-fp32.onnx", threads=1), _row("m-fp32.onnx", threads=2), _row("m-int8.onnx", precision="int8"),
            _row("m-fp32.onnx", runtime="openvino"), _row("m-fp32.onnx", tta=True)]
    scored = set(range(len(rows)))
    assert pick_reference(0, rows, scored) == 3 and pick_reference(1, rows, scored) == 3  # another runtime
    assert pick_reference(3, rows, scored) == 0
    assert pick_reference(2, rows, scored) == 0          # int8: the fp32 on its default runtime, same threads
    assert pick_reference(4, rows, scored) == 0          # a TTA row is compared, never a reference
    alone = rows[:2]
    assert pick_reference(0, alone, {0, 1}) is None and pick_reference(1, alone, {0, 1}) is None
    keras = [_row("model.keras", runtime="keras", model=None, threads=None)] + rows
    assert all(pick_reference(i, keras, set(range(len(keras)))) == 0 for i in range(1, len(keras)))
    assert pick_reference(0, keras, set(range(len(keras)))) is None
    assert pick_reference(2, rows, {2, 3}) == 3          # the default runtime's row did not score: the other one


def test_gate_floor_comes_from_the_recorded_score_or_the_float_reference():
    big = {"balanced_accuracy": 0.85, "recall": 0.85, "specificity": 0.85, "n_patches": 10000, "n_positive": 3000}
    row = _row("m-int8.onnx", precision="int8", balanced_accuracy=0.84, recall=0.84, specificity=0.84,
               n_patches=10000, n_positive=3000, recorded=big)
    g = expected_floor(row, None, 0.02)
    assert g["from"] == "recorded test score" and g["expected"] == 0.85 and g["floor"] == pytest.approx(0.83)
    small = dict(row, n_patches=200, n_positive=60)       # a --limit subset: two standard errors, not 0.02
    g_small = expected_floor(small, None, 0.02)
    se = bac_se(0.84, 0.84, 60, 140)
    assert g_small["tolerance"] == pytest.approx(2 * math.hypot(se, bac_se(0.85, 0.85, 3000, 7000)))
    assert g_small["tolerance"] > 0.05
    ref = {"balanced_accuracy": 0.86, "recall": 0.86, "specificity": 0.86, "n_patches": 3000, "n_positive": 900}
    g_ref = expected_floor(dict(row, recorded=None), ref, 0.02)
    assert g_ref["from"] == "float reference" and g_ref["expected"] == 0.86
    assert expected_floor(dict(row, recorded=None), None, 0.02) is None


def test_gate_rules():
    floor = {"floor": 0.83, "expected": 0.85, "from": "recorded test score", "tolerance": 0.02}
    rows = [
        _row("a.onnx", balanced_accuracy=0.90, bac_drop=None, gate=floor),
        _row("b.tflite", runtime="litert", balanced_accuracy=0.87, bac_drop=0.03, reference="a.onnx", gate=floor),
        _row("c.tflite", runtime="litert", threads=2, balanced_accuracy=0.80, bac_drop=None, gate=floor),
        _row("d.onnx", runtime="openvino", error="ArtifactError: sha256"),
        _row("e.onnx", balanced_accuracy=0.70, bac_drop=None, gate=None),
    ]
    failures = apply_gate(rows)
    assert [r["passed_gate"] for r in rows] == [True, False, False, False, True]
    assert "drop 0.0300" in rows[1]["gate_reason"] and "--max-drop 0.01" in rows[1]["gate_reason"]
    assert "0.8000 < 0.8300 (recorded test score 0.8500 - tolerance 0.020)" in rows[2]["gate_reason"]
    assert rows[3]["gate_reason"].startswith("error: ArtifactError")
    assert rows[4]["gate_reason"].startswith("ungated")
    assert len(failures) == 3 and failures[0].startswith("b.tflite [litert, threads=1]")
    apply_gate(rows, min_bac=0.75)                          # the explicit floor still works, and gates e
    assert rows[4]["passed_gate"] is False and "< --min-bac 0.75" in rows[4]["gate_reason"]
    assert rows[0]["passed_gate"] is True


def _report(n_rows: int, tta: bool = True) -> dict:
    """A report as run_bench returns it, with long names and TTA rows, for the layout tests."""
    names = ["basic_cnn-fp32.onnx", "basic_cnn-int8-ptq.onnx", "basic_cnn-int8-qat.tflite", "vgg13-int8-qat.tflite"]
    rows = []
    for i in range(n_rows):
        name = names[i % len(names)]
        rt = "litert" if name.endswith("tflite") else ("onnxruntime", "openvino")[i % 2]
        rows.append(_row(name, runtime=rt, precision=name.split("-", 1)[1].rsplit(".", 1)[0], threads=1 + i % 2,
                         tta=tta and i % 3 == 0, balanced_accuracy=0.8123 + i / 1000, bac_drop=None if i % 4 == 0 else 0.0012,
                         latency_ms={"p50": 0.3 + i, "p99": 12.5 + i, "p50_spread_pct": 15.0 if i == 1 else 2.0},
                         throughput_per_s=12345.6 / (i + 1), peak_rss_mb=160.4, size_bytes=700_000,
                         noisy=i == 1, passed_gate=i != 2, gate_reason="ok" if i != 2 else "x", roc_auc=float("nan")))
    return {"rows": rows, "data": {"n_patches": 3039, "n_positive": 871, "source": "idc", "split": None},
            "config": {"rounds": 5, "batches": [1, 64], "tolerance": 0.02, "max_drop": 0.01, "min_bac": None,
                       "latency": "batch 1", "rss_method": "VmHWM"},
            "machine": {"cpu": "cpu", "arch": "x86_64", "usable_cores": 2, "isa": [], "versions": {}},
            "skipped": [], "warnings": [], "failures": ["c: x"], "passed": False}


@pytest.mark.parametrize("width,tta", [(80, True), (100, True), (100, False)])
def test_compact_table_fits_and_never_squashes(width, tta):
    res = _report(26, tta)
    con = Console(width=width, record=True, color_system=None)
    print_table(res, con)
    lines = con.export_text().splitlines()
    assert max(len(line) for line in lines) <= width
    assert "…" not in "\n".join(lines)
    header = next(line for line in lines if line.startswith("artifact"))
    assert "BAC" in header and "p50 ms" in header and "gate" in header
    text = "\n".join(lines)
    for r in res["rows"]:                                  # every row's BAC and p50, in full, on its line
        assert any(f"{r['balanced_accuracy']:.4f}" in line and f"{r['latency_ms']['p50']:.3f}" in line
                   for line in lines)
    assert "1.300*" in text                                # the spread marker
    if width == 100 and not tta:                           # release-like rows: every compact column at 100
        assert all(h in header for h in ("runtime", "thr", "precision", "Δ float", "p99 ms", "patches/s", "MB"))
        assert "Hidden" not in text
    elif width == 100:                                     # TTA names are longer: the memory column goes first
        assert "int8-ptq+tta" in text and "Hidden to fit this terminal: MB (" in text
    else:
        assert "Hidden to fit this terminal" in text and "Δ float" in header


def test_wide_markdown_and_strict_json():
    res = _report(5)
    con = Console(width=80, record=True, color_system=None)
    print_table(res, con, wide=True)
    text = con.export_text()
    assert all(h in text for h in ("AUC", "agree %", "p90 ms", "±%", "size MB", "load s", "floor")) and "…" not in text
    md = markdown(res)
    assert "| artifact | runtime |" in md and "## Gate failures" in md and md.count("\n| basic_cnn") == 4
    strict = dumps_strict(report_json(res))
    assert "NaN" not in strict and json.loads(strict)["rows"][0]["roc_auc"] is None


def test_plot_with_many_rows(tmp_path):
    from PIL import Image

    small, big = write_plot(_report(3), tmp_path / "s.png"), write_plot(_report(30), tmp_path / "b.png")
    with Image.open(small) as s, Image.open(big) as b:
        assert s.format == b.format == "PNG" and b.size[1] > s.size[1]  # taller with more rows: one key line each


def test_several_data_sources_read_as_one(tmp_path):
    rng = np.random.default_rng(0)
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    np.savez(a, images=rng.integers(0, 255, (10, 50, 50, 3), dtype=np.uint8), labels=np.zeros(10),
             patients=np.array(["p1"] * 5 + ["p2"] * 5))
    np.savez(b, images=rng.integers(0, 255, (6, 50, 50, 3), dtype=np.uint8), labels=np.ones(6),
             patients=np.array(["p3"] * 6))
    ev = load_eval_data(f"{a}{os.pathsep}{b}")
    assert len(ev.labels) == ev.n_available == 16 and ev.labels.sum() == 6 and ev.source == f"{a}{os.pathsep}{b}"
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["p1"], "val": [], "test": ["p2", "p3"]}))
    ev = load_eval_data([a, b], split=split, limit=7)
    assert len(ev.labels) == 7 and set(ev.patients) <= {"p2", "p3"} and ev.n_available == 16
    with pytest.raises(BenchError, match="not found"):
        load_eval_data(f"{a}{os.pathsep}{tmp_path / 'missing'}")
