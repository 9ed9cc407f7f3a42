"""The TensorRT-ready int8 ONNX (`<model>-int8-trt.onnx`) made by the real exporter from the shared
tiny run: symmetric INT8 Q/DQ with zero points 0, TensorRT's layout, and on ONNX Runtime (CPU) a
balanced accuracy within 0.5 pt of the float model on the run's test patients. Both ways in:
calibrated PTQ, and a QAT model trained with symmetric activations. The tf2onnx QAT file (UINT8)
is rejected by the checker."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow
QUICK = dict(limit=200, progress=False)
MAX_BAC_DROP = 0.005


def _export(run, precision, out):
    from edgecnn.export import export_run

    (m,) = export_run(run, "onnx", precision, out=out, **QUICK)
    return m, out / m["file"]


@pytest.fixture(scope="module")
def test_patches(tiny_run, idc_data, tmp_path_factory):
    """The tiny run's test patients with every patch there is of them: idc/ plus, when it sits
    beside it, idc-more/ (same patients, more patches: ~930 instead of ~200, so one patch is not
    half a point of balanced accuracy)."""
    from edgecnn.data import load_patches

    ids = tiny_run.split().test
    sources = [idc_data]
    more = idc_data.parent / "idc-more"
    if more.is_dir():
        sub = tmp_path_factory.mktemp("more-test")
        for pid in ids:
            if (more / pid).is_dir():
                (sub / pid).symlink_to(more / pid)
        sources.append(sub)
    ps = load_patches(sources).select(ids)
    if len(ps) < 500:
        pytest.skip(f"only {len(ps)} test patches (idc-more/ not beside {idc_data}): too few to resolve 0.5 pt")
    return ps


def _bac(path: Path, ps) -> float:
    from edgecnn.metrics import binary_metrics
    from edgecnn.runtime import load

    with load(path) as b:
        return binary_metrics(ps.labels, b.predict(ps.images), b.threshold)["balanced_accuracy"]


def _qdq_types(path: Path) -> tuple[set, set]:
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(path))
    inits = {i.name: i for i in m.graph.initializer}
    types, values = set(), set()
    for n in m.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            zp = inits[n.input[2]]
            types.add(onnx.TensorProto.DataType.Name(zp.data_type))
            values |= set(numpy_helper.to_array(zp).ravel().tolist())
    return types, values


@pytest.fixture(scope="module")
def ptq_trt(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("trt-ptq")
    _, fp32 = _export(tiny_run, "fp32", out)
    m, trt = _export(tiny_run, "int8-trt", out)
    return m, trt, fp32


@pytest.fixture(scope="module")
def sym_qat_trt(sym_qat_run, tmp_path_factory):
    """The tiny run fine-tuned with symmetric activation ranges, exported both ways."""
    out = tmp_path_factory.mktemp("trt-qat")
    m, trt = _export(sym_qat_run, "int8-trt", out)
    _, uint8 = _export(sym_qat_run, "int8-qat", out)
    return m, trt, uint8


def test_ptq_trt_onnx_is_symmetric_int8_in_tensorrt_layout(ptq_trt):
    import onnx

    from edgecnn.export.trt_check import check_trt_onnx

    m, trt, _ = ptq_trt
    assert _qdq_types(trt) == ({"INT8"}, {0})
    rep = check_trt_onnx(trt)
    assert rep.ok, rep.text()
    assert m["trt_qdq"]["source"] == "ptq" and m["trt_qdq"]["trt_check"]["ok"]
    g = onnx.load(str(trt)).graph
    producers = {o: n for n in g.node for o in n.output}
    float_layers = set(m["trt_qdq"]["float_layers"])
    assert len(float_layers) == 1          # only the conv that reads the image
    for n in g.node:
        if n.op_type in ("Conv", "Gemm", "MatMul") and n.name not in float_layers:
            w = producers[n.input[1]]
            assert w.op_type == "DequantizeLinear", n.name
            if n.op_type == "Conv":
                assert {a.name: a.i for a in w.attribute}.get("axis") == 0
    # No INT32 bias, no pair that no weighted op reads (e.g. on the logits).
    assert not any(p.op_type == "DequantizeLinear" for n in g.node if n.op_type == "Softmax"
                   for p in [producers.get(n.input[0])] if p is not None)


def test_ptq_trt_accuracy_within_half_a_point_of_float(ptq_trt, test_patches):
    _, trt, fp32 = ptq_trt
    b_fp32, b_trt = _bac(fp32, test_patches), _bac(trt, test_patches)
    assert abs(b_trt - b_fp32) <= MAX_BAC_DROP, (b_fp32, b_trt, len(test_patches))


def test_symmetric_qat_trt_onnx_is_exact_rewrite_of_tf2onnx(sym_qat_trt, rt_patches):
    """From the symmetric QAT model: INT8 zero point 0 everywhere, and the same outputs as the
    tf2onnx UINT8 file (zero point 128 → 0 changes no value; only the logits pair is gone)."""
    from edgecnn.export.trt_check import check_trt_onnx
    from edgecnn.runtime import load

    m, trt, uint8 = sym_qat_trt
    assert m["trt_qdq"]["source"] == "qat" and m["source"]["model_file"] == "qat/model.keras"
    assert _qdq_types(trt) == ({"INT8"}, {0}) and check_trt_onnx(trt).ok
    x = rt_patches["eval_x"]
    with load(trt) as a, load(uint8) as b:
        assert a.threshold == b.threshold
        pa, pb = a.predict(x), b.predict(x)
    assert np.max(np.abs(pa - pb)) < 0.02 and np.mean((pa >= a.threshold) == (pb >= b.threshold)) >= 0.99


def test_symmetric_qat_trt_accuracy_within_half_a_point_of_float(sym_qat_trt, ptq_trt, test_patches):
    _, trt, _ = sym_qat_trt
    _, _, fp32 = ptq_trt
    b_fp32, b_trt = _bac(fp32, test_patches), _bac(trt, test_patches)
    assert abs(b_trt - b_fp32) <= MAX_BAC_DROP, (b_fp32, b_trt, len(test_patches))


def test_tf2onnx_qat_onnx_is_rejected_with_a_readable_list(qat_run, tmp_path):
    """Today's QAT path (tfmot asymmetric → tf2onnx): UINT8 activations, the checker names them."""
    from typer.testing import CliRunner

    from edgecnn.cli import app
    from edgecnn.export.trt_check import check_trt_onnx

    run, _ = qat_run
    _, uint8 = _export(run, "int8-qat", tmp_path)
    types, zps = _qdq_types(uint8)
    assert "UINT8" in types and zps - {0}
    rep = check_trt_onnx(uint8)
    assert not rep.ok and "int8-type" in {v["rule"] for v in rep.violations}
    r = CliRunner().invoke(app, ["export", "--check-trt", str(uint8)])
    assert r.exit_code == 1 and "UINT8 (asymmetric) quantization is not supported" in r.output
    assert "by rule:" in r.output


def test_int8_trt_from_asymmetric_qat_run_falls_back_to_ptq(qat_run, tmp_path):
    """A run whose QAT model is asymmetric (the TFLite scheme) gets the calibrated PTQ file."""
    run, _ = qat_run
    m, trt = _export(run, "int8-trt", tmp_path)
    assert m["trt_qdq"]["source"] == "ptq" and m["source"]["model_file"] == "model.keras"
    assert _qdq_types(trt) == ({"INT8"}, {0})
