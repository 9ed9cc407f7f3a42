"""TensorRT's explicit-quantization rules (edgecnn.export.trt_check) and the UINT8 → INT8 rewrite
(edgecnn.export.trt_qdq), on small real ONNX graphs run by ONNX Runtime; no training needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

RELEASE_PTQ = Path(__file__).resolve().parents[1] / "exported" / "release" / "basic_cnn-int8-ptq.onnx"


def _qdq_conv(zp_type="int8", zp=0, act_scale_shape=(), w_axis=0, opset=17, extra_q_consumer=False):
    """input → Q → DQ → Conv(W: int8 → DQ per channel) → output, with knobs to break each rule."""
    from onnx import TensorProto, helper, numpy_helper

    zdt = {"int8": np.int8, "uint8": np.uint8, "int32": np.int32}[zp_type]
    w = np.random.default_rng(0).integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    inits = [numpy_helper.from_array(np.full(act_scale_shape, 0.02, np.float32), "s"),
             numpy_helper.from_array(np.full(act_scale_shape, zp, zdt), "z"),
             numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(np.full(w.shape[w_axis], 0.01, np.float32), "ws"),
             numpy_helper.from_array(np.zeros(w.shape[w_axis], np.int8), "wz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xd"], name="dq_in"),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], name="dq_w", axis=w_axis),
             helper.make_node("Conv", ["xd", "wd"], ["y"], name="conv")]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]
    if extra_q_consumer:
        nodes.append(helper.make_node("Cast", ["xq"], ["xc"], name="cast", to=TensorProto.FLOAT))
        outputs.append(helper.make_tensor_value_info("xc", TensorProto.FLOAT, None))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          outputs, inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def _rules(model) -> set[str]:
    from edgecnn.export.trt_check import check_trt_model

    return {v["rule"] for v in check_trt_model(model).violations}


def test_symmetric_int8_graph_passes():
    from edgecnn.export.trt_check import check_trt_model

    rep = check_trt_model(_qdq_conv())
    assert rep.ok and rep.stats["per_channel_weights"] == 1 and not rep.warnings, rep.text()


@pytest.mark.parametrize("kwargs,rule", [
    (dict(zp_type="uint8", zp=128), "int8-type"),
    (dict(zp=-128), "zero-point-zero"),
    (dict(act_scale_shape=(3,)), "activation-per-tensor"),
    (dict(w_axis=1), "weight-axis"),
    (dict(opset=11), "opset"),
    (dict(extra_q_consumer=True), "q-feeds-dq"),
])
def test_each_rule_fires(kwargs, rule):
    assert rule in _rules(_qdq_conv(**kwargs))


def test_int32_bias_and_foreign_ops_are_named():
    from onnx import helper

    m = _qdq_conv()
    m.graph.node.append(helper.make_node("QLinearConv", ["a"], ["b"], name="qconv", domain="com.microsoft"))
    m.graph.node.append(helper.make_node("NonMaxSuppression", ["c"], ["d"], name="nms"))
    rep_rules = _rules(m)
    assert {"op-domain", "op-supported"} <= rep_rules


def test_release_ptq_file_is_rejected_with_a_readable_list():
    """Today's committed ONNX int8 (asymmetric zero points, INT32 biases) is not TensorRT input."""
    if not RELEASE_PTQ.exists():
        pytest.skip(f"{RELEASE_PTQ} is not in this checkout")
    from edgecnn.export.trt_check import check_trt_onnx

    rep = check_trt_onnx(RELEASE_PTQ)
    text = rep.text()
    assert not rep.ok and {"zero-point-zero", "int8-type"} <= {v["rule"] for v in rep.violations}
    assert "by rule:" in text and "INT32" in text and "zero point" in text
    assert all(line.startswith(("  ", str(RELEASE_PTQ))) for line in text.splitlines())


def test_cli_check_trt_exit_codes(tmp_path):
    import onnx
    from typer.testing import CliRunner

    from edgecnn.cli import app

    good, bad = tmp_path / "good.onnx", tmp_path / "bad.onnx"
    onnx.save(_qdq_conv(), str(good))
    onnx.save(_qdq_conv(zp_type="uint8", zp=128), str(bad))
    r = CliRunner().invoke(app, ["export", "--check-trt", str(good)])
    assert r.exit_code == 0 and "TensorRT-ready" in r.output, r.output
    r = CliRunner().invoke(app, ["export", "--check-trt", str(bad)])
    assert r.exit_code == 1 and "UINT8" in r.output and "[int8-type]" in r.output, r.output
    r = CliRunner().invoke(app, ["export", "--check-trt", str(tmp_path / "missing.onnx")])
    assert r.exit_code == 2 and "no such file" in r.output


def _ort(model, x):
    import onnxruntime as ort

    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})[0]


def test_uint8_zero_point_128_becomes_int8_zero_exactly():
    """tf2onnx's symmetric fake-quant (UINT8, zero point 128) is INT8 with zero point 0: same outputs."""
    from edgecnn.export.trt_check import check_trt_model
    from edgecnn.export.trt_qdq import uint8_to_int8

    m = _qdq_conv(zp_type="uint8", zp=128)
    x = np.random.default_rng(1).normal(0, 1.5, (1, 3, 8, 8)).astype(np.float32)   # clips at ±2.56
    before = _ort(m, x)
    assert uint8_to_int8(m.graph) == 2
    assert check_trt_model(m).ok
    np.testing.assert_array_equal(_ort(m, x), before)


def test_asymmetric_uint8_is_refused_with_the_fix():
    from edgecnn.export.errors import ExportError
    from edgecnn.export.trt_qdq import uint8_to_int8

    with pytest.raises(ExportError, match="--activations symmetric"):
        uint8_to_int8(_qdq_conv(zp_type="uint8", zp=45).graph)
