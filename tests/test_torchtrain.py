"""edgecnn.torchtrain: the PyTorch trainer for GPU boxes without TensorFlow, and the way back
(`edgecnn train --init-from DIR --epochs 0`), on real patches. PyTorch runs here on the CPU."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed: pip install 'edgecnn[gpu-train]'")

from edgecnn.train.run import RunError  # noqa: E402


@pytest.fixture(scope="module")
def patches(idc_data):
    from edgecnn.data import load_patches

    ps = load_patches(idc_data)
    return ps.take(np.arange(0, len(ps), max(1, len(ps) // 48))[:48])


def _torch_vgg13(input_size: int, images: np.ndarray):
    """Random weights that keep the signal through 13 layers (He init), random BN statistics, and
    a head centred and scaled on ``images`` so the probabilities spread over (0, 1)."""
    from edgecnn.torchtrain.models import create_model

    torch.manual_seed(0)
    model = create_model("vgg13", input_size).eval()
    with torch.no_grad():
        for _, m in model.layers():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.05, 0.05)
                m.running_var.uniform_(0.5, 2.0)
            else:
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                m.bias.uniform_(-0.1, 0.1)
        head = model.dense["probs"]
        head.weight.mul_(0.5)       # only the logit difference matters: move it all to class 1
        head.weight[0] = -head.weight[1]
        head.bias.zero_()
        d = _logit_diff(model, images)
        head.bias[1] = -d.mean() / 2
        head.bias[0] = d.mean() / 2
        scale = 2.0 / d.std()
        head.weight.mul_(scale)
        head.bias.mul_(scale)
    return model


def _logit_diff(model, images: np.ndarray) -> torch.Tensor:
    with torch.no_grad():
        logits = model(_to_input(model, images))
    return logits[:, 1] - logits[:, 0]


def _to_input(model, images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    if x.shape[-1] != model.input_size:
        x = torch.nn.functional.interpolate(x, size=(model.input_size,) * 2, mode="bilinear", align_corners=False)
    return x


def _torch_probs(model, images: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return torch.softmax(model(_to_input(model, images)), -1)[:, 1].numpy()


def _weights_file(path, model, images, probs):
    from edgecnn.torchtrain.models import keras_weights

    meta = {"keras_name": "vgg13", "model": "vgg13", "input_size": model.input_size}
    np.savez(path, **keras_weights(model), check_images=images, check_probs=probs, meta_json=np.array(json.dumps(meta)))
    return path


@pytest.mark.parametrize("input_size", [50, 64])   # 64 px leaves 2×2 before the flatten: its order matters
def test_keras_reproduces_torch(patches, input_size, tmp_path):
    from edgecnn.models import create_model
    from edgecnn.train.warmstart import load_init_weights

    images = np.ascontiguousarray(patches.images[:16])
    model = _torch_vgg13(input_size, images)
    probs = _torch_probs(model, images)
    assert probs.std() > 0.05, "outputs must spread, or the comparison proves nothing"
    path = _weights_file(tmp_path / "weights.npz", model, images, probs)
    keras_model = create_model("vgg13", input_size=input_size)
    info = load_init_weights(keras_model, str(path))         # raises when Keras disagrees
    assert info["check_max_abs_diff"] < 1e-4 and info["trained_by"] == "edgecnn.torchtrain"

    with np.load(path) as z:
        bad = {k: z[k] for k in z.files}
    bad["block2_2_conv/0"] = bad["block2_2_conv/0"].transpose(1, 0, 2, 3).copy()   # a wrong kernel layout
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(RunError, match="other probabilities"):
        load_init_weights(create_model("vgg13", input_size=input_size), str(tmp_path / "bad.npz"))
    with pytest.raises(RunError, match="--input-size"):
        load_init_weights(create_model("vgg13", input_size=50 if input_size == 64 else 64), str(path))


def test_loss_matches_keras():
    from edgecnn._tf import tf
    from edgecnn.torchtrain.loop import Recipe, soft_target_loss
    from edgecnn.train.losses import SoftTargetLoss

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(32, 2)).astype(np.float32) * 3
    labels = rng.integers(0, 2, 32)
    teacher = rng.random(32).astype(np.float32)
    r = Recipe(label_smoothing=0.1, kd_alpha=0.5, kd_temperature=2.0)
    mine = soft_target_loss(torch.from_numpy(logits), torch.from_numpy(labels), torch.from_numpy(teacher), r).numpy()
    probs = tf.nn.softmax(logits).numpy()
    keras_loss = SoftTargetLoss(0.1, 0.5, 2.0, reduction="none")
    theirs = keras_loss(np.stack([labels, teacher], 1).astype(np.float32), probs).numpy()
    np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-5)


def test_colour_ops_match_tensorflow(patches):
    from edgecnn._tf import tf
    from edgecnn.torchtrain.augment import dihedral, hsv_to_rgb, rgb_to_hsv, stain_jitter

    x = patches.images[:8].astype(np.float32) / 255.0
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    hsv = rgb_to_hsv(xt)
    np.testing.assert_allclose(hsv.permute(0, 2, 3, 1).numpy(), tf.image.rgb_to_hsv(x).numpy(), atol=1e-5)
    np.testing.assert_allclose(hsv_to_rgb(hsv).numpy(), xt.numpy(), atol=1e-5)
    gen = torch.Generator().manual_seed(0)
    np.testing.assert_allclose(stain_jitter(xt, 0.0, gen).numpy(), xt.clamp_min(1 / 255).numpy(), atol=1e-5)
    views = dihedral(xt, gen)
    for v, orig in zip(views, xt):
        # each output is one of the 8 rotations / mirrors of its own input
        cands = [orig.rot90(k, (1, 2)) for k in range(4)] + [orig.flip(2).rot90(k, (1, 2)) for k in range(4)]
        assert any(torch.equal(v, c) for c in cands)


@pytest.fixture(scope="module")
def small_pack(idc_data, tmp_path_factory):
    """10 real patients (5 train, 3 val, 2 test), random soft targets: (pack path, split path, split)."""
    from edgecnn.data import load_patches
    from edgecnn.data.pack import write_pack
    from edgecnn.data.split import Split

    ps = load_patches(idc_data)
    ids = ps.patient_ids[:10]
    split = Split(ids[:5], ids[5:8], ids[8:10], method="test")
    folder = tmp_path_factory.mktemp("pack")
    split.save(folder / "split.json", ps)
    teacher = np.random.default_rng(0).random(len(ps.select(split.train))).astype(np.float32)
    return write_pack(folder / "p.npz", ps, split, teacher), folder / "split.json", split


def _torchtrain(pack, out, *extra: str) -> subprocess.CompletedProcess:
    # Its own process, as on the GPU box: PyTorch training beside a loaded TensorFlow can crash
    # (two OpenMP runtimes in one process).
    args = ["--pack", str(pack), "--out", str(out), "--max-steps", "2", "--batch-size", "16", "--device", "cpu", *extra]
    res = subprocess.run([sys.executable, "-m", "edgecnn.torchtrain", *args], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    return res


@pytest.fixture(scope="module")
def serial_run(small_pack, tmp_path_factory):
    """A seed and a student, 2 steps each, in one process (float16 weights, as the release's)."""
    out = tmp_path_factory.mktemp("gpu") / "serial"
    _torchtrain(small_pack[0], out, "--epochs", "1", "--seeds", "0", "--distill-epochs", "1", "--save-dtype", "float16")
    return out


def test_pack_train_import_round_trip(idc_data, small_pack, serial_run, tmp_path):
    """Pack → torchtrain (a seed + a student, 2 steps each) → `train --init-from DIR --epochs 0`:
    a run folder that quantize and export take, and a leaking split is refused."""
    from edgecnn.data import load_patches
    from edgecnn.fsutil import read_json
    from edgecnn.train.fit import TrainConfig, train
    from edgecnn.train.warmstart import check_no_leak

    pack, split_path, split = small_pack
    out = serial_run
    summary = read_json(out / "summary.json")
    assert [m["name"] for m in summary["models"]] == ["seed0", "student"]

    run = train(TrainConfig(out=str(tmp_path / "run"), data=str(idc_data), model="vgg13", input_size=50, epochs=0,
                            init_from=str(out), split=str(split_path), mixed_precision="off"),
                progress=False)
    cfg, info = read_json(run.config_path), read_json(run.model_info_path)
    assert cfg["init_from_source"]["trained_by"] == "edgecnn.torchtrain" and cfg["init_from_source"]["checked"]
    assert info["epoch"] == 0
    # Keras reproduced PyTorch's probabilities of the (float16-rounded) kept weights. Their BACs are
    # not compared: after 2 steps the probabilities differ by ~1e-5 between patches, so rounding
    # reorders them (the release model matched: 0.8515 here, 0.8516 on the GPU).
    assert cfg["init_from_source"]["check_max_abs_diff"] < 1e-4
    assert cfg["init_from_source"]["torch_meta"]["trained"] == summary["kept"]["trained"]
    assert read_json(run.path / "torchtrain.json")["kept"] == summary["kept"]
    ps = load_patches(idc_data)
    assert read_json(run.metrics_path)["n_patches"] == len(ps.select(split.test))

    # A new split with two of the pack's training patients in validation (train() runs this check
    # before it writes anything; tests/test_warmstart.py covers that path).
    with pytest.raises(RunError, match="inflated"):
        check_no_leak(str(out), split.train[:2], split.test)


def test_parallel_seeds_with_ema_then_compare_recipes(small_pack, serial_run, tmp_path):
    """--jobs 2: each seed in its own process, read back by the parent as its own models; then
    `python -m edgecnn.torchtrain.compare` picks between this recipe and the serial one."""
    from edgecnn.fsutil import read_json
    from edgecnn.torchtrain.compare import compare

    out = tmp_path / "jobs"
    res = _torchtrain(small_pack[0], out, "--epochs", "1", "--seeds", "3", "4", "--jobs", "2", "--ema", "0.99")
    assert "seed3: started in its own process" in res.stdout and "seed4: started in its own process" in res.stdout
    summary = read_json(out / "summary.json")
    assert summary["jobs"] == 2 and [m["name"] for m in summary["models"]] == ["seed3", "seed4"]
    assert [m["recipe"]["ema"] for m in summary["models"]] == [0.99, 0.99]
    kept = summary["kept"]["trained"]
    with np.load(out / "weights.npz") as parent, np.load(out / "jobs" / kept / "weights.npz") as child:
        assert np.array_equal(parent["fc1/0"], child["fc1/0"]) and np.array_equal(parent["check_probs"], child["check_probs"])
    with np.load(out / "val_probs.npz") as p:
        assert {"labels", "seed3", "seed4"} <= set(p.files) and len(p["seed3"]) == len(p["labels"])

    result = compare([serial_run, out])
    means = {a["folder"]: a["mean_val_balanced_accuracy"] for a in result["arms"]}
    assert result["pick"]["folder"] == max(means, key=means.get)
    assert "ensemble_of_seeds" in result["arms"][1] and "ensemble_of_seeds" not in result["arms"][0]  # one seed
    cli = subprocess.run([sys.executable, "-m", "edgecnn.torchtrain.compare", str(serial_run), str(out),
                          "--out", str(tmp_path / "pick"), "--json"], capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["pick"] == result["pick"]
    assert {"weights.npz", "split.json", "summary.json", "compare.json"} <= {f.name for f in (tmp_path / "pick").iterdir()}

    other = tmp_path / "other-split"
    other.mkdir()
    for f in ("summary.json", "val_probs.npz"):
        (other / f).write_bytes((out / f).read_bytes())
    (other / "split.json").write_text(json.dumps({**read_json(out / "split.json"), "val": []}))
    with pytest.raises(SystemExit, match="different splits"):
        compare([out, other])


def test_weight_ema_averages_weights_and_bn_statistics():
    from edgecnn.torchtrain.loop import WeightEMA

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    ema = WeightEMA(model, 0.9)
    before = [t.clone() for t in (model[0].weight, model[1].running_mean)]
    with torch.no_grad():
        model[0].weight.add_(1.0)
        model[1].running_mean.fill_(2.0)
    ema.update()
    d = 2.0 / 11.0      # the decay ramps up: min(0.9, (1 + n) / (10 + n)) after n = 1 update
    torch.testing.assert_close(ema.model[0].weight, d * before[0] + (1 - d) * model[0].weight)
    torch.testing.assert_close(ema.model[1].running_mean, d * before[1] + (1 - d) * model[1].running_mean)
    assert not any(p.requires_grad for p in ema.model.parameters()) and not ema.model.training
    with pytest.raises(ValueError, match="--ema"):
        WeightEMA(model, 1.0)


def test_deadline_keeps_what_is_done(small_pack, tmp_path):
    from edgecnn.fsutil import read_json

    pack, _, _ = small_pack
    res = _torchtrain(pack, tmp_path / "gpu", "--epochs", "2", "--seeds", "0", "1", "--distill-epochs", "1",
                      "--deadline-minutes", "0")
    summary = read_json(tmp_path / "gpu" / "summary.json")
    assert [m["name"] for m in summary["models"]] == ["seed0"] and summary["models"][0]["stopped_at_deadline"]
    assert len(summary["models"][0]["history"]) == 1 and (tmp_path / "gpu" / "weights.npz").exists()
    assert "seeds from 1 on are not trained" in res.stdout


def test_epochs_0_needs_init_from():
    from edgecnn.train.fit import TrainConfig

    with pytest.raises(ValueError, match="--init-from"):
        TrainConfig(out="x", epochs=0).validate()


def test_gpu_side_never_imports_tensorflow():
    code = ("import sys, edgecnn.torchtrain.__main__, edgecnn.torchtrain.plan, edgecnn.data.pack; "
            "sys.exit(1 if 'tensorflow' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
