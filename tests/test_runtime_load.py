"""edgecnn.runtime.load: dispatch, equality with a direct runtime call, quantized I/O, integrity."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgecnn.manifest import ArtifactError, manifest_path
from edgecnn.runtime import RuntimeUnavailable, load, runtimes_for
from edgecnn.runtime.litert import LiteRTBackend
from edgecnn.runtime.openvino import OpenVINOBackend
from edgecnn.runtime.ort import OrtBackend

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("key, runtime, cls", [
    ("tflite_fp32", None, LiteRTBackend),
    ("onnx_fp32", None, OrtBackend),
    ("onnx_fp32", "openvino", OpenVINOBackend),
    ("ov_fp32", None, OpenVINOBackend),
])
def test_load_dispatches_by_suffix(rt_artifacts, key, runtime, cls):
    with load(rt_artifacts[key], runtime=runtime) as b:
        assert type(b) is cls
        assert b.runtime == (runtime or {".tflite": "litert", ".onnx": "onnxruntime", ".xml": "openvino"}[b.path.suffix])
        assert b.input_size == 50 and b.precision == "fp32"
        assert b.threshold == pytest.approx(rt_artifacts["threshold"])
        assert b.load_time_s > 0 and b.name == Path(rt_artifacts[key]).name


def test_runtime_not_able_to_read_suffix_is_refused(rt_artifacts):
    with pytest.raises(ValueError, match="cannot run .tflite"):
        load(rt_artifacts["tflite_fp32"], runtime="onnxruntime")
    with pytest.raises(ValueError, match="unknown runtime"):
        load(rt_artifacts["tflite_fp32"], runtime="coreml")
    assert runtimes_for("x.onnx") == ["onnxruntime", "openvino"]


def test_unknown_suffix_and_missing_file(tmp_path):
    f = tmp_path / "model.pt"
    f.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"unknown artifact type '\.pt'"):
        load(f)
    with pytest.raises(ArtifactError, match="no such artifact"):
        load(tmp_path / "absent.tflite")


def test_tflite_predict_equals_direct_interpreter(rt_artifacts, rt_patches):
    from ai_edge_litert.interpreter import Interpreter

    x = rt_patches["eval_x"][:37]
    it = Interpreter(model_path=str(rt_artifacts["tflite_fp32"]))
    inp = it.get_input_details()[0]
    it.resize_tensor_input(inp["index"], [len(x), 50, 50, 3])
    it.allocate_tensors()
    it.set_tensor(inp["index"], x.astype(np.float32) / 255.0)
    it.invoke()
    direct = it.get_tensor(it.get_output_details()[0]["index"])[:, 1]
    with load(rt_artifacts["tflite_fp32"]) as b:
        got = b.predict(x, batch_size=16)  # 16 + 16 + 5: batching must not change anything
    assert got.dtype == np.float32 and got.shape == (37,)
    np.testing.assert_allclose(got, direct, rtol=0, atol=1e-6)
    np.testing.assert_allclose(got, rt_artifacts["keras_probs"][:37], atol=1e-4)


def test_onnx_predict_equals_direct_session(rt_artifacts, rt_patches):
    import onnxruntime as ort

    x = rt_patches["eval_x"][:20]
    sess = ort.InferenceSession(str(rt_artifacts["onnx_fp32"]), providers=["CPUExecutionProvider"])
    direct = sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32) / 255.0})[0][:, 1]
    with load(rt_artifacts["onnx_fp32"]) as b:
        np.testing.assert_allclose(b.predict(x), direct, atol=1e-6)
    with load(rt_artifacts["onnx_fp32"], runtime="openvino") as b:
        np.testing.assert_allclose(b.predict(x), direct, atol=1e-5)


def test_int8_io_scaling(rt_artifacts, rt_patches):
    """int8 in/out: the backend quantizes pixels and dequantizes probabilities with the tensor's
    own scale/zero point, so the result matches a hand-quantized interpreter run and the float model."""
    from ai_edge_litert.interpreter import Interpreter

    x = rt_patches["eval_x"]
    with load(rt_artifacts["tflite_int8"]) as b:
        assert b.input_dtype == np.int8 and b.input_quant is not None and b.output_quant is not None
        p = b.predict(x)
    it = Interpreter(model_path=str(rt_artifacts["tflite_int8"]))
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    (si, zi), (so, zo) = inp["quantization"], out["quantization"]
    it.resize_tensor_input(inp["index"], [len(x), 50, 50, 3])
    it.allocate_tensors()
    it.set_tensor(inp["index"], np.clip(np.round(x / 255.0 / si) + zi, -128, 127).astype(np.int8))
    it.invoke()
    direct = (it.get_tensor(out["index"]).astype(np.float32) - zo) * so
    np.testing.assert_allclose(p, direct[:, 1], atol=1e-6)
    ref = rt_artifacts["keras_probs"]
    assert np.abs(p - ref).max() < 0.05
    thr = rt_artifacts["threshold"]
    assert np.mean((p >= thr) == (ref >= thr)) >= 0.95
    # The float-I/O twin of the same int8 model agrees with it.
    with load(rt_artifacts["tflite_int8_fio"]) as b2:
        assert b2.input_dtype == np.float32 and b2.input_quant is None
        assert np.abs(b2.predict(x) - p).max() < 0.02


def test_int8_onnx_close_to_float(rt_artifacts, rt_patches):
    ref = rt_artifacts["keras_probs"]
    for runtime in ("onnxruntime", "openvino"):
        with load(rt_artifacts["onnx_int8"], runtime=runtime) as b:
            assert b.precision == "int8-ptq"
            assert np.abs(b.predict(rt_patches["eval_x"]) - ref).max() < 0.05


def test_predict_labels_use_manifest_threshold(rt_artifacts, rt_patches):
    with load(rt_artifacts["onnx_fp32"]) as b:
        p = b.predict(rt_patches["eval_x"])
        labels = b.predict_labels(rt_patches["eval_x"])
    assert labels.dtype == np.int8
    np.testing.assert_array_equal(labels, (p >= rt_artifacts["threshold"]).astype(np.int8))
    assert 0 < labels.sum() < len(labels)  # the fixture's threshold splits the patches


def _copy(artifact: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for f in (artifact, manifest_path(artifact)):
        shutil.copy(f, dest / f.name)
    return dest / artifact.name


def test_tampered_file_is_refused(rt_artifacts, rt_patches, tmp_path):
    f = _copy(Path(rt_artifacts["tflite_fp32"]), tmp_path)
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    f.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        load(f)
    with load(f, verify=False) as b:  # the override loads it anyway
        assert b.predict(rt_patches["eval_x"][:2]).shape == (2,)


def test_tampered_openvino_bin_is_refused(rt_artifacts, tmp_path):
    xml = Path(rt_artifacts["ov_fp32"])
    f = _copy(xml, tmp_path)
    binf = tmp_path / xml.with_suffix(".bin").name
    data = bytearray(xml.with_suffix(".bin").read_bytes())
    data[100] ^= 0xFF
    binf.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        load(f)


def test_missing_manifest(rt_artifacts, rt_patches, tmp_path):
    f = tmp_path / "nomanifest.onnx"
    shutil.copy(rt_artifacts["onnx_fp32"], f)
    with pytest.raises(ArtifactError, match="allow_no_manifest=True"):
        load(f)
    with load(f, allow_no_manifest=True) as b:
        assert b.input_size == 50 and b.threshold == 0.5 and b.precision == "unknown"
        with load(rt_artifacts["onnx_fp32"]) as ref:
            np.testing.assert_allclose(b.predict(rt_patches["eval_x"][:8]), ref.predict(rt_patches["eval_x"][:8]))


def test_manifest_of_another_size_is_refused(rt_artifacts, tmp_path):
    from edgecnn.fsutil import read_json, write_json

    f = _copy(Path(rt_artifacts["onnx_fp32"]), tmp_path)
    m = read_json(manifest_path(f))
    m["input"]["shape"] = [None, 64, 64, 3]
    write_json(manifest_path(f), m)
    with pytest.raises(ValueError, match="manifest says input 64"):
        load(f)


def test_tensorrt_missing_gives_install_hint(tmp_path):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("tensorrt is installed here: the missing-package error cannot be provoked")
    for suffix in (".engine", ".plan"):
        f = tmp_path / f"basic_cnn-fp16{suffix}"
        f.write_bytes(b"not an engine")
        with pytest.raises(RuntimeUnavailable, match=r"pip install edgecnn\[trt\].*NVIDIA GPU"):
            load(f)


def test_tensorrt_engine_matches_onnxruntime(rt_artifacts, rt_patches, tmp_path):
    """Build an fp32 engine from the fixture's ONNX with the TensorRT builder, run it through load()."""
    trt = pytest.importorskip("tensorrt", reason="TensorRT engines need tensorrt + an NVIDIA GPU (pip install edgecnn[trt])")
    from edgecnn.fsutil import read_json, write_bytes
    from edgecnn.manifest import write_manifest

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(Path(rt_artifacts["onnx_fp32"]).read_bytes()), [parser.get_error(i) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    profile = builder.create_optimization_profile()
    profile.set_shape(network.get_input(0).name, (1, 50, 50, 3), (16, 50, 50, 3), (32, 50, 50, 3))
    config.add_optimization_profile(profile)
    engine = builder.build_serialized_network(network, config)
    assert engine is not None
    f = write_bytes(tmp_path / "basic_cnn-fp32.engine", bytes(engine))
    m = read_json(manifest_path(rt_artifacts["onnx_fp32"]))
    m["format"] = "trt"
    write_manifest(f, m)
    x = rt_patches["eval_x"][:70]
    with load(f) as b, load(rt_artifacts["onnx_fp32"]) as ref:
        assert b.runtime == "tensorrt" and b.max_batch == 32
        np.testing.assert_allclose(b.predict(x, batch_size=64), ref.predict(x), atol=2e-3)
        np.testing.assert_allclose(b.predict(x[0]), ref.predict(x[:1]), atol=2e-3)


def test_fixed_batch_model_is_padded(rt_artifacts, rt_patches, tmp_path):
    """A model that only takes batch 4 still predicts 10 patches (chunks of 4, last one padded)."""
    import onnx

    from edgecnn.fsutil import read_json
    from edgecnn.manifest import write_manifest

    m = onnx.load(str(rt_artifacts["onnx_fp32"]))
    for t in (*m.graph.input, *m.graph.output):
        t.type.tensor_type.shape.dim[0].dim_value = 4
    f = tmp_path / "basic_cnn-fp32.onnx"
    onnx.save(m, str(f))
    write_manifest(f, read_json(manifest_path(rt_artifacts["onnx_fp32"])))
    x = rt_patches["eval_x"][:10]
    with load(f) as b, load(rt_artifacts["onnx_fp32"]) as ref:
        assert b.fixed_batch == 4
        np.testing.assert_allclose(b.predict(x, batch_size=64), ref.predict(x), atol=1e-6)


def _no_tf(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)


def test_runtime_never_imports_tensorflow(rt_artifacts):
    paths = [str(rt_artifacts[k]) for k in ("tflite_int8", "onnx_fp32", "ov_fp32")]
    code = (
        "import sys, numpy as np\n"
        "import edgecnn.runtime, edgecnn.bench, edgecnn.bench.cli\n"
        "from edgecnn.runtime import load\n"
        f"for p in {paths!r}:\n"
        "    with load(p) as b: b.predict(np.zeros((2, 50, 50, 3), np.uint8))\n"
        "assert 'onnxruntime' in sys.modules and 'ai_edge_litert' in sys.modules\n"
        "bad = sorted(m for m in sys.modules if m == 'tensorflow' or m.startswith(('tensorflow.', 'tf_keras', 'keras')))\n"
        "assert not bad, bad\n"
        "print('ok')\n"
    )
    r = _no_tf(code)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr[-2000:]
