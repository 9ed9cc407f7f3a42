"""Do different models make the same mistakes? Errors that every model shares point at the labels
or at what a 50 px patch can show, not at the model or its recipe.

    python scripts/error_overlap.py TARGET TARGET [...] --data idc --data idc-more \
        --split exported/release/split.json [--part val] [--montage DIR] [--json]

TARGET: a run folder, a .keras file or an exported artifact, each scored at its own threshold
(as `edgecnn evaluate` does). Prints each model's balanced accuracy and error rate, how often
two models give the same label, and the share of patches that every model gets wrong.
``--montage DIR`` writes ``shared-fn.png`` / ``shared-fp.png``: up to 48 of those patches
(labelled IDC but called clear by all; labelled clear but called IDC by all), for a look.
Use validation patients (the default part): this analysis chooses nothing, but it has no
business reading test.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

import numpy as np

from edgecnn.data import load_patches
from edgecnn.metrics import binary_metrics
from edgecnn.train.evaluate import predict_target, select_part


def overlap(labels: np.ndarray, calls: dict[str, np.ndarray]) -> dict:
    """Agreement statistics of several models' labels (bool arrays) against ``labels``."""
    y = labels.astype(bool)
    wrong = np.stack([c != y for c in calls.values()])
    pairs = [float(np.mean(calls[a] == calls[b])) for a, b in itertools.combinations(calls, 2)]
    return {
        "n_patches": int(len(y)),
        "wrong_for_all": float(wrong.all(0).mean()),
        "wrong_for_none": float((~wrong.any(0)).mean()),
        "errors_shared_by_all": float(wrong.all(0).sum() / max(wrong.any(0).sum(), 1)),
        # of one model's mistakes, the share that every other model makes too (mean over models)
        "own_errors_shared_by_all": float(np.mean(wrong.all(0).sum() / np.maximum(wrong.sum(1), 1))),
        "pairwise_agreement_mean": float(np.mean(pairs)) if pairs else None,
        "pairwise_agreement_min": float(np.min(pairs)) if pairs else None,
        "agreement_with_labels_mean": float((~wrong).mean()),
        "shared_false_negatives": int((wrong.all(0) & y).sum()),
        "shared_false_positives": int((wrong.all(0) & ~y).sum()),
    }


def montage(images: np.ndarray, rows: np.ndarray, path: Path, seed: int = 0, n: int = 48, cols: int = 8) -> int:
    from PIL import Image

    if len(rows) == 0:
        return 0
    rows = np.random.default_rng(seed).choice(rows, size=min(n, len(rows)), replace=False)
    size = images.shape[1] + 4
    sheet = Image.new("RGB", (cols * size, -(-len(rows) // cols) * size), "black")
    for k, i in enumerate(rows):
        sheet.paste(Image.fromarray(np.asarray(images[i])), ((k % cols) * size + 2, (k // cols) * size + 2))
    sheet.resize((sheet.width * 2, sheet.height * 2), Image.NEAREST).save(path)
    return len(rows)


def analyse(targets: list[str], data: list[str], split: str, part: str, montage_dir: str | None) -> dict:
    patches = select_part(load_patches(data, progress=True), split, part)
    models, calls = {}, {}
    for t in targets:
        p, thr, _ = predict_target(t, patches.images)
        m = binary_metrics(patches.labels, p, thr)
        models[t] = {"threshold": thr, "balanced_accuracy": m["balanced_accuracy"], "error_rate": 1 - m["accuracy"]}
        calls[t] = p >= thr
    result = {"part": part, "split": split, "models": models, **overlap(patches.labels, calls)}
    if montage_dir:
        out = Path(montage_dir)
        out.mkdir(parents=True, exist_ok=True)
        y = patches.labels.astype(bool)
        all_wrong = np.stack([c != y for c in calls.values()]).all(0)
        for name, rows in (("shared-fn.png", all_wrong & y), ("shared-fp.png", all_wrong & ~y)):
            montage(patches.images, np.flatnonzero(rows), out / name)
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("targets", nargs="+")
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--split", required=True)
    ap.add_argument("--part", default="val", choices=("train", "val", "test"))
    ap.add_argument("--montage", default=None)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if len(args.targets) < 2:
        ap.error("give at least two models to compare")
    from edgecnn import logfilter

    logfilter.install()  # TensorFlow's and LiteRT's native start-up lines, as the CLI hides them
    r = analyse(args.targets, args.data, args.split, args.part, args.montage)
    if args.json:
        print(json.dumps(r, indent=2))
        return
    for t, m in r["models"].items():
        print(f"{t}: balanced accuracy {m['balanced_accuracy']:.4f} at {m['threshold']:.3f}, errors {m['error_rate']:.3f}")
    print(f"{r['n_patches']} {r['part']} patches: wrong for every model {r['wrong_for_all']:.3f} "
          f"({r['shared_false_negatives']} IDC called clear, {r['shared_false_positives']} clear called IDC), "
          f"right for every model {r['wrong_for_none']:.3f}; of a model's mistakes, "
          f"{r['own_errors_shared_by_all']:.0%} are made by every model")
    print(f"two models give the same label on {r['pairwise_agreement_mean']:.3f} of patches "
          f"(lowest pair {r['pairwise_agreement_min']:.3f}); a model and the labels on {r['agreement_with_labels_mean']:.3f}")


if __name__ == "__main__":
    main()
