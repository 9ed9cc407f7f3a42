"""Do the neighbours' penultimate features add to the neighbours' logits?

A stage over features cannot be fitted for the shipped model (each training's features are its own
basis, docs/context.md), but each fold model can be probed in its own basis: its features on the
training patients it never saw fit two linear stages, and both are scored on the validation patients.
- rings (logit): the shipped stage's family (own logit, ring means of logits to radius 6, presence);
- + features: that, plus the fold model's fc1 features (whitened PCA, ``--pcs`` components) of the
  tile and their means over rings 1..``--feature-rings``.
If the second is not clearly higher, a context stage (or a jointly trained field model) over
features has little to find here that the logits do not already carry.

    python scripts/context_feature_probe.py --data ~/idc --data ~/idc-more \
        --split exported/release/split.json --folds-dir runs/release-folds
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edgecnn.context.fit import logistic
from edgecnn.context.patches import patient_grids
from edgecnn.context.stage import ring_features, ring_means
from edgecnn.data import load_patches
from edgecnn.data.sources import join_sources
from edgecnn.data.split import Split
from edgecnn.metrics import roc_auc
from edgecnn.train.evaluate import select_part
from edgecnn.train.run import RunFolder

L2S = (1e-3, 1e-2, 1e-1)


def fc1_and_probs(model, images: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
    from edgecnn._tf import keras
    from edgecnn.preprocess import to_float

    both = keras.Model(model.input, [model.get_layer("fc1").output, model.get_layer("probs").output])
    out = [both(to_float(images[i:i + batch]), training=False) for i in range(0, len(images), batch)]
    return np.concatenate([f.numpy() for f, _ in out]), np.concatenate([p.numpy()[:, 1] for _, p in out])


def whitened_pca(features: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    mu = features.mean(0)
    _, s, vt = np.linalg.svd(features - mu, full_matrices=False)
    return mu, vt[:k].T / (s[:k] / np.sqrt(len(features)))


def designs(tiles, feats: np.ndarray, probs: np.ndarray, pca, rings: int):
    """(logit-ring features, logit-ring + feature-ring features, labels) of every placed tile."""
    z = (feats - pca[0]) @ pca[1]
    values = {"p": probs, "y": tiles.labels.astype(float), **{f"z{j}": z[:, j] for j in range(z.shape[1])}}
    xa, xb, ys = [], [], []
    for _, g in patient_grids(values, tiles.patients, tiles.xs, tiles.ys, 50):
        present = np.isfinite(g["p"])
        a = ring_features(np.where(present, g["p"], 0.5), present, 6, presence=True)[:, present].T
        parts = [a]
        for j in range(z.shape[1]):
            zg = np.where(present, g[f"z{j}"], 0.0)
            means, _ = ring_means(zg, present, rings)
            parts.append(zg[present][:, None])
            parts += [np.nan_to_num(means[r][present], nan=0.0)[:, None] for r in range(rings)]
        xa.append(a)
        xb.append(np.hstack(parts))
        ys.append(g["y"][present])
    return np.vstack(xa), np.vstack(xb), np.concatenate(ys).astype(np.int64)


def probe_fold(run: RunFolder, patches, val, pcs: int, rings: int) -> dict:
    model = run.load_model()
    held = patches.select(sorted(set(Split.load(run.split_path).test) & set(patches.patient_ids)))
    fh, ph = fc1_and_probs(model, held.images)
    fv, pv = fc1_and_probs(model, val.images)
    pca = whitened_pca(fh, pcs)
    ah, bh, yh = designs(held, fh, ph, pca, rings)
    av, bv, yv = designs(val, fv, pv, pca, rings)
    coef, bias = logistic(ah, yh)
    row = {"fold": run.path.name, "val_patch_auc": roc_auc(val.labels, pv), "rings_logit": roc_auc(yv, av @ coef + bias)}
    for l2 in L2S:
        coef, bias = logistic(bh, yh, l2=l2)
        row[f"plus_features_l2_{l2:g}"] = roc_auc(yv, bv @ coef + bias)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", required=True, help="Kaggle-layout folder (repeatable)")
    ap.add_argument("--split", required=True, help="the release's split.json (its validation patients score)")
    ap.add_argument("--folds-dir", required=True, help="the fold runs `edgecnn context fit --folds-dir` made")
    ap.add_argument("--pcs", type=int, default=16, help="feature components kept (whitened PCA)")
    ap.add_argument("--feature-rings", type=int, default=3, help="rings whose mean features are inputs")
    ap.add_argument("--json", help="write the rows here")
    a = ap.parse_args()
    patches = load_patches(join_sources(a.data), progress=True)
    val = select_part(patches, a.split, "val")
    rows = []
    for run_dir in sorted(d for d in Path(a.folds_dir).glob("fold*") if d.is_dir()):
        rows.append(probe_fold(RunFolder(run_dir), patches, val, a.pcs, a.feature_rings))
        print("  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[-1].items()), flush=True)
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
