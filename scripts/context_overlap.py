"""Does overlapping tiling add to the context stage? Scored on real fields of view.

For each patient whose complete patch grid is in the data (8863, 10253, 10254, 14082 in the shared
subset), the mosaic is scanned at stride 50 and at stride 25. Every labelled 50 px tile is scored
four ways: the tile alone; the mean of the stride-25 tiles overlapping it (what the heat map shows);
the model's context stage over the stride-50 grid; the stage over the stride-25 means.

    python scripts/context_overlap.py --data ~/idc --model exported/release/basic_cnn-int8-qat.tflite \
        --split exported/release/split.json --json overlap.json

The split only labels each patient's part (a training patient's row is in-sample for the tile model).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np

from edgecnn.data.mosaic import build_mosaic
from edgecnn.data.split import Split
from edgecnn.metrics import binary_metrics
from edgecnn.scan.scanner import Scanner

PATIENTS = ("8863", "10253", "10254", "14082")
WAYS = ("alone", "overlap25", "context", "overlap25+context")


def tile_labels(mosaic) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rows, cols, labels) of every patch of the mosaic on its 50 px grid."""
    cells = np.array([mosaic.cell(x, y) + (label,) for x, y, label, _ in mosaic.tiles])
    return cells[:, 0], cells[:, 1], cells[:, 2]


def overlap_means(scanner: Scanner, image: np.ndarray, size: int) -> np.ndarray:
    """Per 50 px tile, the mean probability of the stride-25 tiles covering it (NaN: none)."""
    res = scanner.scan(image, stride=size // 2, context=False)
    cells, g = res.heat_cells
    h, w = cells.shape[0] // 2 * 2, cells.shape[1] // 2 * 2
    blocks = cells[:h, :w].reshape(h // 2, 2, w // 2, 2)
    if g != size // 2:
        raise ValueError(f"a stride-{size // 2} scan gave {g} px heat cells; the model's tiles must be even-sized")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # background tiles: the mean of nothing is NaN
        return np.nanmean(blocks, axis=(1, 3))


def score_patient(scanner: Scanner, mosaic) -> dict[str, np.ndarray]:
    size = scanner.tile_size
    rows, cols, labels = tile_labels(mosaic)
    base = scanner.scan(mosaic.image, context=False)
    alone = base.prob_map
    over = np.full_like(alone, np.nan)
    o = overlap_means(scanner, mosaic.image, size)
    over[: o.shape[0], : o.shape[1]] = o[: alone.shape[0], : alone.shape[1]]
    over = np.where(base.tissue_mask, over, np.nan)
    stage = scanner.context
    out = {"labels": labels, "alone": alone[rows, cols], "overlap25": over[rows, cols]}
    if stage is not None:
        out["context"] = stage.field_probs(alone, base.tissue_mask)[rows, cols]
        out["overlap25+context"] = stage.field_probs(over, base.tissue_mask)[rows, cols]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, type=Path, help="Kaggle-layout folder holding the patients")
    ap.add_argument("--model", required=True, type=Path, help="artifact with a context stage in its manifest")
    ap.add_argument("--split", type=Path, help="split.json: names each patient's part in the table")
    ap.add_argument("--patients", nargs="+", default=list(PATIENTS))
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    scanner = Scanner(a.model, threads=2)
    if scanner.context is None:
        sys.exit(f"{a.model} carries no context stage; fit one with `edgecnn context fit`")
    parts = Split.load(a.split).parts() if a.split else {}
    thr = {"alone": scanner.backend.threshold, "overlap25": scanner.backend.threshold,
           "context": scanner.context.threshold, "overlap25+context": scanner.context.threshold}
    results = []
    for pid in a.patients:
        s = score_patient(scanner, build_mosaic(a.data / pid))
        part = next((k for k, v in parts.items() if pid in v), "?")
        row = {"patient": pid, "part": part, "tiles": int(len(s["labels"]))}
        for way in WAYS:
            m = binary_metrics(s["labels"], s[way], thr[way])
            row[way] = {"balanced_accuracy": m["balanced_accuracy"], "roc_auc": m["roc_auc"]}
        results.append(row)
        print(f"{pid} ({part}, {row['tiles']} tiles): " + "  ".join(
            f"{w} {row[w]['balanced_accuracy']:.4f}/{row[w]['roc_auc']:.4f}" for w in WAYS))
    if a.json:
        a.json.write_text(json.dumps({"model": str(a.model), "stage": scanner.context.describe(),
                                      "thresholds": thr, "patients": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
