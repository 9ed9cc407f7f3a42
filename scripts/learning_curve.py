"""Learning curve of a recipe: would more patients, or more patches of the same patients, help?

    python scripts/learning_curve.py prepare --split exported/release/split.json \
        --data ../shared/data/idc --data ../shared/data/idc-more --out lc/ [--patients 20 40 80] [--half]
    python scripts/learning_curve.py summary RUN [RUN ...] [--json]

``prepare`` writes, for each N, ``lc/split-N.json``: N of the split's training patients, spread
over the IDC-share strata as `edgecnn data split` spreads them, with the split's validation and
test patients unchanged. ``--half`` also writes ``lc/half/``, a Kaggle-layout folder of symbolic
links holding about half of each training patient's patches (a seeded coin flip per patch) and
every patch of the other patients: train on it with the original split. It prints the
`edgecnn train` commands; give each the recipe being measured. ``summary`` prints each run's
best validation balanced accuracy (the epoch the run kept), its AUC there, and the best AUC.

Only validation is read: a learning curve chooses nothing, so test has no part in it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

from edgecnn.data import load_patches
from edgecnn.data.split import Split, deal, stratified_order


def subset_splits(split: Split, stats: dict[str, tuple[int, int]], sizes: list[int], seed: int) -> dict[int, Split]:
    order = stratified_order({p: stats[p] for p in split.train}, seed)
    out = {}
    for n in sizes:
        if not 0 < n <= len(order):
            sys.exit(f"--patients {n}: the split has {len(order)} training patients")
        keep = deal(order, {"keep": n, "rest": len(order) - n})["keep"]
        out[n] = Split(keep, split.val, split.test, method=f"{n} of the training patients of {split.method}", seed=seed)
    return out


def link_half(patches, train: set[str], out: Path, seed: int) -> int:
    """Symlink about half of each training patient's patches (all of the others) into ``out``."""
    rng = np.random.default_rng(seed)
    kept = 0
    for src, patient in zip(_file_paths(patches), patches.patients):
        if patient in train and rng.random() >= 0.5:
            continue
        kept += patient in train
        dest = out.joinpath(*src.parts[-3:])  # <patient>/<label>/<file>, the Kaggle layout
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            os.symlink(src.resolve(), dest)
    return kept


def _file_paths(patches) -> list[Path]:
    if "sources" in patches.report:  # merged sources: each name already starts with its folder
        return [Path(str(f)) for f in patches.files]
    root = Path(str(patches.report["source"]))
    return [root / str(f) for f in patches.files]


def prepare(args) -> None:
    if args.half and any(str(d).endswith(".zip") for d in args.data):
        sys.exit("--half links files: unpack the zip first")
    split = Split.load(args.split)
    patches = load_patches(args.data, progress=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for n, sub in subset_splits(split, patches.patient_stats(), args.patients, args.seed).items():
        path = sub.save(out / f"split-{n}.json", patches)
        print(f"edgecnn train --data {' --data '.join(args.data)} --split {path} --out runs/lc-{n} [the recipe]")
    if args.half:
        kept = link_half(patches, set(split.train), out / "half", args.seed)
        n_train = int(np.isin(patches.patients, split.train).sum())
        print(f"{kept} of {n_train} training patches linked into {out / 'half'}")
        print(f"edgecnn train --data {out / 'half'} --split {args.split} --out runs/lc-half [the recipe]")


def run_row(path: Path) -> dict:
    if not (path / "history.json").is_file():
        sys.exit(f"{path}: no history.json; give run folders of `edgecnn train` (a running one counts)")
    history = json.loads((path / "history.json").read_text())
    best = max(history, key=lambda e: e["val_balanced_accuracy"])
    train = json.loads((path / "split.json").read_text())["counts"]["train"]
    return {"run": str(path), "train_patients": train["patients"], "train_patches": train.get("patches"),
            "epochs": len(history), "best_epoch": best["epoch"], "val_balanced_accuracy": best["val_balanced_accuracy"],
            "val_roc_auc": best["val_roc_auc"], "best_val_roc_auc": max(e["val_roc_auc"] for e in history)}


def summary(args) -> None:
    rows = [run_row(Path(r)) for r in args.runs]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| run | training patients / patches | val BAC (epoch) | val AUC there | best val AUC |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['run']} | {r['train_patients']} / {r['train_patches']} | {r['val_balanced_accuracy']:.4f} "
              f"({r['best_epoch']}/{r['epochs']}) | {r['val_roc_auc']:.3f} | {r['best_val_roc_auc']:.3f} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="write the subset splits (and --half's folder)")
    p.add_argument("--split", required=True)
    p.add_argument("--data", action="append", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--patients", type=int, nargs="+", default=[20, 40, 80])
    p.add_argument("--half", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("summary", help="the validation scores of finished or running runs")
    s.add_argument("runs", nargs="+")
    s.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    prepare(args) if args.cmd == "prepare" else summary(args)


if __name__ == "__main__":
    main()
