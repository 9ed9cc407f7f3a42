#!/usr/bin/env bash
# Rebuild the committed release model in exported/release/ from scratch (docs/release.md).
# Needs the real data: EDGECNN_DATA=/path/to/idc:/path/to/idc-more (Kaggle layout; several sources
# separated by ':' are read as one). ~1 h on 2 CPU cores. The patient split is the committed one
# (exported/release/split.json), so a retrained release is scored on the same test patients.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${EDGECNN_DATA:?set EDGECNN_DATA to the Kaggle-layout IDC folder}"
EDGECNN=${EDGECNN:-.venv/bin/edgecnn}
RUN=${RUN:-runs/release-basic}
OUT=${OUT:-exported/release}

SPLIT=${SPLIT:-exported/release/split.json}

[ -f "$RUN/model.keras" ] || $EDGECNN train --model basic_cnn --data "$EDGECNN_DATA" --out "$RUN" \
  --split "$SPLIT" --epochs 24 --lr-schedule cosine --stain-jitter 0.05 --patience 12 --seed 0 \
  --json "$RUN.train.json"
[ -f "$RUN/qat/model.keras" ] || $EDGECNN quantize "$RUN" --json "$RUN.qat.json"
$EDGECNN export "$RUN" --format tflite --precision int8-qat --out "$OUT" --force
$EDGECNN export "$RUN" --format onnx --precision int8-ptq --out "$OUT" --force
$EDGECNN export "$RUN" --format onnx --precision fp32 --out "$OUT" --force
# TensorRT's input (docs/tensorrt.md): symmetric INT8 Q/DQ, zero points 0; PTQ here because the
# release QAT model keeps TFLite's asymmetric ranges. The export checks it; the line below shows it.
$EDGECNN export "$RUN" --format onnx --precision int8-trt --out "$OUT" --force
$EDGECNN export --check-trt "$OUT/basic_cnn-int8-trt.onnx"

.venv/bin/python scripts/model_card.py "$RUN" "$OUT"
echo "release model written to $OUT"
