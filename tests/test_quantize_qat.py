"""QAT: the fine-tune writes a loadable QAT model whose int8 TFLite graph is integer-only."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_qat_run_writes_model_metrics_and_pure_int8(qat_run):
    from edgecnn.fsutil import read_json
    from edgecnn.quantize import load_qat_model
    from edgecnn.train.fit import predict_probs as predict

    run, m = qat_run
    for name in ("model.keras", "model.json", "metrics.json"):
        assert (run.qat_dir / name).exists(), name
    info = read_json(run.qat_dir / "model.json")
    assert info["float_ops"] == [], info["int8_tflite_ops"]       # Conv→BN→ReLU folds into int8 conv
    assert "CONV_2D" in info["int8_tflite_ops"] and 0 < info["threshold"] < 1
    for key in ("val_bac_float", "val_bac_qat", "val_bac_inference", "val_bac_train_mode", "val_bac_bn_batch_stats"):
        assert 0.0 <= m[key] <= 1.0, key
    # Frozen BN: inference mode and the training loop's forward pass compute (nearly) the same thing.
    assert m["bn"] == "freeze" and m["bn_mode_gap"] < 0.03, m
    assert m["n_train_patients"] > 0 and m["test"]["n_patches"] > 0
    # The saved file round-trips through the project's loader and RunFolder's tfmot scope.
    model = load_qat_model(run.qat_model_path)
    x = np.random.default_rng(0).integers(0, 256, (4, 50, 50, 3), dtype=np.uint8)
    assert np.allclose(predict(model, x), predict(run.load_model(qat=True), x), atol=1e-6)


def test_symmetric_qat_keeps_symmetric_ranges_through_save_and_resume(sym_qat_run, tmp_path):
    """--activations symmetric: every activation range is [-128 s, 127 s] (TensorRT's INT8), in the
    saved model too, and a resume with the other scheme is refused."""
    import shutil

    from edgecnn.fsutil import read_json
    from edgecnn.quantize import load_qat_model, quantize_run
    from edgecnn.train.run import RunError, RunFolder

    run = RunFolder(shutil.copytree(sym_qat_run.path, tmp_path / "sym"))
    assert read_json(run.qat_dir / "metrics.json")["activations"] == "symmetric"
    model = load_qat_model(run.qat_model_path)
    ranges = {w.name: float(w.numpy()) for w in model.weights if w.name.endswith(("_min:0", "_max:0"))
              and w.shape.rank == 0 and "kernel" not in w.name}
    pairs = [(ranges[k], ranges[k.replace("_min:0", "_max:0")]) for k in ranges if k.endswith("_min:0")]
    assert len(pairs) >= 8, ranges
    for lo, hi in pairs:
        assert hi > 0 and lo == pytest.approx(-hi * 128 / 127, rel=1e-4), (lo, hi)
    with pytest.raises(RunError, match="same --activations"):
        quantize_run(run, epochs=2, resume=True, steps_per_epoch=2, limit=200, batch_size=32, progress=False)


def test_seed_order_standalone_bn_quantizes_and_reports_float_ops(tmp_path):
    """Conv(relu) → BN: tfmot needs our QuantizeConfig; the BN's MUL/ADD stay float and are named."""
    from edgecnn.export.tflite import convert_keras, inspect_ops
    from edgecnn.models import create_model
    from edgecnn.quantize import load_qat_model, quantize_keras_model
    from edgecnn.quantize.qat import save_qat_model
    from edgecnn.quantize.scheme import standalone_batchnorms

    model = create_model("basic_cnn", seed_order=True, input_size=32)
    assert standalone_batchnorms(model) == ["block1_2_bn", "block2_2_bn", "block3_2_bn"]
    assert standalone_batchnorms(create_model("basic_cnn", input_size=32)) == []
    q, standalone = quantize_keras_model(model)
    assert len(standalone) == 3
    # Settle the fake-quant ranges with a few training-mode passes (ranges start at zero).
    x = np.random.default_rng(0).random((16, 32, 32, 3), dtype=np.float32)
    for _ in range(3):
        q(x, training=True)
    ops = inspect_ops(convert_keras(q, "int8-qat", input_size=32))
    assert not ops["integer_only"]
    assert set(ops["float_ops"]) >= {"MUL", "ADD"} and "CONV_2D" not in ops["float_ops"]
    save_qat_model(q, tmp_path / "model.keras")
    again = load_qat_model(tmp_path / "model.keras")
    assert np.allclose(q(x, training=False).numpy(), again(x, training=False).numpy(), atol=1e-6)


def test_vgg13_tiny_quantizes_to_pure_int8():
    from edgecnn.export.tflite import convert_keras, inspect_ops
    from edgecnn.models import create_model
    from edgecnn.quantize import quantize_keras_model

    q, standalone = quantize_keras_model(create_model("vgg13", input_size=32, dropout=False))
    assert standalone == []
    x = np.random.default_rng(0).random((4, 32, 32, 3), dtype=np.float32)
    q(x, training=True)
    ops = inspect_ops(convert_keras(q, "int8-qat", input_size=32))
    assert ops["integer_only"], ops["float_ops"]
    assert ops["ops"].count("CONV_2D") == 10


def test_quantize_run_bad_inputs(tmp_path, export_run):
    import shutil

    from edgecnn.quantize import quantize_run
    from edgecnn.train.run import RunError

    with pytest.raises(RunError, match="no such run folder"):
        quantize_run(tmp_path / "nope", progress=False)
    broken = tmp_path / "broken"
    shutil.copytree(export_run.path, broken, ignore=shutil.ignore_patterns("qat", "ckpt", "plots"))
    (broken / "model.keras").write_bytes(b"not a keras file")
    with pytest.raises(RunError, match="cannot load the model"):
        quantize_run(broken, progress=False)
    (broken / "model.keras").unlink()
    with pytest.raises(RunError, match="no trained model"):
        quantize_run(broken, progress=False)
    with pytest.raises(ValueError, match="bn must be one of"):
        quantize_run(export_run, bn="sometimes", progress=False)


def test_only_a_qat_model_its_model_json_describes_is_finished(tmp_path):
    """quantize writes qat/model.keras, metrics.json, then model.json with the model's sha256: a kill
    in between leaves a model that export and evaluate refuse (they took it with the float threshold)."""
    from edgecnn.fsutil import sha256_file, write_json
    from edgecnn.train.run import RunError, RunFolder

    run = RunFolder(tmp_path)
    assert not run.qat_ready()
    run.qat_dir.mkdir()
    run.qat_model_path.write_bytes(b"a QAT model")
    assert not run.qat_ready()                                          # killed before model.json
    with pytest.raises(RunError, match="interrupted.*--resume"):
        run.load_model(qat=True)
    write_json(run.qat_dir / "model.json", {"threshold": 0.4, "model_sha256": "0" * 64})
    assert not run.qat_ready()                                          # an earlier QAT's model.json
    write_json(run.qat_dir / "model.json", {"threshold": 0.4, "model_sha256": sha256_file(run.qat_model_path)})
    assert run.qat_ready() and run.require_qat_model() == run.qat_model_path
    write_json(run.qat_dir / "model.json", {"threshold": 0.4})          # an older edgecnn's: taken as it is
    assert run.qat_ready()


@pytest.fixture(scope="module")
def qat_two_epochs(export_run, tmp_path_factory):
    """QAT of the tiny run for two epochs in one go (QAT_QUICK otherwise): the uninterrupted run."""
    import shutil

    from edgecnn.quantize import quantize_run
    from edgecnn.train.run import RunFolder
    from tests.fixtures_export import QAT_QUICK

    whole = RunFolder(shutil.copytree(export_run.path, tmp_path_factory.mktemp("qat2") / "whole",
                                      ignore=shutil.ignore_patterns("qat")))
    quantize_run(whole, **{**QAT_QUICK, "epochs": 2, "patience": 5})
    return whole


def test_a_resumed_qat_is_reproducible_continues_the_optimizer_and_trains_like_an_uninterrupted_one(
        qat_run, qat_two_epochs, tmp_path):
    """An interrupted QAT (state after epoch 1) resumed with --epochs 2 trains epoch 2 only, on top of
    the checkpoint. The same --seed gives the same QAT weights (dropout seeded per epoch), and the
    HDF5 checkpoint has no optimizer: without ckpt/optimizer.npz a resumed epoch started Adam afresh,
    and its loss and weights differed from the uninterrupted run's (kill_trials, quantize). So
    `qat_run` (1 epoch) resumed to 2 must equal the 2-epoch run epoch for epoch, and in its last weights."""
    import shutil

    from edgecnn.fsutil import read_json
    from edgecnn.quantize import load_qat_model, quantize_run
    from edgecnn.train.run import RunFolder
    from tests.fixtures_export import QAT_QUICK

    src, _ = qat_run                                         # QAT_QUICK: stopped after epoch 1
    assert (src.qat_dir / "ckpt" / "optimizer.npz").exists()
    resumed = RunFolder(shutil.copytree(src.path, tmp_path / "resumed"))
    before = read_json(resumed.qat_dir / "ckpt" / "state.json")
    assert before["epoch"] == 1 and [h["epoch"] for h in before["history"]] == [0, 1]
    last = resumed.qat_dir / "ckpt" / "last.keras"
    mtime = last.stat().st_mtime_ns
    m = quantize_run(resumed, **{**QAT_QUICK, "epochs": 2, "patience": 5}, resume=True)
    assert m["epochs_run"] == 2 and m["history"][:2] == before["history"]
    assert m["history"][2]["loss"] > 0 and last.stat().st_mtime_ns > mtime
    assert read_json(resumed.qat_dir / "ckpt" / "state.json")["epoch"] == 2
    history = [read_json(r.qat_dir / "ckpt" / "state.json")["history"] for r in (resumed, qat_two_epochs)]
    assert [h["epoch"] for h in history[0]] == [0, 1, 2] and history[0] == history[1]
    for a, b in zip(*(load_qat_model(r.qat_dir / "ckpt" / "last.keras").get_weights()
                      for r in (resumed, qat_two_epochs))):
        np.testing.assert_array_equal(a, b)


def test_a_rerun_of_a_finished_qat_keeps_its_best_epoch(qat_two_epochs, tmp_path):
    """`quantize --resume` after the results were written keeps the kept epoch's model, not the last
    checkpoint's (it took ckpt/last.keras once best.keras was gone)."""
    import shutil

    from edgecnn.fsutil import read_json
    from edgecnn.quantize import load_qat_model, quantize_run
    from edgecnn.quantize.qat import save_qat_model
    from edgecnn.train.run import RunFolder
    from tests.fixtures_export import QAT_QUICK

    run = RunFolder(shutil.copytree(qat_two_epochs.path, tmp_path / "again"))

    def weights(r):
        return load_qat_model(r.qat_model_path).get_weights()
    kept = weights(run)
    assert not (run.qat_dir / "best.keras").exists() and run.qat_ready()
    last = run.qat_dir / "ckpt" / "last.keras"                          # make the last epoch tell apart
    other = load_qat_model(last)
    other.set_weights([w * 0.5 for w in other.get_weights()])
    save_qat_model(other, last)
    m = quantize_run(run, resume=True, **{**QAT_QUICK, "epochs": 2, "patience": 5})
    for a, b in zip(weights(run), kept):
        np.testing.assert_array_equal(a, b)
    assert run.qat_ready() and m["best_epoch"] == read_json(run.qat_dir / "model.json")["epoch"]
