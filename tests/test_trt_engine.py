"""TensorRT engines built for real by `edgecnn export --format trt` and run through
edgecnn.runtime.load, compared with ONNX Runtime. They need the tensorrt package and a GPU seen
by the CUDA driver (no nvidia-smi needed); elsewhere the module skips with the reason."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest

from edgecnn.runtime.tensorrt import cuda_devices

pytestmark = [pytest.mark.slow, pytest.mark.trt]

if importlib.util.find_spec("tensorrt") is None:
    pytest.skip("TensorRT is not installed (pip install edgecnn[trt] on a machine with an NVIDIA GPU)",
                allow_module_level=True)
_GPUS, _WHY = cuda_devices()
if not _GPUS:
    pytest.skip(f"no NVIDIA GPU: {_WHY}", allow_module_level=True)

QUICK = dict(limit=200, progress=False)


@pytest.fixture(scope="module")
def engines(export_run, tmp_path_factory) -> dict:
    from edgecnn.export import export_run as export

    out = tmp_path_factory.mktemp("engines")
    made = {}
    for fmt, prec in (("onnx", "fp32"), ("onnx", "int8-trt"), ("trt", "fp32"), ("trt", "int8")):
        (m,) = export(export_run, fmt, prec, out=out, **QUICK)
        made[f"{fmt}:{prec}"] = out / m["file"]
    return made


def _predict(path, x):
    from edgecnn.runtime import load

    with load(path) as b:
        return b.predict(x, batch_size=64)


def test_engines_record_their_build_target(engines):
    import tensorrt as trt

    from edgecnn.fsutil import read_json
    from edgecnn.manifest import manifest_path

    for key in ("trt:fp32", "trt:int8"):
        t = read_json(manifest_path(engines[key]))["tensorrt"]
        assert t["version"] == trt.__version__ and t["gpu"] == _GPUS[0]["name"]
        assert t["compute_capability"] == _GPUS[0]["compute_capability"] and t["strongly_typed"]


def test_engines_match_onnxruntime(engines, rt_patches):
    x = rt_patches["eval_x"][:200]
    np.testing.assert_allclose(_predict(engines["trt:fp32"], x), _predict(engines["onnx:fp32"], x), atol=2e-3)
    p_trt, p_ort = _predict(engines["trt:int8"], x), _predict(engines["onnx:int8-trt"], x)
    # Same INT8 arithmetic; TensorRT fuses and reorders float ops around it, so not bit-exact.
    assert np.mean(np.abs(p_trt - p_ort)) < 0.01 and np.mean((p_trt >= 0.5) == (p_ort >= 0.5)) >= 0.98


def test_engine_from_another_tensorrt_is_a_clear_error(engines, tmp_path):
    from edgecnn.fsutil import read_json, write_json
    from edgecnn.manifest import manifest_path
    from edgecnn.runtime import load

    src = engines["trt:fp32"]
    dst = tmp_path / src.name
    shutil.copy2(src, dst)
    m = read_json(manifest_path(src))
    m["tensorrt"]["version"] = "9.9.9"
    write_json(manifest_path(dst), m)
    with pytest.raises(ValueError, match=r"built with TensorRT 9\.9\.9"):
        load(dst)


def test_close_releases_buffers_and_stream(engines, rt_patches):
    from edgecnn.runtime import load

    b = load(engines["trt:int8"])
    b.predict(rt_patches["eval_x"][:10])
    assert b._bufs
    b.close()
    assert b._bufs == {} and b.mem is None and b.engine is None
