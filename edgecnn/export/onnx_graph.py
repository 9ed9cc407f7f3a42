"""ONNX pieces both int8 ONNX builders share (``edgecnn.export.onnx`` and ``edgecnn.export.trt_qdq``):
the input name and opset, the checker, the calibration reader over training patches, and the
QAT weights' explicit int8 storage. No TensorFlow; onnx and onnxruntime load inside the functions."""

from __future__ import annotations

import numpy as np

from edgecnn.export.errors import ExportError

OPSET = 17
INPUT_NAME = "patch"


def add_weight_qdq(proto) -> int:
    """Give the QAT ONNX's conv/matmul weights explicit int8 storage + DequantizeLinear.

    tf2onnx constant-folds the weight fake-quant of a QAT model: weights arrive as float values
    already on tfmot's int8 grid (symmetric, narrow range: per output channel for conv, per tensor
    for dense), with QDQ only on activations. TensorRT runs a layer in int8 only when its weights
    are quantized too, so the grid is restored exactly (scale = max|w| / 127 reproduces it) and the
    weights stored as int8 → DequantizeLinear: per output channel for Conv (axis 0); per tensor for
    MatMul, whose tfmot grid is one scale (a per-column scale would move its values off that grid).
    Returns the number of weights converted.
    """
    from onnx import helper, numpy_helper

    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    done = 0
    for n in g.node:
        if n.op_type not in ("Conv", "MatMul") or len(n.input) < 2 or n.input[1] not in inits:
            continue
        w = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
        if n.op_type == "Conv":
            amax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
            scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
            q = np.rint(w / scale.reshape(-1, *([1] * (w.ndim - 1))))
            zp = np.zeros(scale.shape, np.int8)
            attrs = {"axis": 0}
        else:
            amax = float(np.abs(w).max())
            scale = np.array(amax / 127.0 if amax > 0 else 1.0, np.float32)
            q = np.rint(w / scale)
            zp = np.array(0, np.int8)
            attrs = {}
        base = n.input[1]
        g.initializer.extend([numpy_helper.from_array(np.clip(q, -127, 127).astype(np.int8), base + "_int8"),
                              numpy_helper.from_array(scale, base + "_scale"),
                              numpy_helper.from_array(zp, base + "_zero_point")])
        g.node.append(helper.make_node("DequantizeLinear", [base + "_int8", base + "_scale", base + "_zero_point"],
                                       [base + "_dq"], name=base + "_DequantizeLinear", **attrs))
        n.input[1] = base + "_dq"
        done += 1
    used = {i for n in g.node for i in n.input}
    for init in list(g.initializer):
        if init.name not in used:
            g.initializer.remove(init)
    if done:
        _topological_sort(g)
    return done


def _topological_sort(g) -> None:
    """ONNX wants producers before consumers; the new DequantizeLinear nodes were appended."""
    available = {i.name for i in g.initializer} | {i.name for i in g.input} | {""}
    pending, ordered = list(g.node), []
    while pending:
        progress = False
        for n in list(pending):
            if all(i in available for i in n.input):
                ordered.append(n)
                available.update(n.output)
                pending.remove(n)
                progress = True
        if not progress:
            raise ExportError("internal error: cycle while ordering the QAT ONNX graph")
    del g.node[:]
    g.node.extend(ordered)


def check(proto) -> None:
    import onnx

    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"the converted ONNX model is invalid ({str(e)[:500]}); the converter left an op ONNX "
                          "does not define (a QAT model that was never trained has empty quantization ranges)") from e


class PatchReader:
    """onnxruntime CalibrationDataReader over uint8 training patches (float input, batches of 32)."""

    def __init__(self, images: np.ndarray, input_name: str, batch: int | None):
        from edgecnn.preprocess import to_float

        step = batch or 32
        self._batches = [{input_name: to_float(images[i:i + step])} for i in range(0, len(images), step)
                         if batch is None or len(images[i:i + step]) == step]
        self._it = iter(self._batches)

    def get_next(self):
        return next(self._it, None)

    def rewind(self):
        self._it = iter(self._batches)
