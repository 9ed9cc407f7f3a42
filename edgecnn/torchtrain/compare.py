"""``python -m edgecnn.torchtrain.compare DIR [DIR ...]``: recipes trained on one pack, side by side.

Each DIR is one ``python -m edgecnn.torchtrain`` output (one recipe, one or more seeds). The
table gives every model's best validation score, each recipe's mean over its seeds and the
score of its seeds' mean probability. The recipe with the highest mean is chosen (a mean over
seeds, not the luckiest seed: with ~34 validation patients one seed's best epoch is a noisy
maximum), and its kept model is the pick; ``--out`` copies that folder's files (weights, summary,
split) for ``edgecnn train --init-from``. Only validation patients are read: packs hold no test.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.fsutil import read_json, write_json
from edgecnn.metrics import best_threshold, roc_auc

KEEP = ("weights.npz", "summary.json", "split.json", "val_probs.npz")


def compare(folders: list[Path]) -> dict[str, Any]:
    arms = [_arm(f) for f in folders]
    _same_split(folders)
    best = max(arms, key=lambda a: a["mean_val_balanced_accuracy"])
    return {"arms": arms, "rule": "highest mean validation BAC over the recipe's seeds; its kept model",
            "pick": {"folder": best["folder"], "model": best["kept"]}}


def _arm(folder: Path) -> dict[str, Any]:
    if not (folder / "summary.json").exists():
        raise SystemExit(f"error: {folder} has no summary.json: not a `python -m edgecnn.torchtrain` output folder")
    summary = read_json(folder / "summary.json")
    seeds = [m for m in summary["models"] if m["name"].startswith("seed")]
    rows = [{"name": m["name"], **{k: m["best"][k] for k in ("epoch", "val_balanced_accuracy", "val_roc_auc")}}
            for m in summary["models"]]
    arm = {"folder": str(folder), "input_size": summary["input_size"], "recipe": _recipe(seeds or summary["models"]),
           "models": rows, "kept": summary["kept"]["trained"],
           "mean_val_balanced_accuracy": float(np.mean([m["best"]["val_balanced_accuracy"] for m in seeds or summary["models"]]))}
    ens = _ensemble(folder / "val_probs.npz", [m["name"] for m in seeds])
    if ens is not None:
        arm["ensemble_of_seeds"] = ens
    return arm


def _recipe(models: list[dict[str, Any]]) -> dict[str, Any]:
    r = dict(models[0]["recipe"])
    r.pop("seed", None)
    return r


def _ensemble(path: Path, names: list[str]) -> dict[str, float] | None:
    if not path.exists() or len(names) < 2:
        return None
    with np.load(path) as z:
        if not all(n in z.files for n in names):
            return None
        y, p = z["labels"], np.mean([z[n] for n in names], 0)
    _, bac = best_threshold(y, p)
    return {"val_balanced_accuracy": bac, "val_roc_auc": roc_auc(y, p)}


def _same_split(folders: list[Path]) -> None:
    splits = {json.dumps(read_json(f / "split.json"), sort_keys=True) for f in folders if (f / "split.json").exists()}
    if len(splits) > 1:
        raise SystemExit("error: these folders were trained on different splits; compare runs of one pack only")


def _table(result: dict[str, Any]) -> str:
    lines = [f"{'recipe folder':<28} {'px':>4} {'model':<8} {'epoch':>5} {'val BAC':>8} {'val AUC':>8}"]
    for a in result["arms"]:
        for m in a["models"]:
            lines.append(f"{Path(a['folder']).name:<28} {a['input_size']:>4} {m['name']:<8} {m['epoch']:>5} "
                         f"{m['val_balanced_accuracy']:>8.4f} {m['val_roc_auc']:>8.4f}")
        ens = a.get("ensemble_of_seeds")
        lines.append(f"{'':<28} {'':>4} {'mean':<8} {'':>5} {a['mean_val_balanced_accuracy']:>8.4f}"
                     + (f"   (seeds' mean probability: {ens['val_balanced_accuracy']:.4f} / {ens['val_roc_auc']:.4f})"
                        if ens else ""))
    pick = result["pick"]
    lines.append(f"pick: {pick['model']} of {pick['folder']} ({result['rule']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgecnn.torchtrain.compare", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", type=Path, help="torchtrain output folders, one recipe each")
    p.add_argument("--out", type=Path, help="copy the pick's weights.npz, summary.json, split.json here")
    p.add_argument("--json", action="store_true", help="print the comparison as JSON")
    args = p.parse_args(argv)
    result = compare(args.folders)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for name in KEEP:
            if (Path(result["pick"]["folder"]) / name).exists():
                shutil.copy2(Path(result["pick"]["folder"]) / name, args.out / name)
        write_json(args.out / "compare.json", result)
    print(json.dumps(result, indent=2) if args.json else _table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
