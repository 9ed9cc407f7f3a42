"""Backend.predict input checks, threads and OpenVINO precision."""

from __future__ import annotations

import numpy as np
import pytest

from edgecnn.runtime import load


@pytest.fixture(scope="module")
def tfl(rt_artifacts):
    with load(rt_artifacts["tflite_int8"]) as b:
        yield b


@pytest.mark.parametrize("bad, message", [
    (np.zeros((2, 50, 50, 3), np.float32), r"must be uint8 RGB pixels .* got dtype float32"),
    (np.zeros((2, 50, 50, 4), np.uint8), r"expected 3 RGB channels"),
    (np.zeros((2, 50, 50, 1), np.uint8), r"expected 3 RGB channels"),
    (np.zeros((50, 50), np.uint8), r"got a 2-D array of shape \(50, 50\)"),
    (np.zeros((2, 64, 64, 3), np.uint8), r"takes 50×50 patches; got 64×64"),
    (np.zeros((1, 2, 50, 50, 3), np.uint8), r"5-D array"),
    ([[1, 2, 3]], r"must be a numpy array"),
])
def test_bad_inputs_get_clear_errors(tfl, bad, message):
    with pytest.raises(ValueError, match=message):
        tfl.predict(bad)


def test_bad_batch_size(tfl):
    with pytest.raises(ValueError, match="batch_size"):
        tfl.predict(np.zeros((2, 50, 50, 3), np.uint8), batch_size=0)


def test_single_patch_and_empty_batch(tfl, rt_patches):
    x = rt_patches["eval_x"][:3]
    many = tfl.predict(x)
    one = tfl.predict(x[1])
    assert one.shape == (1,) and one[0] == pytest.approx(many[1], abs=1e-6)
    assert tfl.predict(np.zeros((0, 50, 50, 3), np.uint8)).shape == (0,)


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2"])
def test_bad_threads(rt_artifacts, bad):
    with pytest.raises(ValueError, match="threads"):
        load(rt_artifacts["onnx_fp32"], threads=bad)


def test_threads_reach_the_runtime(rt_artifacts, rt_patches):
    x = rt_patches["eval_x"][:16]
    with load(rt_artifacts["onnx_fp32"], threads=1) as b:
        so = b.session.get_session_options()
        assert (so.intra_op_num_threads, so.inter_op_num_threads) == (1, 1)
        p1 = b.predict(x)
    with load(rt_artifacts["onnx_fp32"], threads=2) as b:
        assert b.session.get_session_options().intra_op_num_threads == 2
        np.testing.assert_allclose(b.predict(x), p1, atol=1e-6)
    for t in (1, 2):
        with load(rt_artifacts["ov_fp32"], threads=t) as b:
            assert b.num_threads == t
    with load(rt_artifacts["tflite_fp32"], threads=2) as b:
        assert b.threads == 2 and b.info()["threads"] == 2
        np.testing.assert_allclose(b.predict(x), p1, atol=1e-5)


def test_openvino_precision_is_explicit(rt_artifacts, rt_patches):
    """Default f32 must be what the compiled model reports (this CPU would otherwise pick bf16)."""
    x = rt_patches["eval_x"][:64]
    with load(rt_artifacts["ov_fp32"]) as f32:
        assert f32.inference_precision == "f32"
        p32 = f32.predict(x)
    with load(rt_artifacts["onnx_fp32"], runtime="openvino", precision="bf16") as bf:
        assert bf.inference_precision == "bf16"
        assert bf.info()["inference_precision"] == "bf16"
        pbf = bf.predict(x)
    np.testing.assert_allclose(p32, rt_artifacts["keras_probs"][:64], atol=1e-5)
    assert np.abs(pbf - p32).max() < 0.1
    with pytest.raises(ValueError, match="f32, bf16"):
        load(rt_artifacts["ov_fp32"], precision="int4")


def test_precision_is_refused_where_it_cannot_apply(rt_artifacts):
    with pytest.raises(ValueError, match="OpenVINO runtime only"):
        load(rt_artifacts["tflite_fp32"], precision="bf16")


def test_ort_providers(rt_artifacts):
    with load(rt_artifacts["onnx_fp32"], providers=["cpu"]) as b:
        assert b.info()["providers"] == ["CPUExecutionProvider"]
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(ValueError, match="provider 'cuda' is not available"):
            load(rt_artifacts["onnx_fp32"], providers=["cuda"])
