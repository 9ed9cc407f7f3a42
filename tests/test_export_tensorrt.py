"""TensorRT export around the builder: plans, network flags, preflight through the CUDA driver,
engine manifest and the build-target check. These run everywhere; tests/test_trt_engine.py
builds and runs engines where tensorrt and a GPU exist."""

from __future__ import annotations

import enum
import re
import warnings

import pytest

from edgecnn.export.errors import ExportError, ToolMissing


def test_profile_shapes():
    from edgecnn.export.tensorrt import profile_shapes

    assert profile_shapes(50, 8) == {k: (8, 50, 50, 3) for k in ("min", "opt", "max")}
    dyn = profile_shapes(64, "dynamic")
    assert dyn["min"] == (1, 64, 64, 3) and dyn["opt"][0] <= dyn["max"][0] and dyn == profile_shapes(64, None)
    with pytest.raises(ExportError, match="--batch"):
        profile_shapes(50, 0)


def test_every_trt_row_has_a_plan_and_an_onnx_the_exporter_makes():
    """Each TensorRT row of the formats table builds on 10.x and 11.x from an ONNX kind that
    build_onnx knows (an ONNX row of the table, or the fp16 copy)."""
    from edgecnn.export.tensorrt import plan_build
    from edgecnn.formats import FORMATS

    onnx_kinds = {f.precision for f in FORMATS if f.format == "onnx"} | {"fp16"}
    rows = [f for f in FORMATS if f.format == "trt"]
    assert {f.precision for f in rows} == {"fp32", "fp16", "int8"}
    for version in ("10.0.1", "10.13.0", "11.0.0", "11.4.1"):
        for f in rows:
            plan = plan_build(f.precision, version, 50)
            assert plan.onnx_kind in onnx_kinds and plan.strongly_typed, (version, plan)
    assert plan_build("int8", "11.0.0", 50).onnx_kind == "int8-trt"   # the TensorRT-ready ONNX, not tf2onnx's UINT8
    with pytest.raises(ExportError, match="fp32, fp16, int8"):
        plan_build("int8-ptq", "10.0.1", 50)
    with pytest.raises(ToolMissing, match="too old"):
        plan_build("fp32", "8.6.1", 50)


# NetworkDefinitionCreationFlag members as documented: TensorRT 10 (EXPLICIT_BATCH kept, deprecated)
# and 11 (STRONGLY_TYPED only, accepted and ignored); a TensorRT without STRONGLY_TYPED (8.x).
Trt10Flags = enum.IntEnum("Trt10Flags", {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1})
Trt11Flags = enum.IntEnum("Trt11Flags", {"STRONGLY_TYPED": 0})
Trt8Flags = enum.IntEnum("Trt8Flags", {"EXPLICIT_BATCH": 0})


def test_network_flags_set_strong_typing_on_10_and_11():
    from edgecnn.export.tensorrt import network_flags, plan_build

    assert network_flags(plan_build("int8", "10.13.0", 50), Trt10Flags) == 0b10   # bit 1, never EXPLICIT_BATCH
    assert network_flags(plan_build("int8", "11.0.0", 50), Trt11Flags) == 0b01
    with pytest.raises(ToolMissing, match="STRONGLY_TYPED"):
        network_flags(plan_build("fp32", "10.0.1", 50), Trt8Flags)


def test_engine_manifest_records_trt_gpu_and_capability():
    from edgecnn.export.tensorrt import engine_fields, plan_build

    env = {"tensorrt": "10.13.0", "gpu": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0"}
    t = engine_fields(plan_build("int8", "10.13.0", 50, 16), env)["tensorrt"]
    assert (t["version"], t["gpu"], t["compute_capability"]) == ("10.13.0", "NVIDIA H100 80GB HBM3", "9.0")
    assert t["source_onnx"] == "int8-trt" and t["strongly_typed"] and t["profile"]["max"] == [16, 50, 50, 3]


def test_engine_for_another_trt_or_gpu_is_refused():
    from edgecnn.runtime.tensorrt import check_build_target

    m = {"tensorrt": {"version": "10.13.0", "gpu": "NVIDIA L4", "compute_capability": "8.9"}}
    here = {"name": "NVIDIA L4", "compute_capability": "8.9"}
    check_build_target(m, "e.engine", "10.13.0", here)
    with pytest.raises(ValueError, match=r"TensorRT 10\.13\.0, this machine has TensorRT 11\.0\.0"):
        check_build_target(m, "e.engine", "11.0.0", here)
    with pytest.raises(ValueError, match=r"compute capability 8\.9 .*Orin.*8\.7"):
        check_build_target(m, "e.engine", "10.13.0", {"name": "Orin", "compute_capability": "8.7"})
    with pytest.warns(UserWarning, match="same compute capability"):
        check_build_target(m, "e.engine", "10.13.0", {"name": "NVIDIA RTX 4090", "compute_capability": "8.9"})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_build_target({}, "e.engine", "11.0.0", here)      # no build record: TensorRT itself decides


def test_cuda_probe_and_preflight_say_what_is_missing():
    """The GPU is found through the CUDA driver (libcuda), never nvidia-smi; without TensorRT or
    a driver, preflight names each missing piece."""
    import importlib.util

    from edgecnn.export.tensorrt import preflight
    from edgecnn.runtime.tensorrt import _libcuda, cuda_devices

    gpus, why = cuda_devices()
    if _libcuda() is None:
        assert gpus == [] and "libcuda" in why
    for g in gpus:
        assert g["name"] and re.fullmatch(r"\d+\.\d+", g["compute_capability"]), g
    has_trt = importlib.util.find_spec("tensorrt") is not None
    if has_trt and gpus:
        env = preflight()
        assert env["gpu"] == gpus[0]["name"] and env["compute_capability"] == gpus[0]["compute_capability"]
        return
    with pytest.raises(ToolMissing) as e:
        preflight()
    msg = str(e.value)
    assert ("tensorrt Python package" in msg) == (not has_trt) and ("NVIDIA GPU" in msg) == (not gpus)
    assert "nvidia-smi" not in msg and r"pip install edgecnn[trt]" in msg
