"""TensorRT's rules for an explicitly quantized (Q/DQ) ONNX, checked without TensorRT.

The rules come from NVIDIA's "Explicit Quantization" guide and the ONNX-TensorRT operator list
(docs/tensorrt.md has the links):
- INT8 Q/DQ only, symmetric: the zero point's type is INT8 and every value of it is 0 (the
  parser stops at "TRT only supports symmetric quantization - zeroPt must be all zeros").
  UINT8 is not a TensorRT type; reading it as INT8 with the same scale would clip at half range.
- Scales are initializers, finite and > 0. Activations are per tensor (scalar scale);
  per-channel scales are for weights only, one per output channel (Conv axis 0; MatMul/Gemm the
  axis of N), and need opset >= 13 (the ``axis`` attribute).
- A DequantizeLinear of INT32 (ONNX Runtime's quantized bias) has no TensorRT equivalent.
- Every QuantizeLinear feeds DequantizeLinear nodes only (Q→DQ pairs; no integer tensor escapes).
- Opset 13..25 (ai.onnx domain); every op in the default domain and in the parser's list.
Placement advice (inputs of Conv/MatMul/Gemm quantized) is reported as warnings, not violations.

No TensorFlow here; only ``onnx`` and numpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

OPSET_MIN, OPSET_MAX = 13, 25
WEIGHTED = ("Conv", "ConvTranspose", "MatMul", "Gemm")
# ONNX ops the TensorRT 10/11 parser converts (onnx-tensorrt docs/operators.md), the ones a CNN uses.
SUPPORTED_OPS = frozenset("""
Abs Add AveragePool BatchNormalization Cast Ceil Clip Concat Constant ConstantOfShape Conv ConvTranspose
DequantizeLinear Div Dropout Elu Equal Erf Exp Expand Flatten Floor Gather Gemm GlobalAveragePool
GlobalMaxPool HardSigmoid HardSwish Identity InstanceNormalization LayerNormalization LeakyRelu Log
LogSoftmax MatMul Max MaxPool Mean Min Mul Neg Pad Pow PRelu QuantizeLinear Reciprocal ReduceMax ReduceMean
ReduceMin ReduceSum Relu Reshape Resize Shape Sigmoid Slice Softmax Softplus Split Sqrt Squeeze Sub Sum
Tanh Tile Transpose Unsqueeze Where
""".split())


@dataclass
class TrtReport:
    file: str
    violations: list[dict[str, str]] = field(default_factory=list)
    warnings: list[dict[str, str]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.violations

    def add(self, rule: str, node: str, message: str, warning: bool = False) -> None:
        (self.warnings if warning else self.violations).append({"rule": rule, "node": node, "message": message})

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "ok": self.ok, "violations": self.violations, "warnings": self.warnings,
                "stats": self.stats}

    def text(self, limit: int = 40) -> str:
        """A readable list: one line per violation (then warnings), grouped rule first."""
        head = (f"{self.file}: TensorRT-ready ({self.stats.get('q', 0)} Q / {self.stats.get('dq', 0)} DQ, INT8, "
                "zero points 0)" if self.ok else f"{self.file}: {len(self.violations)} TensorRT violation(s)")
        lines = [head]
        if self.violations:
            from collections import Counter

            by_rule = Counter(v["rule"] for v in self.violations)
            lines.append("  by rule: " + ", ".join(f"{r} ×{n}" for r, n in by_rule.most_common()))
        for kind, rows in (("violation", self.violations), ("warning", self.warnings)):
            for r in rows[:limit]:
                lines.append(f"  {kind}: [{r['rule']}] {r['node']}: {r['message']}")
            if len(rows) > limit:
                lines.append(f"  ... and {len(rows) - limit} more {kind}s")
        return "\n".join(lines)


def _opset(model) -> int | None:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None)


def _const(name: str, inits: dict, consts: dict):
    if name in inits:
        from onnx import numpy_helper

        return numpy_helper.to_array(inits[name]), inits[name].data_type
    return consts.get(name, (None, None))


def _constant_nodes(graph) -> dict[str, tuple[np.ndarray, int]]:
    from onnx import numpy_helper

    out = {}
    for n in graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    out[n.output[0]] = (numpy_helper.to_array(a.t), a.t.data_type)
    return out


def _weight_axis(consumer, input_index: int, ndim: int) -> int | None:
    """The output-channel axis of a weight input: where per-channel scales belong."""
    if consumer.op_type == "Conv" and input_index == 1:
        return 0
    if consumer.op_type == "ConvTranspose" and input_index == 1:
        return 1
    if consumer.op_type == "MatMul" and input_index == 1:
        return ndim - 1
    if consumer.op_type == "Gemm" and input_index == 1:
        trans_b = next((a.i for a in consumer.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    return None


def _check_qdq(rep: TrtReport, n, inits, consts, consumers, producers, opset) -> None:
    from onnx import TensorProto

    name = n.name or n.output[0]
    scale, _ = _const(n.input[1], inits, consts) if len(n.input) > 1 else (None, None)
    if scale is None:
        rep.add("scale-constant", name, f"scale {n.input[1]!r} is not an initializer/constant; TensorRT needs "
                                        "constant scales")
        return
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        rep.add("scale-positive", name, f"scale has non-positive or non-finite values (min {float(np.min(scale)):g})")
    zp_name = n.input[2] if len(n.input) > 2 else ""
    zp, zp_type = _const(zp_name, inits, consts) if zp_name else (None, None)
    if zp_name and zp is None:
        rep.add("zero-point-constant", name, f"zero point {zp_name!r} is not an initializer/constant")
    elif zp is None and n.op_type == "QuantizeLinear":
        rep.add("int8-type", name, "no zero point: ONNX then quantizes to UINT8; TensorRT needs an INT8 zero point")
    if zp is not None:
        tname = TensorProto.DataType.Name(zp_type)
        if zp_type != TensorProto.INT8:
            what = ("an INT32 bias DequantizeLinear (quantized bias): TensorRT keeps biases float; quantize with "
                    "QuantizeBias=False" if zp_type == TensorProto.INT32 else
                    "UINT8 (asymmetric) quantization is not supported: TensorRT needs INT8 with zero point 0")
            rep.add("int8-type", name, f"zero point type {tname}: {what}")
        elif np.any(zp != 0):
            vals = sorted(set(np.asarray(zp).ravel().tolist()))[:5]
            rep.add("zero-point-zero", name, f"INT8 zero point(s) {vals}: TensorRT supports symmetric quantization "
                                             "only (zero point 0)")
        if np.shape(zp) != np.shape(scale):
            rep.add("zero-point-shape", name, f"zero point shape {np.shape(zp)} differs from scale shape {np.shape(scale)}")
    if n.op_type == "DequantizeLinear" and n.input[0] in inits:
        _check_weight_dq(rep, n, name, scale, inits, consumers, opset)
        return
    if np.size(scale) != 1 or np.ndim(scale) > 1:
        rep.add("activation-per-tensor", name, f"activation scale has shape {list(np.shape(scale))}: TensorRT "
                                               "quantizes activations per tensor (one scalar scale)")
    if n.op_type == "QuantizeLinear":
        bad = [c.op_type for c in consumers.get(n.output[0], []) if c.op_type != "DequantizeLinear"]
        if bad:
            rep.add("q-feeds-dq", name, f"QuantizeLinear output feeds {sorted(set(bad))}: TensorRT needs Q→DQ pairs")
    elif n.input[0] not in producers or producers[n.input[0]].op_type != "QuantizeLinear":
        rep.add("dq-after-q", name, "DequantizeLinear of an activation that no QuantizeLinear produced")


def _check_weight_dq(rep, n, name, scale, inits, consumers, opset) -> None:
    from onnx import numpy_helper

    w = numpy_helper.to_array(inits[n.input[0]])
    axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
    axis = axis + w.ndim if axis < 0 else axis
    users = consumers.get(n.output[0], [])
    if np.size(scale) == 1:
        rep.stats["per_tensor_weights"] = rep.stats.get("per_tensor_weights", 0) + 1
        return
    rep.stats["per_channel_weights"] = rep.stats.get("per_channel_weights", 0) + 1
    if opset is not None and opset < 13:
        rep.add("opset", name, f"per-channel scales need opset >= 13 (the axis attribute); the model has {opset}")
    if np.ndim(scale) != 1 or axis >= w.ndim or np.size(scale) != w.shape[axis]:
        rep.add("scale-shape", name, f"per-channel scale of {np.size(scale)} values on axis {axis} of a weight of "
                                     f"shape {list(w.shape)}")
    for c in users:
        want = _weight_axis(c, list(c.input).index(n.output[0]), w.ndim)
        if want is not None and axis != want:
            rep.add("weight-axis", name, f"per-channel axis {axis}, but {c.op_type} {c.name!r} has its output "
                                         f"channels on axis {want}")


# TensorRT moves a DequantizeLinear forward across these ("commuting" layers) to reach the conv.
COMMUTING = frozenset({"MaxPool", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})


def _from_dq(x: str, producers) -> bool:
    p = producers.get(x)
    while p is not None and p.op_type in COMMUTING:
        p = producers.get(p.input[0])
    return p is not None and p.op_type == "DequantizeLinear"


def _placement(rep: TrtReport, graph, producers) -> None:
    for n in graph.node:
        if n.op_type not in WEIGHTED:
            continue
        for i, x in enumerate(n.input[:2]):
            if not _from_dq(x, producers):
                what = "input" if i == 0 else "weight"
                rep.add("placement", n.name or n.output[0], f"{n.op_type} {what} {x!r} is not quantized: this layer "
                                                            "runs in float (quantize both inputs of weighted ops)",
                        warning=True)


def check_trt_model(model, file: str = "<model>") -> TrtReport:
    """Check an ONNX ModelProto against TensorRT's explicit-quantization rules."""
    rep = TrtReport(file)
    g = model.graph
    opset = _opset(model)
    rep.stats["opset"] = opset
    if opset is None or not OPSET_MIN <= opset <= OPSET_MAX:
        rep.add("opset", "model", f"ai.onnx opset {opset}; TensorRT 10/11 with per-channel Q/DQ needs "
                                  f"{OPSET_MIN}..{OPSET_MAX}")
    inits = {i.name: i for i in g.initializer}
    consts = _constant_nodes(g)
    producers = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for x in n.input:
            consumers.setdefault(x, []).append(n)
    for n in g.node:
        if n.domain not in ("", "ai.onnx"):
            rep.add("op-domain", n.name or n.op_type, f"op {n.domain}.{n.op_type} is outside the ONNX domain; the "
                                                      "TensorRT parser has no importer for it")
        elif n.op_type not in SUPPORTED_OPS:
            rep.add("op-supported", n.name or n.op_type, f"op {n.op_type} is not in the TensorRT ONNX parser's list")
        if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
            _check_qdq(rep, n, inits, consts, consumers, producers, opset)
    counts = [n.op_type for n in g.node]
    rep.stats.update(q=counts.count("QuantizeLinear"), dq=counts.count("DequantizeLinear"))
    if rep.stats["q"] + rep.stats["dq"] == 0:
        rep.add("no-qdq", "model", "no QuantizeLinear/DequantizeLinear nodes: not an explicitly quantized int8 model")
    _placement(rep, g, producers)
    return rep


def check_trt_onnx(path: str | Path) -> TrtReport:
    """Check an ONNX file; an unreadable file is a ValueError naming it."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file; pass the .onnx to check (e.g. exported/release/basic_cnn-int8-trt.onnx)")
    try:
        model = onnx.load(str(path))
    except Exception as e:  # onnx raises DecodeError, ValueError... on damaged files
        raise ValueError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e}); re-export it") from e
    return check_trt_model(model, str(path))
