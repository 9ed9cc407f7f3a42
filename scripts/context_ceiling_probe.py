"""How far can any stage over the neighbours' logits go? A ceiling, on validation only.

The shipped stage is fitted on out-of-fold outputs of weaker fold models. This probe removes that
handicap: every stage below is fitted on the *shipped model's own* validation outputs and scored on
validation patients it was not fitted on (k folds by patient), which no shippable stage can beat.
- linear rings: the shipped family (own logit, ring means to radius 6, ring presence);
- + max/min: the same plus each ring's largest and smallest neighbour logit (rings 1..3);
- MLPs (8 and 32 hidden units) over both.
If the non-linear and richer stages do not rise above the linear one, the stage is not what
limits field-level accuracy here.

    python scripts/context_ceiling_probe.py exported/release/basic_cnn-int8-qat.tflite \
        --data ~/idc --data ~/idc-more --split exported/release/split.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from edgecnn.context.fit import logistic
from edgecnn.context.patches import patient_grids
from edgecnn.context.stage import logit, ring_features
from edgecnn.data import load_patches
from edgecnn.data.sources import join_sources
from edgecnn.metrics import roc_auc
from edgecnn.train.evaluate import predict_target, select_part

RADIUS, EXTREMES_RADIUS = 6, 3


def ring_extremes(z: np.ndarray, present: np.ndarray, radius: int) -> np.ndarray:
    """(2·radius, rows, cols): per ring, the largest then the smallest present logit (own where none)."""
    rows, cols = z.shape
    hi, lo = np.full((radius, rows, cols), -np.inf), np.full((radius, rows, cols), np.inf)
    padded = np.pad(np.where(present, z, np.nan), radius, constant_values=np.nan)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            d = max(abs(dy), abs(dx))
            if d:
                shifted = padded[radius + dy:radius + dy + rows, radius + dx:radius + dx + cols]
                ok = np.isfinite(shifted)
                hi[d - 1] = np.where(ok, np.maximum(hi[d - 1], shifted), hi[d - 1])
                lo[d - 1] = np.where(ok, np.minimum(lo[d - 1], shifted), lo[d - 1])
    return np.concatenate([np.where(np.isfinite(hi), hi, z[None]), np.where(np.isfinite(lo), lo, z[None])])


def features(val, probs: np.ndarray):
    """Per placed tile: the shipped family's features, those plus extremes, labels, patients."""
    base, rich, labels, patients = [], [], [], []
    for pid, g in patient_grids({"p": probs, "y": val.labels}, val.patients, val.xs, val.ys, 50):
        present = np.isfinite(g["p"])
        p = np.where(present, g["p"], 0.5)
        f = ring_features(p, present, RADIUS, presence=True)
        base.append(f[:, present].T)
        rich.append(np.concatenate([f, ring_extremes(logit(p), present, EXTREMES_RADIUS)])[:, present].T)
        labels.append(g["y"][present])
        patients += [pid] * int(present.sum())
    return np.concatenate(base), np.concatenate(rich), np.concatenate(labels).astype(int), np.array(patients)


def linear(x, y, train, test):
    mu, sd = x[train].mean(0), x[train].std(0) + 1e-9
    coef, bias = logistic((x[train] - mu) / sd, y[train])
    return ((x[test] - mu) / sd) @ coef + bias


def mlp(hidden: int):
    def fit_score(x, y, train, test):
        from edgecnn._tf import keras

        mu, sd = x[train].mean(0), x[train].std(0) + 1e-9
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.layers.Input((x.shape[1],)),
                                  keras.layers.Dense(hidden, "relu", kernel_regularizer=keras.regularizers.l2(1e-3)),
                                  keras.layers.Dense(1)])
        model.compile(keras.optimizers.Adam(3e-3), keras.losses.BinaryCrossentropy(from_logits=True))
        pos = y[train].mean()
        weights = np.where(y[train] == 1, 0.5 / pos, 0.5 / (1 - pos))
        model.fit((x[train] - mu) / sd, y[train], sample_weight=weights, epochs=60, batch_size=256, verbose=0)
        return model.predict((x[test] - mu) / sd, verbose=0)[:, 0]
    return fit_score


def cross_validated_auc(fit_score, x, y, fold) -> float:
    out = np.zeros(len(y))
    for k in np.unique(fold):
        out[fold == k] = fit_score(x, y, fold != k, fold == k)
    return float(roc_auc(y, out))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="the shipped artifact whose validation outputs are probed")
    ap.add_argument("--data", action="append", required=True, help="patch sources (repeat)")
    ap.add_argument("--split", required=True, help="split.json of the model's release")
    ap.add_argument("--folds", type=int, default=5, help="folds over the validation patients")
    args = ap.parse_args(argv)
    val = select_part(load_patches(join_sources(args.data)), args.split, "val")
    probs, _, _ = predict_target(args.model, val.images)
    base, rich, y, patients = features(val, probs)
    order = np.random.default_rng(0).permutation(np.unique(patients))
    fold = np.array([dict(zip(order, np.arange(len(order)) % args.folds))[p] for p in patients])
    stages = {"linear rings": (linear, base), "linear rings + max/min": (linear, rich)}
    for h in (8, 32):
        stages[f"mlp{h} rings"], stages[f"mlp{h} rings + max/min"] = (mlp(h), base), (mlp(h), rich)
    res = {"val_patch_auc": float(roc_auc(val.labels, probs)), "patients": len(order), "tiles": len(y),
           "val_field_auc": {name: cross_validated_auc(f, x, y, fold) for name, (f, x) in stages.items()}}
    print(json.dumps(res, indent=1))
    return res


if __name__ == "__main__":
    main()
