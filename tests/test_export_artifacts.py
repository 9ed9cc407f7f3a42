"""Real conversions of the QAT'd tiny run, each artifact run back through edgecnn.runtime."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow
QUICK = dict(limit=200, check_parts=("test",), progress=False)


@pytest.fixture(scope="session")
def tflite_exports(qat_run, tmp_path_factory):
    from edgecnn.export import export_run

    run, _ = qat_run
    out = tmp_path_factory.mktemp("exp-tflite")
    ms = export_run(run, "tflite", out=out, **QUICK)
    return out, {m["precision"]: m for m in ms}


def test_tflite_all_precisions_manifest_and_checks(tflite_exports, qat_run):
    from edgecnn.fsutil import read_json
    from edgecnn.manifest import read_manifest, verify_artifact

    out, ms = tflite_exports
    run, _ = qat_run
    assert set(ms) == {"fp32", "fp16", "dynamic", "int8-qat", "int8-ptq"}
    for prec, m in ms.items():
        path = out / f"basic_cnn-{prec}.tflite"
        assert read_manifest(path) == m
        verify_artifact(path, m)
        assert m["input"]["shape"] == [None, 50, 50, 3] and m["input"]["name"] == "patch"
        assert m["source"]["split"]["patients"]["test"] > 0 and m["source"]["run_name"] == run.name
        assert m["tools"]["tensorflow"] and m["tools"]["tensorflow-model-optimization"]
        t = m["metrics"]["test"]
        assert t["n_patches"] > 0 and 0 <= t["balanced_accuracy"] <= 1
        assert m["metrics"]["agreement"]["agreement"] >= 0.9, (prec, m["metrics"]["agreement"])
    # Float-weight variants reproduce the Keras model; fp16 to within rounding.
    assert ms["fp32"]["metrics"]["agreement"]["max_abs_dp"] < 1e-4
    assert ms["fp16"]["metrics"]["agreement"]["max_abs_dp"] < 5e-3
    # int8 graphs are integer end to end; the QAT artifact carries the QAT threshold.
    for prec in ("int8-qat", "int8-ptq"):
        assert ms[prec]["integer_only"] and ms[prec]["float_ops"] == [], ms[prec]["ops"]
        assert "CONV_2D" in ms[prec]["ops"]
        assert ms["fp32"]["size_bytes"] / ms[prec]["size_bytes"] >= 3.8
    assert ms["int8-qat"]["threshold"] == pytest.approx(read_json(run.qat_dir / "model.json")["threshold"])
    assert ms["int8-ptq"]["threshold"] == pytest.approx(run.threshold)
    assert ms["int8-ptq"]["calibration"]["n_patches"] > 0


@pytest.mark.parametrize("io", ["uint8", "uint8-int8"])
def test_tflite_uint8_io_takes_raw_pixels(qat_run, tmp_path, io):
    from edgecnn.export import export_run
    from edgecnn.runtime import load

    run, _ = qat_run
    (m,) = export_run(run, "tflite", "int8", io=io, out=tmp_path, **QUICK)
    assert m["precision"] == "int8-qat" and m["input"]["dtype"] == "uint8" and m["io"] == io
    assert m["output"]["dtype"] == io.split("-")[-1]
    # Integer in and out: nothing of the graph is float, so an integer-only NPU takes all of it.
    assert m["integer_only"] and "DEQUANTIZE" not in m["ops"]
    q = m["input"]["quantization"]
    assert q["zero_point"] == 0 and q["scale"] == pytest.approx(1 / 255, rel=0.02)
    assert m["output"]["quantization"] is not None and m["metrics"]["agreement"]["agreement"] >= 0.9
    x = np.random.default_rng(0).integers(0, 256, (3, 50, 50, 3), dtype=np.uint8)
    with load(tmp_path / m["file"]) as b:
        p = b.predict(x)
    assert p.shape == (3,) and np.all((p >= 0) & (p <= 1))


def test_onnx_and_openvino(qat_run, tmp_path):
    import onnx

    from edgecnn.export import export_run

    run, _ = qat_run
    ms = {f"{m['format']}:{m['precision']}": m for m in export_run(run, "onnx", out=tmp_path, **QUICK)}
    ms.update({f"{m['format']}:{m['precision']}": m for m in export_run(run, "openvino", out=tmp_path, **QUICK)})
    from edgecnn.formats import formats_for

    # Every row the formats table lists for them (rows added later are exported and checked too).
    assert set(ms) == {s.key for f in ("onnx", "openvino") for s in formats_for(f)}
    assert set(ms) >= {"onnx:fp32", "onnx:int8-ptq", "onnx:int8-qat", "openvino:fp32", "openvino:int8-ptq"}
    fp32 = onnx.load(str(tmp_path / "basic_cnn-fp32.onnx"))
    onnx.checker.check_model(fp32)
    assert fp32.graph.input[0].name == "patch"
    assert not fp32.graph.input[0].type.tensor_type.shape.dim[0].HasField("dim_value")   # dynamic batch
    assert ms["onnx:fp32"]["onnx"]["opset"] == 17
    for key in ("onnx:int8-ptq", "onnx:int8-qat"):
        assert ms[key]["onnx"]["qdq_nodes"] > 0
    assert ms["onnx:fp32"]["metrics"]["agreement"]["max_abs_dp"] < 1e-4
    for key in ("onnx:int8-ptq", "onnx:int8-qat"):
        assert ms["onnx:fp32"]["size_bytes"] / ms[key]["size_bytes"] >= 3.8, key
    # TensorRT runs a layer in int8 only when its weights are quantized: every Conv/MatMul weight
    # of the QAT ONNX must come from a DequantizeLinear over an int8 initializer.
    qat = onnx.load(str(tmp_path / "basic_cnn-int8-qat.onnx"))
    producers = {o: n for n in qat.graph.node for o in n.output}
    int8_inits = {i.name for i in qat.graph.initializer if i.data_type == onnx.TensorProto.INT8}
    for n in qat.graph.node:
        if n.op_type in ("Conv", "MatMul"):
            dq = producers[n.input[1]]
            assert dq.op_type == "DequantizeLinear" and dq.input[0] in int8_inits, n.name
    assert ms["openvino:fp32"]["metrics"]["agreement"]["max_abs_dp"] < 1e-3      # f32, not bf16, at runtime
    assert (tmp_path / "basic_cnn-fp32.bin").exists()
    assert ms["openvino:fp32"]["openvino"]["runtime_inference_precision"] == "f32"
    for m in ms.values():
        assert m["metrics"]["agreement"]["agreement"] >= 0.9, (m["file"], m["metrics"]["agreement"])


def test_fixed_batch_onnx(qat_run, tmp_path):
    import onnx

    from edgecnn.export import export_run

    run, _ = qat_run
    (m,) = export_run(run, "onnx", "fp32", batch=8, out=tmp_path, **QUICK)
    dim0 = onnx.load(str(tmp_path / m["file"])).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim0.dim_value == 8 and m["input"]["shape"][0] == 8
    assert m["metrics"]["test"]["n_patches"] > 0      # runtime pads the last partial batch


def test_vela_puts_the_whole_graph_on_the_npu(qat_run, tmp_path):
    """`--format vela`: the integer-I/O QAT graph compiled by Arm's Vela; every operator on the
    NPU, its estimates in the manifest, accuracy measured on the graph it compiled; no CPU
    runtime, bench or tune treats the NPU file as theirs."""
    pytest.importorskip("ethosu.vela", reason="the vela format needs the [npu] extra (ethos-u-vela)")
    from edgecnn.bench.data import BenchError
    from edgecnn.bench.discover import discover_artifacts
    from edgecnn.export import export_run
    from edgecnn.runtime import load

    run, _ = qat_run
    (m,) = export_run(run, "vela", out=tmp_path, **QUICK)
    assert m["file"].endswith("-int8-vela.tflite") and m["format"] == "vela" and m["io"] == "uint8-int8"
    v = m["vela"]
    assert v["npu_op_share"] == 1.0 and v["cpu_operators"] == 0, v
    assert v["sram_kib"] > 0 and v["flash_kib"] > 0 and 0 < v["ms_per_tile"] < 100
    assert v["macs_per_tile"] == pytest.approx(m["compute"]["macs_per_tile"], rel=0.05)
    assert m["metrics"]["test"]["balanced_accuracy"] is not None and m["metrics"]["agreement"]["agreement"] >= 0.9
    assert m["input"]["dtype"] == "uint8" and m["output"]["dtype"] == "int8"
    with pytest.raises(ValueError, match="Ethos-U"):
        load(tmp_path / m["file"])
    with pytest.raises(BenchError, match="Vela"):
        discover_artifacts([tmp_path / m["file"]])
    export_run(run, "tflite", "int8-qat", out=tmp_path, **QUICK)
    assert [p.name for p in discover_artifacts([tmp_path])] == [f"{run.model_name}-int8-qat.tflite"]


def test_vela_from_the_shipped_release_tflite(idc_data, tmp_path):
    """`export FILE.tflite --format vela`: the shipped full-integer TFLite, its float I/O swapped
    for uint8/int8, compiled whole onto the NPU; the same labels as the shipped file."""
    pytest.importorskip("ethosu.vela", reason="the vela format needs the [npu] extra (ethos-u-vela)")
    from edgecnn.export import ExportError
    from edgecnn.export.vela_artifact import vela_from_artifact
    from edgecnn.manifest import read_manifest
    from edgecnn.paths import release_model_dir

    art = release_model_dir() / "basic_cnn-int8-qat.tflite"
    (m,) = vela_from_artifact(art, str(idc_data), out=tmp_path, limit=150, progress=False)
    src = read_manifest(art)
    assert (tmp_path / "basic_cnn-int8-vela.tflite").exists() and m["format"] == "vela"
    assert m["vela"]["npu_op_share"] == 1.0 and m["vela"]["cpu_operators"] == 0, m["vela"]
    assert m["input"]["dtype"] == "uint8" and m["input"]["shape"] == [1, 50, 50, 3] and m["output"]["dtype"] == "int8"
    assert m["source"]["artifact"]["sha256"] == src["sha256"] and m["threshold"] == src["threshold"]
    for part in ("val", "test"):
        assert m["metrics"][part]["n_patches"] == 150
        assert m["metrics"]["agreement"]["by_part"][part]["agreement"] == 1.0
        assert m["metrics"]["agreement"]["by_part"][part]["max_abs_dp"] == 0.0
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())   # no staging left behind
    with pytest.raises(ExportError, match="already exists"):
        vela_from_artifact(art, str(idc_data), out=tmp_path, limit=10, progress=False)
    with pytest.raises(ExportError, match="int8 TFLite"):
        vela_from_artifact(release_model_dir() / "basic_cnn-int8-ptq.onnx", str(idc_data), out=tmp_path, progress=False)
