"""Session fixtures for the runtime, bench and scan tests: the artifacts of the shared tiny
training run, made by `edgecnn.export` with the real converters (TFLite, tf2onnx, onnxruntime
quantization, OpenVINO), once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

RT_N_EVAL = 256          # real patches of the tiny run's test patients, for comparisons
EXPORT_LIMIT = 200       # patches per split part for the export's own artifact check


@pytest.fixture(scope="session")
def rt_patches(tiny_run, idc_patches) -> dict:
    """Real patches of the tiny run's test patients (never seen in training)."""
    test = idc_patches.select(tiny_run.split().test)
    idx = np.sort(np.random.default_rng(0).permutation(len(test))[:RT_N_EVAL])
    return {"eval_x": np.ascontiguousarray(test.images[idx]), "eval_y": np.asarray(test.labels[idx])}


@pytest.fixture(scope="session")
def rt_artifacts(tmp_path_factory, tiny_run, rt_patches) -> dict:
    """Artifacts of the shared tiny run made by the real exporter (edgecnn.export), plus the Keras
    model's probabilities on ``eval_x``: what the runtime, bench and scan tests load."""
    from edgecnn.export import export_run
    from edgecnn.train.fit import predict_probs

    out = tmp_path_factory.mktemp("rt_artifacts")

    def one(fmt: str, precision: str, io: str = "float", dest: Path = out) -> Path:
        (m,) = export_run(tiny_run, fmt, precision, out=dest, io=io, progress=False, limit=EXPORT_LIMIT)
        return dest / m["file"]

    paths: dict = {"dir": out, "keras": tiny_run.model_path, "threshold": tiny_run.threshold}
    paths["keras_probs"] = predict_probs(tiny_run.load_model(), rt_patches["eval_x"])
    paths["tflite_fp32"] = one("tflite", "fp32")
    paths["tflite_int8"] = one("tflite", "int8-ptq", io="int8")
    paths["tflite_int8_fio"] = one("tflite", "int8-ptq", dest=out / "float_io")
    paths["onnx_fp32"] = one("onnx", "fp32")
    paths["onnx_int8"] = one("onnx", "int8-ptq")
    paths["ov_fp32"] = one("openvino", "fp32")
    return paths
