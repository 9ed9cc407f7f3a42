"""ONNX export: fp32 (tf2onnx, opset 17, input "patch", dynamic batch), int8-ptq (onnxruntime
quantize_static: QDQ, per-channel int8 weights, calibrated on training patches; ONNX Runtime's
fastest CPU int8), int8-qat (the QAT Keras model through tf2onnx: UINT8 activation Q/DQ) and
int8-trt (TensorRT's input: symmetric INT8 Q/DQ, zero points 0, edgecnn.export.trt_qdq)."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.export.errors import ExportError
from edgecnn.export.onnx_graph import INPUT_NAME, OPSET, PatchReader, add_weight_qdq, check
from edgecnn.fsutil import atomic_path


def keras_to_onnx(model, input_size: int, batch: int | None = None):
    """A checked ONNX ModelProto of a Keras model (float input named "patch")."""
    import tf2onnx

    from edgecnn._tf import tf

    spec = (tf.TensorSpec((batch, input_size, input_size, 3), tf.float32, name=INPUT_NAME),)
    try:
        proto, _ = tf2onnx.convert.from_keras(model, input_signature=spec, opset=OPSET)
    except Exception as e:
        raise ExportError(f"tf2onnx could not convert {model.name}: {type(e).__name__}: {str(e)[:800]}") from e
    check(proto)
    return proto


def quantize_static_qdq(fp32: Path, dest: Path, images: np.ndarray, batch: int | None, workdir: Path) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if len(images) == 0:
        raise ExportError("the representative set is empty: int8-ptq calibration needs training patches")
    src = workdir / (fp32.stem + "-pre.onnx")
    # Shape inference + graph cleanup first, as onnxruntime recommends before quantize_static.
    # Its failures are real (a missing dependency, a graph it cannot read) and surface here.
    quant_pre_process(str(fp32), str(src), skip_symbolic_shape=False)
    reader = type("Reader", (PatchReader, CalibrationDataReader), {})(images, INPUT_NAME, batch)
    quantize_static(str(src), str(dest), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    check(onnx.load(str(dest)))


def to_fp16(fp32: Path, dest: Path) -> None:
    """An fp16 copy with float32 I/O (TensorRT 11 builds fp16 only from an fp16 network)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(fp32)), keep_io_types=True)
    check(model)
    onnx.save(model, str(dest))


def build_onnx(ctx, kind: str, dest: Path) -> None:
    import onnx

    if kind == "fp32":
        onnx.save(keras_to_onnx(ctx.float_model(), ctx.input_size, ctx.fixed_batch), str(dest))
    elif kind == "int8-qat":
        proto = keras_to_onnx(ctx.qat_model(), ctx.input_size, ctx.fixed_batch)
        if add_weight_qdq(proto):
            check(proto)
        onnx.save(proto, str(dest))
    elif kind == "int8-ptq":
        quantize_static_qdq(ctx.onnx_path("fp32"), dest, ctx.representative(), ctx.fixed_batch, ctx.workdir)
    elif kind == "int8-trt":
        build_trt_onnx(ctx, dest)
    elif kind == "fp16":
        to_fp16(ctx.onnx_path("fp32"), dest)
    else:
        raise ExportError(f"no ONNX build for {kind!r}")


def trt_source(ctx) -> str:
    """qat when the run has a QAT model trained with symmetric activations, else ptq (calibrated)."""
    q = (ctx.qat_info().get("quantization") or {}) if ctx.has_qat() else {}
    return "qat" if str(q.get("activations", "")).startswith("int8 symmetric") else "ptq"


TRT_CALIB_SIZE = 1024


def trt_calibration_set(ctx) -> np.ndarray:
    """A seeded draw of up to TRT_CALIB_SIZE training patches, a whole number of batches of 32
    (onnxruntime's histogram calibrators fail on a ragged last batch)."""
    train = ctx.data.part("train")
    n = min(max(ctx.calib_size, TRT_CALIB_SIZE), len(train))
    n = n - n % 32 if n >= 32 else n
    if n < 1:
        raise ExportError(f"{ctx.run.path}: no training patches to calibrate the int8-trt ONNX; pass --data "
                          "pointing at the data the run was trained on")
    idx = np.sort(np.random.default_rng(ctx.seed).choice(len(train), size=n, replace=False))
    return np.asarray(train.images[idx])


def build_trt_onnx(ctx, dest: Path) -> None:
    """The TensorRT-ready int8 ONNX (edgecnn.export.trt_qdq), refused unless trt_check passes."""
    import onnx

    from edgecnn.export.trt_check import check_trt_model
    from edgecnn.export.trt_qdq import qat_to_trt, quantize_static_trt

    source = trt_source(ctx)
    if source == "qat":
        proto = keras_to_onnx(ctx.qat_model(), ctx.input_size, ctx.fixed_batch)
        info = {"source": "qat", **qat_to_trt(proto)}
        check(proto)
        onnx.save(proto, str(dest))
    else:
        src = ctx.workdir / "trt-pre.onnx"
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(str(ctx.onnx_path("fp32")), str(src), skip_symbolic_shape=False)
        images = trt_calibration_set(ctx)
        info = {"source": "ptq", "n_calibration_patches": len(images),
                **quantize_static_trt(src, dest, images, ctx.fixed_batch)}
    report = check_trt_model(onnx.load(str(dest)), dest.name)
    if not report.ok:
        raise ExportError("the int8-trt ONNX breaks TensorRT's rules (internal error, please report):\n" + report.text())
    ctx.trt_info = {**info, "trt_check": report.as_dict()}


def describe(path: Path) -> dict[str, Any]:
    """Op counts, input/output names and shapes of an ONNX file (for the manifest)."""
    import onnx

    m = onnx.load(str(path))
    counts = Counter(n.op_type for n in m.graph.node)

    def dims(vi):
        return [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]

    return {
        "ops": dict(sorted(counts.items())),
        "qdq_nodes": counts.get("QuantizeLinear", 0) + counts.get("DequantizeLinear", 0),
        "opset": max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=None),
        "input_name": m.graph.input[0].name, "input_shape": dims(m.graph.input[0]),
        "output_name": m.graph.output[0].name,
    }


def export_onnx(ctx, spec, path: Path) -> dict[str, Any]:
    src = ctx.onnx_path(spec.precision)
    with atomic_path(path) as tmp:
        shutil.copyfile(src, tmp)
    d = describe(path)
    extra: dict[str, Any] = {"io": "float", "onnx": d}
    if spec.precision == "int8-ptq":
        extra["calibration"] = {**ctx.calibration_info(min(ctx.calib_size, len(ctx.data.part("train")))),
                                "method": "MinMax", "format": "QDQ", "per_channel": True,
                                "activations": "int8", "weights": "int8"}
    if spec.precision == "int8-trt":
        extra["trt_qdq"] = getattr(ctx, "trt_info", None)
        if extra["trt_qdq"] and extra["trt_qdq"]["source"] == "ptq":
            extra["calibration"] = {**ctx.calibration_info(extra["trt_qdq"]["n_calibration_patches"]),
                                    **{k: v for k, v in extra["trt_qdq"].items() if k not in ("source", "trt_check")}}
    if spec.precision.startswith("int8") and d["qdq_nodes"] == 0:
        raise ExportError(f"{path.name}: no QuantizeLinear/DequantizeLinear nodes: the int8 export did not quantize")
    return extra
