"""TFLite export: fp32, fp16, dynamic range, int8 from the QAT model, int8 by post-training quantization.

An int8 graph must be integer end to end; ``inspect_ops`` reads the converted flatbuffer's op list
and names every op that still computes in float (a DEQUANTIZE → float op → QUANTIZE island).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.export.errors import ExportError
from edgecnn.fsutil import write_bytes

# "uint8-int8": raw uint8 pixels in, int8 scores out, so an integer-only NPU (Arm Ethos-U via
# Vela, microcontrollers) runs the whole graph with no float QUANTIZE/DEQUANTIZE left on the CPU.
IO_TYPES = ("float", "int8", "uint8", "uint8-int8")


def io_dtypes(io: str) -> tuple[str, str]:
    """(input, output) element types of an ``--io`` choice."""
    return (io, io) if "-" not in io else tuple(io.split("-", 1))  # type: ignore[return-value]
INT8_PRECISIONS = ("int8-qat", "int8-ptq")


def convert_keras(model, precision: str, io: str = "float", input_size: int | None = None,
                  representative: np.ndarray | None = None, batch: int | None = None) -> bytes:
    """The TFLite flatbuffer of a Keras model. ``representative``: uint8 patches (int8-ptq only)."""
    from edgecnn._tf import tf
    from edgecnn.preprocess import to_float

    if io not in IO_TYPES:
        raise ExportError(f"--io must be one of {', '.join(IO_TYPES)}, not {io!r}")
    if io != "float" and precision not in INT8_PRECISIONS:
        raise ExportError(f"--io {io} applies to int8 graphs ({', '.join(INT8_PRECISIONS)}); "
                          f"a {precision} TFLite model takes float input: drop --io or pick an int8 precision")
    size = input_size or int(model.input_shape[1])
    if batch:
        # A fixed batch needs a concrete signature; from_keras_model keeps the batch resizable.
        fn = tf.function(lambda x: model(x, training=False))
        cf = fn.get_concrete_function(tf.TensorSpec([batch, size, size, 3], tf.float32, name="patch"))
        conv = tf.lite.TFLiteConverter.from_concrete_functions([cf], model)
    else:
        conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if precision == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif precision in ("dynamic", "int8-qat"):
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif precision == "int8-ptq":
        if representative is None or len(representative) == 0:
            raise ExportError("int8-ptq needs a non-empty representative set of training patches to calibrate "
                              "activation ranges; check that the run's training patients are in the data (--data)")
        reps = np.asarray(representative)

        def rep():
            for i in range(len(reps)):
                yield [to_float(reps[i:i + 1])]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif precision != "fp32":
        raise ExportError(f"no TFLite conversion for precision {precision!r}")
    if io != "float":
        dt_in, dt_out = (tf.int8 if t == "int8" else tf.uint8 for t in io_dtypes(io))
        conv.inference_input_type = dt_in
        conv.inference_output_type = dt_out
    try:
        return conv.convert()
    except Exception as e:  # the converter raises ConverterError and friends, with long MLIR logs
        raise ExportError(f"TFLite conversion ({precision}) failed: {type(e).__name__}: {str(e)[:800]}") from e


def _interpreter(content: bytes):
    from edgecnn.runtime.litert import interpreter_class

    return interpreter_class()(model_content=content)


def _is_float(t) -> bool:
    return np.dtype(t).kind == "f"


def inspect_ops(content: bytes) -> dict[str, Any]:
    """Op list of a flatbuffer and the ops computing in float.

    A QUANTIZE fed by the graph input and a DEQUANTIZE feeding the graph output are the float
    I/O boundary, not float compute; anything else touching a float tensor is a float op.
    """
    it = _interpreter(content)
    ins = {d["index"] for d in it.get_input_details()}
    outs = {d["index"] for d in it.get_output_details()}
    ops, float_ops = [], []
    for op in it._get_ops_details():
        name = op["op_name"]
        ops.append(name)
        types = [t for t in list(op.get("operand_types", [])) + list(op.get("result_types", []))]
        if not any(_is_float(t) for t in types):
            continue
        if name == "QUANTIZE" and set(op["inputs"]) <= ins:
            continue
        if name == "DEQUANTIZE" and set(op["outputs"]) <= outs:
            continue
        float_ops.append(name)
    return {"ops": ops, "float_ops": float_ops, "integer_only": not float_ops}


def io_details(content: bytes) -> dict[str, Any]:
    """Input/output dtype, shape signature and (scale, zero point) as the manifest records them."""
    it = _interpreter(content)

    def one(d):
        scale, zp = d.get("quantization", (0.0, 0))
        sig = [int(v) for v in d.get("shape_signature", d["shape"])]
        q = {"scale": float(scale), "zero_point": int(zp)} if scale else None
        return {"dtype": np.dtype(d["dtype"]).name, "shape": [None if v < 0 else v for v in sig], "quantization": q}

    return {"input": one(it.get_input_details()[0]), "output": one(it.get_output_details()[0])}


def export_tflite(ctx, spec, path: Path) -> dict[str, Any]:
    if spec.needs_qat:
        model = ctx.qat_model()
    else:
        model = ctx.float_model()
    rep = ctx.representative() if spec.precision == "int8-ptq" else None
    io = ctx.io if spec.precision in INT8_PRECISIONS else "float"
    content = convert_keras(model, spec.precision, io=io, input_size=ctx.input_size, representative=rep,
                            batch=ctx.fixed_batch)
    ops = inspect_ops(content)
    if spec.precision in INT8_PRECISIONS and not ops["integer_only"] and ctx.console is not None:
        ctx.console.print(f"[yellow]{path.name}: float ops remain in the int8 graph: {', '.join(ops['float_ops'])}")
    write_bytes(path, content)
    extra: dict[str, Any] = {"io": io, **io_details(content), "ops": ops["ops"]}
    if spec.precision in INT8_PRECISIONS:
        extra.update(float_ops=ops["float_ops"], integer_only=ops["integer_only"])
    if rep is not None:
        extra["calibration"] = ctx.calibration_info(len(rep))
    return extra
