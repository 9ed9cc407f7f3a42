"""Score a release's artifacts patch-level and field-level (their context stages) on the split's
validation and test patients; record both in each manifest (``metrics.context``) for the model
card, and print a Markdown table. Runs after `edgecnn context fit`, which reads no test patient.

    python scripts/context_report.py exported/release --data ~/idc --data ~/idc-more --split exported/release/split.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgecnn.clikit import data_spec
from edgecnn.fsutil import write_json
from edgecnn.manifest import manifest_path, read_manifest
from edgecnn.train.evaluate import evaluate

KEYS = ("balanced_accuracy", "balanced_accuracy_ci95", "roc_auc", "n_patches", "n_patients")


def score(artifact: Path, data: str, split: Path) -> dict:
    out = {}
    for part in ("val", "test"):
        m = evaluate(artifact, data, split=split, part=part, context=True)
        out[part] = {"patch": {k: m[k] for k in KEYS}, "field": {k: m["context"][k] for k in KEYS},
                     "with_neighbours": m["context"]["neighbours"]["with_neighbours"]}
    return out


def _cell(d: dict) -> str:
    lo, hi = d["balanced_accuracy_ci95"]
    return f"{d['balanced_accuracy']:.3f} ({lo:.3f}–{hi:.3f}), AUC {d['roc_auc']:.3f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("release", type=Path)
    ap.add_argument("--data", action="append", required=True)
    ap.add_argument("--split", type=Path, required=True)
    a = ap.parse_args(argv)
    data = data_spec(a.data)
    print("| artifact | stage | test patch-level | test field-level | val field-level |\n|---|---|---|---|---|")
    for f in sorted(a.release.iterdir()):
        m = read_manifest(f, required=False) if f.suffix in (".tflite", ".onnx") else None
        if not m or not m.get("context"):
            continue
        s = score(f, data, a.split)
        m.setdefault("metrics", {})["context"] = s
        write_json(manifest_path(f), m)
        print(f"| `{f.name}` | {m['context']['kind']} r={m['context']['radius']} | {_cell(s['test']['patch'])} | "
              f"{_cell(s['test']['field'])} | {_cell(s['val']['field'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
