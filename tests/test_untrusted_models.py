"""Model files from elsewhere: nothing in them runs code or reaches outside their folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from edgecnn.cli import app
from edgecnn.manifest import ArtifactError, manifest_path, new_manifest, read_manifest, write_manifest

runner = CliRunner()


def _onnx_with_external_data(folder, location: str):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((2, 2), np.float32), "w")
    w.ClearField("raw_data")
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", location
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [w])
    path = folder / "model.onnx"
    onnx.save_model(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    write_manifest(path, new_manifest(model="x", fmt="onnx", precision="fp32", input_shape=[None, 50, 50, 3]))
    return path


def test_onnx_external_data_outside_its_folder_is_refused(tmp_path):
    pytest.importorskip("onnxruntime")
    from edgecnn.runtime import load

    (tmp_path / "secret.bin").write_bytes(np.ones((2, 2), np.float32).tobytes())
    folder = tmp_path / "model"
    folder.mkdir()
    path = _onnx_with_external_data(folder, "../secret.bin")
    with pytest.raises(Exception, match="escapes model directory") as e:
        load(path)
    assert "Traceback" not in str(e.value)
    r = runner.invoke(app, ["scan", "examples/field-14082.png", "--model", str(path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "escapes model directory" in " ".join(r.output.split())


def test_manifest_naming_a_file_elsewhere_is_refused(tmp_path):
    art = tmp_path / "m.tflite"
    art.write_bytes(b"x")
    write_manifest(art, new_manifest(model="x", fmt="tflite", precision="fp32", input_shape=[None, 50, 50, 3]))
    m = read_manifest(art)
    for bad in ("../../etc/passwd", "/etc/passwd", "sub/m.tflite", ".."):
        manifest_path(art).write_text(json.dumps({**m, "file": bad}))
        with pytest.raises(ArtifactError, match="outside its own folder"):
            read_manifest(art)


def test_npz_with_objects_is_never_unpickled(tmp_path):
    """bench reads .npz patches with numpy's default allow_pickle=False: an object array is an error."""
    from edgecnn.bench.data import load_eval_data

    np.savez(tmp_path / "evil.npz", images=np.array([object()], dtype=object), labels=np.zeros(1))
    with pytest.raises(ValueError, match="allow_pickle"):
        load_eval_data(str(tmp_path / "evil.npz"))


@pytest.mark.slow
def test_keras_lambda_layer_is_refused(tmp_path):
    from edgecnn._tf import keras

    inp = keras.Input((50, 50, 3))
    x = keras.layers.Lambda(lambda t: t * 2)(inp)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
    keras.Model(inp, out).save(tmp_path / "lambda.keras")
    from edgecnn.models.precision import load_float32

    with pytest.raises(ValueError, match=r"lambda\.keras: refused.*safe mode"):
        load_float32(tmp_path / "lambda.keras")
