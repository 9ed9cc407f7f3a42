"""Session fixtures for the runtime, bench and scan tests: the artifacts of the shared tiny
training run, made by `edgecnn.export` with the real converters (TFLite, tf2onnx, onnxruntime
quantization, OpenVINO), once per session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.shared import built_once

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
    from edgecnn.fsutil import read_json, write_json
    from edgecnn.train.fit import predict_probs

    kinds = {"tflite_fp32": ("tflite", "fp32", "float", "."), "tflite_int8": ("tflite", "int8-ptq", "int8", "."),
             "tflite_int8_fio": ("tflite", "int8-ptq", "float", "float_io"), "onnx_fp32": ("onnx", "fp32", "float", "."),
             "onnx_int8": ("onnx", "int8-ptq", "float", "."), "ov_fp32": ("openvino", "fp32", "float", ".")}

    def build(out: Path) -> None:
        made = {}
        for key, (fmt, precision, io, sub) in kinds.items():
            (m,) = export_run(tiny_run, fmt, precision, out=out / sub, io=io, progress=False, limit=EXPORT_LIMIT)
            made[key] = str(Path(sub) / m["file"])
        write_json(out / "made.json", made)

    out = built_once(tmp_path_factory, "rt_artifacts", build)
    paths: dict = {"dir": out, "keras": tiny_run.model_path, "threshold": tiny_run.threshold}
    paths["keras_probs"] = predict_probs(tiny_run.load_model(), rt_patches["eval_x"])
    paths.update({key: out / rel for key, rel in read_json(out / "made.json").items()})
    return paths
