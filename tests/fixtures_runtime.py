"""Session fixtures for the runtime and bench tests: a tiny real basic_cnn, fitted for a few
steps on real IDC patches and converted with the real converters (TFLite, tf2onnx, onnxruntime
quantization, OpenVINO). Built once per session; later this can call edgecnn.export instead.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

RT_PER_CLASS = 320       # patches per class read from the real data
RT_N_EVAL = 256          # held out for evaluation; the rest trains the model


def read_idc_patches(root: Path, per_class: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A quick PIL reader for ``per_class`` full-size 50×50 patches of each class (shuffled)."""
    from PIL import Image

    files = {0: [], 1: []}
    for p in sorted(Path(root).glob("*/[01]/*.png")):
        files[int(p.parent.name)].append(p)
    rng = random.Random(seed)
    images, labels = [], []
    for cls, paths in files.items():
        rng.shuffle(paths)
        taken = 0
        for p in paths:
            with Image.open(p) as im:
                if im.size != (50, 50):
                    continue  # border patches; the scan layer owns resizing
                images.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            labels.append(cls)
            taken += 1
            if taken == per_class:
                break
    order = np.random.default_rng(seed).permutation(len(labels))
    return np.stack(images)[order], np.asarray(labels, dtype=np.int8)[order]


@pytest.fixture(scope="session")
def rt_patches(idc_data) -> dict:
    x, y = read_idc_patches(idc_data, RT_PER_CLASS)
    return {"train_x": x[RT_N_EVAL:], "train_y": y[RT_N_EVAL:], "eval_x": x[:RT_N_EVAL], "eval_y": y[:RT_N_EVAL]}


def _write(path: Path, data: bytes, manifest: dict) -> Path:
    from edgecnn.fsutil import write_bytes
    from edgecnn.manifest import write_manifest

    write_bytes(path, data)
    write_manifest(path, manifest)
    return path


@pytest.fixture(scope="session")
def rt_artifacts(tmp_path_factory, rt_patches) -> dict:
    """Paths of real artifacts of one tiny model, plus its Keras probabilities on ``eval_x``."""
    from edgecnn._tf import keras, tf
    from edgecnn.manifest import new_manifest
    from edgecnn.metrics import best_threshold
    from edgecnn.models import create_model
    from edgecnn.preprocess import to_float

    out = tmp_path_factory.mktemp("rt_artifacts")
    tf.keras.utils.set_random_seed(0)
    keras.utils.set_random_seed(0)
    model = create_model("basic_cnn")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    xtr = to_float(rt_patches["train_x"])
    model.fit(xtr, rt_patches["train_y"].astype("int32"), batch_size=32, epochs=2, verbose=0)
    keras_path = out / "basic_cnn.keras"
    model.save(keras_path)
    xev = to_float(rt_patches["eval_x"])
    keras_probs = model.predict(xev, batch_size=64, verbose=0)[:, 1].astype(np.float32)
    # As a real export does: the operating threshold is chosen on data, here the training patches.
    threshold, _ = best_threshold(rt_patches["train_y"], model.predict(xtr, batch_size=64, verbose=0)[:, 1])

    def man(fmt, precision, dtype="float32", quant=None):
        m = new_manifest(model="basic_cnn", fmt=fmt, precision=precision, input_shape=[None, 50, 50, 3],
                         input_dtype=dtype, threshold=threshold)
        m["input"]["quantization"] = quant
        return m

    paths: dict = {"dir": out, "keras": keras_path, "keras_probs": keras_probs, "threshold": threshold}

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    paths["tflite_fp32"] = _write(out / "basic_cnn-fp32.tflite", conv.convert(), man("tflite", "fp32"))

    def rep():
        for i in range(0, 128, 8):
            yield [xtr[i:i + 8]]

    def int8(io_int8: bool) -> bytes:
        c = tf.lite.TFLiteConverter.from_keras_model(model)
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.representative_dataset = rep
        c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if io_int8:
            c.inference_input_type = tf.int8
            c.inference_output_type = tf.int8
        return c.convert()

    paths["tflite_int8"] = _write(out / "basic_cnn-int8-ptq.tflite", int8(True),
                                  man("tflite", "int8-ptq", "int8", {"scale": 1 / 255, "zero_point": -128}))
    fio = out / "float_io"
    fio.mkdir()
    paths["tflite_int8_fio"] = _write(fio / "basic_cnn-int8-ptq.tflite", int8(False), man("tflite", "int8-ptq"))

    import tf2onnx

    proto, _ = tf2onnx.convert.from_keras(
        model, input_signature=[tf.TensorSpec((None, 50, 50, 3), tf.float32, name="patch")], opset=17)
    paths["onnx_fp32"] = _write(out / "basic_cnn-fp32.onnx", proto.SerializeToString(), man("onnx", "fp32"))

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter([{"patch": xtr[i:i + 8]} for i in range(0, 128, 8)])

        def get_next(self):
            return next(self._it, None)

    onnx_int8 = out / "basic_cnn-int8-ptq.onnx"
    quantize_static(str(paths["onnx_fp32"]), str(onnx_int8), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    from edgecnn.manifest import write_manifest

    write_manifest(onnx_int8, man("onnx", "int8-ptq"))
    paths["onnx_int8"] = onnx_int8

    import openvino as ov

    xml = out / "basic_cnn-fp32.xml"
    # compress_to_fp16=False: the IR must hold the same fp32 weights as the ONNX it came from.
    ov.save_model(ov.convert_model(str(paths["onnx_fp32"])), str(xml), compress_to_fp16=False)
    write_manifest(xml, man("openvino", "fp32"))
    paths["ov_fp32"] = xml
    return paths
