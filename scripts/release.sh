#!/usr/bin/env bash
# Rebuild the committed release model in exported/release/ from scratch (docs/release.md).
# Needs the real data: EDGECNN_DATA=/path/to/idc (Kaggle layout). ~1 h on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${EDGECNN_DATA:?set EDGECNN_DATA to the Kaggle-layout IDC folder}"
EDGECNN=${EDGECNN:-.venv/bin/edgecnn}
RUN=${RUN:-runs/release-basic}
OUT=${OUT:-exported/release}

[ -f "$RUN/model.keras" ] || $EDGECNN train --model basic_cnn --data "$EDGECNN_DATA" --out "$RUN" \
  --epochs 40 --patience 10 --seed 0 --json "$RUN.train.json"
[ -f "$RUN/qat/model.keras" ] || $EDGECNN quantize "$RUN" --json "$RUN.qat.json"
$EDGECNN export "$RUN" --format tflite --precision int8-qat --out "$OUT" --force
$EDGECNN export "$RUN" --format onnx --precision int8-ptq --out "$OUT" --force
$EDGECNN export "$RUN" --format onnx --precision fp32 --out "$OUT" --force

.venv/bin/python scripts/model_card.py "$RUN" "$OUT"
echo "release model written to $OUT"
