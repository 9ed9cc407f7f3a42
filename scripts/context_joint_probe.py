"""Does training the tile model *with* its context stage lift field-level accuracy? Validation only.

The shipped stage is fitted on fixed tile outputs. Here the tile model (warm-started from the float
release) and a ring stage of the shipped family (own logit, ring-mean logits and ring presence to
radius 6, initialised from the shipped coefficients) are trained together, a few patients' grids
a step: the stage's ring means are convolutions over the patient's logit grid, so the field loss
reaches every neighbour's tile model. Loss = field_weight · field BCE + tile_weight · tile BCE,
class-balanced. Fine-tuning keeps BN statistics frozen (a batch of few patients would make them
patient-specific); `--from-scratch` trains a fresh Basic CNN instead, BN included.
``--feature-channels K`` adds a feature head: K learned projections of the 512 penultimate
features and their ring means, read linearly, starting at zero.

A control run with ``--field-weight 0`` fine-tunes the tile model alone with the same loop, so
"more training" and "trained for the field" can be told apart. Each epoch is scored on the
validation patients: patch-level AUC / BAC, and field-level with the jointly trained stage.
The stage is trained on the training patients' in-sample outputs; on this data that costs little
(the shipped stage refitted on the release's in-sample training outputs: validation AUC 0.9502
against 0.9509 from out-of-fold outputs).

    python scripts/context_joint_probe.py --data ~/idc --data ~/idc-more \
        --split exported/release/split.json --out runs/joint      # + --field-weight 0: the control
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from edgecnn._tf import keras, tf
from edgecnn.context.stage import EPS, RingLogistic, logit, sigmoid, stage_from_dict
from edgecnn.context.patches import alone, field_probs_of_patches, place
from edgecnn.data import load_patches
from edgecnn.data.pipeline import augment_batch
from edgecnn.data.sources import join_sources
from edgecnn.metrics import best_threshold, roc_auc
from edgecnn.train.evaluate import select_part

FEATURE_RADIUS = 3
RADIUS, STEP, MAX_TILES = 6, 50, 512
ZCLIP = float(logit(1 - EPS))   # the shipped stage's own clip (9.21)
RELEASE = Path(__file__).resolve().parents[1] / "exported/release"   # the shipped model and its stage


def ring_kernel(radius: int) -> tf.Tensor:
    """(2r+1, 2r+1, 1, r): channel d-1 sums the ring at Chebyshev distance d."""
    k = 2 * radius + 1
    d = np.maximum(*np.abs(np.mgrid[-radius:radius + 1, -radius:radius + 1]))
    kern = np.zeros((k, k, 1, radius), np.float32)
    for r in range(1, radius + 1):
        kern[..., 0, r - 1] = d == r
    return tf.constant(kern)


class Grids:
    """Each patient's placed tiles and their grid places, as the shipped stage places them (patches
    off the grid or without coordinates stay out: scatter_nd would add two tiles on one place)."""

    def __init__(self, part):
        self.patients = {}
        for pid in np.unique(part.patients):
            idx = np.flatnonzero(part.patients == pid)
            on, rows, cols = place(part.xs[idx], part.ys[idx], STEP)
            if on.any():
                self.patients[pid] = (idx[on], np.stack([rows, cols], 1).astype(np.int32))

    def window(self, pid, rng) -> tuple[np.ndarray, np.ndarray]:
        """All of a patient's tiles, or the MAX_TILES nearest one random tile (big patients)."""
        idx, rc = self.patients[pid]
        if len(idx) > MAX_TILES:
            c = rc[rng.integers(len(idx))]
            keep = np.argsort(np.abs(rc - c).max(1), kind="stable")[:MAX_TILES]
            idx, rc = idx[keep], rc[keep] - rc[keep].min(0)
        return idx, rc


class JointModel:
    """Tile model (logit from the release's softmax layer) + a trainable ring stage over its logits."""

    def __init__(self, stage: RingLogistic, feature_channels: int = 0, from_scratch: bool = False):
        if not (isinstance(stage, RingLogistic) and stage.presence and stage.radius == RADIUS):
            raise SystemExit(f"the probe starts from a learned ring stage of radius {RADIUS} with presence, "
                             f"not {stage.describe()}")
        if from_scratch:   # a fresh Basic CNN whose BN learns from the batches of a few patients
            from edgecnn.models import create_model

            self.net = create_model("basic_cnn")
        else:
            self.net = keras.models.load_model(RELEASE / "basic_cnn-fp32.keras")
            for layer in self.net.layers:
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.trainable = False
        self.trunk = keras.Model(self.net.input, self.net.get_layer("fc1_drop").output)
        self.head_w, self.head_b = self.net.get_layer("probs").kernel, self.net.get_layer("probs").bias
        self.coef = tf.Variable(np.asarray(stage.coef, np.float32))
        self.bias = tf.Variable(np.float32(stage.bias))
        self.kernel = ring_kernel(RADIUS)
        # Optional: K learned projections of the 512 penultimate features, read with their ring means
        # (rings 1..FEATURE_RADIUS) by a linear head that starts at zero, so epoch 0 is the shipped stage.
        self.k = feature_channels
        self.proj = tf.Variable(tf.random.normal([512, max(self.k, 1)], stddev=0.05, seed=0))
        self.feat_w = tf.Variable(tf.zeros([max(self.k, 1) * (FEATURE_RADIUS + 1)]))
        self.feat_kernel = tf.tile(ring_kernel(FEATURE_RADIUS), [1, 1, max(self.k, 1), 1])
        self.shares = tf.constant(8.0 * np.arange(1, RADIUS + 1), tf.float32)

    def tile_logits(self, x, training: bool, with_features: bool = False):
        """Unclipped logits: a clip here would stop the tile loss's gradient on saturated tiles."""
        f = self.trunk(x, training=training)
        l = tf.matmul(f, self.head_w) + self.head_b
        return (l[:, 1] - l[:, 0], f) if with_features else l[:, 1] - l[:, 0]

    def feature_term(self, f, rc, shape):
        """Linear read of the projected features and their ring means (zero where a ring is empty)."""
        h = tf.matmul(f, self.proj)
        hg = tf.scatter_nd(rc, h, tf.concat([shape, [self.k]], 0))[None]
        s = tf.gather_nd(tf.nn.depthwise_conv2d(hg, self.feat_kernel, [1, 1, 1, 1], "SAME")[0], rc)
        mg = tf.scatter_nd(rc, tf.ones_like(h[:, :1]), tf.concat([shape, [1]], 0))[None]
        n = tf.gather_nd(tf.nn.conv2d(mg, ring_kernel(FEATURE_RADIUS), 1, "SAME")[0], rc)   # (n, R)
        means = s / tf.tile(tf.maximum(n, 1.0), [1, self.k])   # depthwise order: channel-major
        return tf.linalg.matvec(tf.concat([h, means], 1), self.feat_w)

    def field_logits(self, z, rc, f=None):
        z = tf.clip_by_value(z, -ZCLIP, ZCLIP)   # as the shipped stage reads int8 probabilities
        shape = tf.reduce_max(rc, 0) + 1
        zg = tf.scatter_nd(rc, z, shape)[None, :, :, None]
        mg = tf.scatter_nd(rc, tf.ones_like(z), shape)[None, :, :, None]
        s = tf.gather_nd(tf.nn.conv2d(zg, self.kernel, 1, "SAME")[0], rc)
        n = tf.gather_nd(tf.nn.conv2d(mg, self.kernel, 1, "SAME")[0], rc)
        means = tf.where(n > 0.5, s / tf.maximum(n, 1.0), z[:, None])
        feats = tf.concat([z[:, None], means, n / self.shares], 1)
        out = tf.linalg.matvec(feats, self.coef) + self.bias
        return out if f is None or not self.k else out + self.feature_term(f, rc, shape)

    def stage(self) -> RingLogistic:
        return RingLogistic(size=RADIUS, coef=self.coef.numpy().astype(float).tolist(), bias=float(self.bias.numpy()),
                            presence=True, tile_size=STEP, stride=STEP)


def balanced_bce(y, logits, pos_rate: float):
    w = tf.where(y > 0.5, 0.5 / pos_rate, 0.5 / (1 - pos_rate))
    return tf.reduce_mean(w * tf.nn.sigmoid_cross_entropy_with_logits(y, logits))


def make_step(jm: JointModel, args, pos_rate: float):
    trunk_opt, head_opt = keras.optimizers.Adam(args.lr), keras.optimizers.Adam(args.head_lr)
    head_vars = [jm.coef, jm.bias] + ([jm.proj, jm.feat_w] if jm.k else [])

    @tf.function(reduce_retracing=True)
    def step(images, y, rc, seed, lr_scale):
        trunk_opt.learning_rate.assign(args.lr * lr_scale)
        x = augment_batch(tf.cast(images, tf.float32) / 255.0, seed, 1.0, args.stain)
        with tf.GradientTape() as tape:
            z, f = jm.tile_logits(x, training=True, with_features=True)
            loss = args.tile_weight * balanced_bce(y, z, pos_rate)
            if args.field_weight > 0:
                loss += args.field_weight * balanced_bce(y, jm.field_logits(z, rc, f), pos_rate)
        trunk_vars = jm.trunk.trainable_variables + [jm.head_w, jm.head_b]
        grads = tape.gradient(loss, trunk_vars + head_vars)
        trunk_opt.apply_gradients(zip(grads[:len(trunk_vars)], trunk_vars))
        if args.field_weight > 0:
            head_opt.apply_gradients(zip(grads[len(trunk_vars):], head_vars))
        return loss
    return step


def joint_field_probs(jm: JointModel, val, z: np.ndarray, f: np.ndarray) -> np.ndarray:
    """The jointly trained stage, features included, patient by patient (TensorFlow, as trained);
    unplaced patches get the stage's no-neighbour output."""
    out = alone(jm.stage(), sigmoid(z))
    for idx, rc in Grids(val).patients.values():
        out[idx] = tf.sigmoid(jm.field_logits(tf.constant(z[idx], tf.float32), rc, tf.constant(f[idx]))).numpy()
    return out


def score(jm: JointModel, val, stage: RingLogistic) -> dict:
    zf = [jm.tile_logits(tf.cast(val.images[i:i + 512], tf.float32) / 255.0, False, with_features=True)
          for i in range(0, len(val.labels), 512)]
    z, f = np.concatenate([a.numpy() for a, _ in zf]), np.concatenate([b.numpy() for _, b in zf])
    p = sigmoid(z)
    out = {"patch_auc": roc_auc(val.labels, p), "patch_bac": best_threshold(val.labels, p)[1]}
    fields = {name: field_probs_of_patches(st, p, val.patients, val.xs, val.ys)[0]
              for name, st in (("joint_stage", jm.stage()), ("shipped_stage", stage))}
    if jm.k:
        fields["joint_stage"] = joint_field_probs(jm, val, z, f)
    for name, fp in fields.items():
        out[f"field_auc_{name}"], out[f"field_bac_{name}"] = roc_auc(val.labels, fp), best_threshold(val.labels, fp)[1]
    return {k: round(float(v), 4) for k, v in out.items()}


def batches(grids: Grids, rng, per_step: int):
    """Groups of ``per_step`` patients, their grids side by side with a gap no ring crosses."""
    pids = list(grids.patients)
    rng.shuffle(pids)
    for i in range(0, len(pids), per_step):
        idxs, rcs, col = [], [], 0
        for pid in pids[i:i + per_step]:
            idx, rc = grids.window(pid, rng)
            idxs.append(idx)
            rcs.append(rc + np.array([0, col], np.int32))
            col += int(rc[:, 1].max()) + RADIUS + 1
        yield np.concatenate(idxs), np.concatenate(rcs)


def run_epoch(step, grids: Grids, tr, epoch: int, args) -> float:
    rng = np.random.default_rng(1000 + epoch)
    losses = []
    groups = list(batches(grids, rng, args.patients_per_step))
    for i, (idx, rc) in enumerate(groups):
        frac = (epoch + i / len(groups)) / args.epochs
        lr_scale = np.float32(0.5 * (1 + np.cos(np.pi * frac)))
        losses.append(float(step(tr.images[idx], tr.labels[idx].astype(np.float32), rc,
                                 tf.constant([epoch, i], tf.int64), lr_scale)))
        if args.verbose and i % 10 == 0:
            print(f"  epoch {epoch + 1}: step {i}/{len(groups)}, loss {np.mean(losses):.4f}", flush=True)
    return float(np.mean(losses))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", action="append", required=True, help="patch sources (repeat)")
    ap.add_argument("--split", required=True, help="the release's split.json")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--lr", type=float, default=2e-5, help="tile model's Adam rate (cosine to 0)")
    ap.add_argument("--head-lr", type=float, default=3e-3, help="the stage's Adam rate")
    ap.add_argument("--field-weight", type=float, default=1.0, help="0: the tile-only control")
    ap.add_argument("--tile-weight", type=float, default=1.0)
    ap.add_argument("--feature-channels", type=int, default=0,
                    help="K > 0: the stage also reads K learned projections of the 512 penultimate features")
    ap.add_argument("--from-scratch", action="store_true",
                    help="train a fresh Basic CNN instead of fine-tuning the release (use --lr 1e-3, more epochs)")
    ap.add_argument("--stain", type=float, default=0.05, help="HED stain jitter, as the release")
    ap.add_argument("--patients-per-step", type=int, default=4, help="patients' grids in one batch")
    ap.add_argument("--verbose", action="store_true", help="a progress line every 10 steps")
    ap.add_argument("--out", required=True, help="folder for history.json and the best epoch's model")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    patches = load_patches(join_sources(args.data))
    tr, val = (select_part(patches, args.split, part) for part in ("train", "val"))
    shipped = stage_from_dict(json.loads((RELEASE / "basic_cnn-int8-qat.tflite.json").read_text())["context"])
    jm = JointModel(shipped, args.feature_channels, args.from_scratch)
    step = make_step(jm, args, float(tr.labels.mean()))
    grids = Grids(tr)
    history = [{"epoch": 0, **score(jm, val, shipped)}]
    print(json.dumps(history[-1]), flush=True)
    for epoch in range(args.epochs):
        t0 = time.time()
        loss = run_epoch(step, grids, tr, epoch, args)
        history.append({"epoch": epoch + 1, "loss": round(loss, 4), "secs": round(time.time() - t0), **score(jm, val, shipped),
                        "stage": jm.stage().params()})
        print(json.dumps({k: v for k, v in history[-1].items() if k != "stage"}), flush=True)
        (out / "history.json").write_text(json.dumps({"args": vars(args), "history": history}, indent=1))
        best = max(history[1:], key=lambda h: h["field_auc_joint_stage"])
        if best is history[-1]:
            jm.net.save(out / "best.keras")
    return {"history": history}


if __name__ == "__main__":
    main()
