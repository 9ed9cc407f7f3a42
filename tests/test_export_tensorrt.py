"""TensorRT export: everything around the builder is plain Python and tested here; the builder
itself needs tensorrt + an NVIDIA GPU."""

from __future__ import annotations

import pytest

from edgecnn.export.errors import ExportError


def test_profile_shapes():
    from edgecnn.export.tensorrt import profile_shapes

    assert profile_shapes(50, 8) == {k: (8, 50, 50, 3) for k in ("min", "opt", "max")}
    dyn = profile_shapes(64, "dynamic")
    assert dyn["min"] == (1, 64, 64, 3) and dyn["opt"][0] <= dyn["max"][0] and dyn == profile_shapes(64, None)
    with pytest.raises(ExportError, match="--batch"):
        profile_shapes(50, 0)


@pytest.mark.parametrize("version,precision,onnx_kind,flags,strong", [
    ("10.13.0", "fp32", "fp32", (), False),
    ("10.13.0", "fp16", "fp32", ("FP16",), False),
    ("10.13.0", "int8-qat", "int8-qat", ("INT8", "FP16"), False),
    ("11.0.0", "fp32", "fp32", (), True),
    ("11.0.0", "fp16", "fp16", (), True),          # TRT 11: no FP16 flag, build from an fp16 ONNX
    ("11.0.0", "int8-qat", "int8-qat", (), True),  # explicit QDQ, no INT8 flag, no calibrator
])
def test_build_plan_per_version(version, precision, onnx_kind, flags, strong):
    from edgecnn.export.tensorrt import plan_build

    plan = plan_build(precision, version, 50, None)
    assert (plan.onnx_kind, plan.flags, plan.strongly_typed) == (onnx_kind, flags, strong)


def test_build_plan_rejects_other_precisions():
    from edgecnn.export.tensorrt import plan_build

    with pytest.raises(ExportError, match="fp32, fp16 or int8-qat"):
        plan_build("int8-ptq", "10.0.1", 50)


def test_engine_manifest_fields():
    from edgecnn.export.tensorrt import engine_fields, plan_build

    f = engine_fields(plan_build("int8-qat", "10.13.0", 50, 16), {"tensorrt": "10.13.0", "gpu": "NVIDIA H100"})
    t = f["tensorrt"]
    assert t["version"] == "10.13.0" and t["gpu"] == "NVIDIA H100" and t["source_onnx"] == "int8-qat"
    assert t["profile"]["max"] == [16, 50, 50, 3]


def test_build_engine_needs_tensorrt():
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (pip install edgecnn[trt] on a GPU machine)")
    from edgecnn.export.tensorrt import preflight

    preflight()   # the builder call itself runs only on a machine with TensorRT + GPU (bench/export there)
