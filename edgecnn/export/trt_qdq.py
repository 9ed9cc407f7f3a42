"""The TensorRT-ready int8 ONNX (`<model>-int8-trt.onnx`): symmetric INT8 Q/DQ, zero points 0.

Two ways in, both ending in the same layout (NVIDIA's explicit-quantization guide): a Q→DQ pair
on the activation input of every Conv/MatMul, per-channel INT8 weights → DequantizeLinear on the
output-channel axis (Conv 0, MatMul 1), biases float, nothing quantized that no weighted op reads.

- ``ptq``: the float ONNX calibrated on training patches by onnxruntime's ``quantize_static``
  (QDQ, QInt8 activations and weights, ActivationSymmetric/WeightSymmetric, per channel, no bias
  quantization, only Conv/MatMul/Gemm). The conv that reads the image stays float: symmetric
  INT8 keeps [0, 1] pixels at 7 bits, which cost a calibrated model ~0.7 pt of balanced accuracy
  on the fixture run (QAT learns around it, so the QAT path quantizes it).
- ``qat``: the run's QAT model trained with symmetric activation ranges (``edgecnn quantize
  --activations symmetric``) through tf2onnx. tf2onnx writes every fake-quant as UINT8 Q/DQ; a
  symmetric range [-128 s, 127 s] comes out as zero point 128, which is exactly INT8 with zero
  point 0 (q_int8 = q_uint8 - 128), so the rewrite changes no value. An asymmetric range has no
  exact INT8 form: that is an error asking for a symmetric QAT model, not a silent re-scale.
Both files are then checked with ``trt_check`` before export writes them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecnn.export.errors import ExportError
from edgecnn.export.onnx_graph import INPUT_NAME, PatchReader, add_weight_qdq, check

WEIGHTED = ("Conv", "MatMul", "Gemm")
UINT8_SYMMETRIC_ZP = 128


def quantize_static_trt(fp32: Path, dest: Path, images: np.ndarray, batch: int | None) -> dict:
    """Calibrated symmetric INT8 QDQ for TensorRT; returns the calibration settings for the manifest."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    if len(images) == 0:
        raise ExportError("the representative set is empty: int8-trt calibration needs training patches")
    reader = type("Reader", (PatchReader, CalibrationDataReader), {})(images, INPUT_NAME, batch)
    options = {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False}
    keep_float = input_convs(onnx.load(str(fp32)))
    quantize_static(str(fp32), str(dest), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=list(WEIGHTED), calibrate_method=CalibrationMethod.MinMax,
                    nodes_to_exclude=keep_float, extra_options=options)
    model = onnx.load(str(dest))
    drop_unused_qdq(model.graph)
    check(model)
    onnx.save(model, str(dest))
    return {"method": "MinMax", "tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
            "per_channel": True, "activations": "int8 symmetric", "weights": "int8 symmetric",
            "quantized_ops": list(WEIGHTED), "options": options, "float_layers": keep_float,
            "float_layers_why": "the conv reading the model input: symmetric INT8 holds [0, 1] pixels at 7 bits "
                                "(scale 1/127), which costs a calibrated model accuracy; QAT learns around it"}


def input_convs(model) -> list[str]:
    """The weighted nodes that read the graph input (through Transpose/Reshape...): kept float by PTQ."""
    from edgecnn.export.trt_check import COMMUTING

    frontier, found = {i.name for i in model.graph.input}, []
    for n in model.graph.node:           # nodes are in topological order
        if not any(x in frontier for x in n.input):
            continue
        if n.op_type in WEIGHTED:
            found.append(n.name)
        elif n.op_type in COMMUTING:
            frontier.update(n.output)
    return found


def qat_to_trt(proto) -> dict:
    """Rewrite tf2onnx's QAT ONNX in place into TensorRT's layout; returns counts for the manifest."""
    n_weights = add_weight_qdq(proto)
    n_act = uint8_to_int8(proto.graph)
    removed = drop_unused_qdq(proto.graph)
    return {"weights_int8": n_weights, "activation_qdq_int8": n_act, "pairs_removed": removed}


def uint8_to_int8(g) -> int:
    """UINT8 zero point 128 → INT8 zero point 0 (exact); anything else is an ExportError."""
    from onnx import TensorProto, numpy_helper

    inits = {i.name: i for i in g.initializer}
    done: set[str] = set()
    nodes = 0
    for n in g.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(n.input) < 3:
            continue
        zp_name = n.input[2]
        init = inits.get(zp_name)
        if zp_name not in done and (init is None or init.data_type != TensorProto.UINT8):
            continue
        if zp_name not in done:
            zp = numpy_helper.to_array(init).astype(np.int32)
            if np.any(zp != UINT8_SYMMETRIC_ZP):
                raise ExportError(
                    f"{n.name}: the QAT model's activation range is asymmetric (UINT8 zero point "
                    f"{sorted(set(zp.ravel().tolist()))}); TensorRT needs symmetric INT8. Re-run QAT with symmetric "
                    "activations (`edgecnn quantize RUN --activations symmetric`) or export the PTQ path "
                    "(the int8-trt export falls back to it when the run has no symmetric QAT model)")
            init.CopyFrom(numpy_helper.from_array(np.zeros(zp.shape, np.int8), zp_name))
            done.add(zp_name)
        nodes += 1
        _drop_axis_if_per_tensor(n, inits)
    return nodes


def _drop_axis_if_per_tensor(n, inits) -> None:
    # tf2onnx writes axis=1 on per-tensor pairs; ONNX ignores it there, some parsers trip on it.
    scale = inits.get(n.input[1])
    if scale is not None and len(scale.dims) == 0:
        for a in list(n.attribute):
            if a.name == "axis":
                n.attribute.remove(a)


def drop_unused_qdq(g) -> int:
    """Remove activation Q→DQ pairs that no weighted op reads; returns how many.

    TensorRT's guide: quantize the inputs of weighted ops, not their outputs. A pair on a conv's
    output before its ReLU (onnxruntime puts one there) rounds twice, once over a range that is
    half negative; one before Softmax only adds rounding. A pair survives when a path through
    the ops TensorRT moves a DequantizeLinear across (MaxPool, Reshape, Transpose...) reaches a
    Conv/MatMul/Gemm, or when its output is a graph output (whose name it carries).
    """
    consumers = _consumers(g)
    inits = {i.name for i in g.initializer}
    outputs = {o.name for o in g.output}
    removed = 0
    for q in [n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits]:
        dqs = consumers.get(q.output[0], [])
        if not dqs or any(d.op_type != "DequantizeLinear" for d in dqs) or any(d.output[0] in outputs for d in dqs):
            continue
        if any(_reaches_weighted(d.output[0], consumers, set()) for d in dqs):
            continue
        for d in dqs:
            _rewire(consumers, d.output[0], q.input[0])
            g.node.remove(d)
        g.node.remove(q)
        removed += 1
    _drop_unused_initializers(g)
    return removed


def _consumers(g) -> dict[str, list]:
    out: dict[str, list] = {}
    for n in g.node:
        for x in n.input:
            out.setdefault(x, []).append(n)
    return out


def _reaches_weighted(name: str, consumers: dict, seen: set) -> bool:
    from edgecnn.export.trt_check import COMMUTING

    for c in consumers.get(name, []):
        if c.op_type in WEIGHTED:
            return True
        if c.op_type in COMMUTING and c.name not in seen:
            seen.add(c.name)
            if any(_reaches_weighted(o, consumers, seen) for o in c.output):
                return True
    return False


def _rewire(consumers: dict, old: str, new: str) -> None:
    for c in consumers.get(old, []):
        for i, x in enumerate(c.input):
            if x == old:
                c.input[i] = new


def _drop_unused_initializers(g) -> None:
    used = {i for n in g.node for i in n.input}
    for init in list(g.initializer):
        if init.name not in used:
            g.initializer.remove(init)
