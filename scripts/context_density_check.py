"""Does the shipped context stage hold when a grid is sparser than the one it was fitted on?

The stage reads ring means (the same on any density) and ring tissue shares (not): a microscope
field holds every tile, this data about a quarter of each grid. Validation patients only: their
patches are thinned at random to each kept share, and the stage is scored at its shipped
threshold against the best threshold on the thinned patches. A gap that stays small as the share
changes says the shipped threshold transfers across densities.

    python scripts/context_density_check.py exported/release/basic_cnn-int8-qat.tflite \
        --data ~/idc --data ~/idc-more --split exported/release/split.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from edgecnn.context.load import stage_of_artifact
from edgecnn.context.patches import field_probs_of_patches
from edgecnn.data import load_patches
from edgecnn.data.sources import join_sources
from edgecnn.metrics import best_threshold, binary_metrics, roc_auc
from edgecnn.train.evaluate import predict_target, select_part


def thinned(stage, probs, val, keep: float, draws: int, seed: int = 0) -> dict:
    rng, rows = np.random.default_rng(seed), []
    for _ in range(draws):
        sel = rng.random(len(probs)) < keep
        p, _ = field_probs_of_patches(stage, probs[sel], val.patients[sel], val.xs[sel], val.ys[sel])
        y = val.labels[sel]
        best_thr, best = best_threshold(y, p)
        rows.append([roc_auc(y, p), binary_metrics(y, p, stage.threshold)["balanced_accuracy"], best, best_thr])
    m = np.mean(rows, 0)
    return {"kept": keep, "draws": draws, "field_auc": round(m[0], 4), "bac_at_shipped_threshold": round(m[1], 4),
            "best_bac": round(m[2], 4), "best_threshold": round(m[3], 3)}


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model", help="a release artifact with a context stage in its manifest")
    ap.add_argument("--data", action="append", required=True, help="patch sources (repeat)")
    ap.add_argument("--split", required=True, help="split.json of the model's release")
    ap.add_argument("--keep", type=float, nargs="+", default=[1.0, 0.8, 0.65, 0.5], help="shares of patches kept")
    ap.add_argument("--draws", type=int, default=3, help="random thinnings per share below 1")
    args = ap.parse_args(argv)
    stage = stage_of_artifact(args.model)
    if stage is None:
        raise SystemExit(f"{args.model}: its manifest has no context stage (edgecnn context fit makes one)")
    val = select_part(load_patches(join_sources(args.data)), args.split, "val")
    probs, _, _ = predict_target(args.model, val.images)
    table = [thinned(stage, probs, val, k, 1 if k >= 1 else args.draws) for k in args.keep]
    print(json.dumps({"shipped_threshold": stage.threshold, "rows": table}, indent=1))
    return table


if __name__ == "__main__":
    main()
