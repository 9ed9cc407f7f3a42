#!/usr/bin/env bash
# Rebuild a committed release model from scratch (docs/release.md):
#   MODEL=basic_cnn (default) → exported/release/  (the device model: every format)
#   MODEL=vgg13               → exported/vgg13/    (the seed's second network: int8 TFLite only, 32.5 MB; ~3 h of
#                                                    training on 2 cores, distilled from the Basic CNN release)
#   MODEL=mobile_student_100  → exported/student/  (the small-device student, every format; ~15 min of training
#                                                    on 2 cores, distilled from the Basic CNN release)
# Needs the real data: EDGECNN_DATA=/path/to/idc:/path/to/idc-more (Kaggle layout; several sources
# separated by ':' are read as one). Basic CNN ~4 h on 2 CPU cores (four teachers, then the
# student).
# Both use the committed patient split (exported/release/split.json), so every release is scored
# on the same test patients.
# MODEL=vgg13 GPU_RUN=DIR: take the VGG13 from a `python -m edgecnn.torchtrain` folder instead of
# training it here (the shipped one; docs/gpu-training.md has the pack and GPU commands).
set -euo pipefail
cd "$(dirname "$0")/.."
: "${EDGECNN_DATA:?set EDGECNN_DATA to the Kaggle-layout IDC folder}"
EDGECNN=${EDGECNN:-.venv/bin/edgecnn}
MODEL=${MODEL:-basic_cnn}
SPLIT=${SPLIT:-exported/release/split.json}

# The Basic CNN recipe: the release's teachers (both models are distilled from four seeds of it).
BASIC_TRAIN=(--epochs 24 --lr-schedule cosine --stain-jitter 0.05 --patience 12)
TEACHER_SEEDS=${TEACHER_SEEDS:-0 1 2 3}
KD=(--kd-alpha 0.5 --kd-temperature 2)
case "$MODEL" in
  basic_cnn)
    RUN=${RUN:-runs/release-basic}; OUT=${OUT:-exported/release}
    TRAIN=("${BASIC_TRAIN[@]}"); QAT=(); CARD=() ;;
  vgg13)
    # bfloat16 halves a VGG13 step where the CPU has AMX / AVX512-BF16 (docs/distributed.md): 20
    # epochs at ~6 min each on 2 quiet Zen 4 cores; float32 elsewhere (~2x longer). The float model
    # (130 MB) stays in the run. Like the student, it learns from the Basic CNN release.
    PRECISION=${PRECISION:-$(grep -qE 'amx_bf16|avx512_bf16' /proc/cpuinfo 2>/dev/null && echo bf16 || echo auto)}
    RUN=${RUN:-runs/release-vgg13}; OUT=${OUT:-exported/vgg13}
    TRAIN=(--input-size 50 --epochs 20 --lr 3e-4 --lr-schedule cosine --stain-jitter 0.05 --patience 10
           --mixed-precision "$PRECISION")
    QAT=(--epochs 1); CARD=(--no-keras)
    TEACHER_SEEDS=""; TEACHERS=(--teacher exported/release/basic_cnn-fp32.keras) ;;
  mobile_student_*)
    # The Basic CNN release (itself distilled from the four teachers) teaches the student directly.
    RUN=${RUN:-runs/release-student}; OUT=${OUT:-exported/student}
    TRAIN=("${BASIC_TRAIN[@]}"); QAT=(); CARD=()
    TEACHER_SEEDS=""; TEACHERS=(--teacher exported/release/basic_cnn-fp32.keras) ;;
  *) echo "MODEL must be basic_cnn, vgg13 or mobile_student_100/125, got '$MODEL'" >&2; exit 2 ;;
esac

TEACHERS=(${TEACHERS[@]+"${TEACHERS[@]}"})
for seed in ${TEACHER_SEEDS:-}; do
  T="runs/release-teacher-$seed"; TEACHERS+=(--teacher "$T")
  [ -f "$T/model.keras" ] || $EDGECNN train --model basic_cnn --data "$EDGECNN_DATA" --out "$T" \
    --split "$SPLIT" "${BASIC_TRAIN[@]}" --seed "$seed" --json "$T.train.json"
done
if [ -n "${GPU_RUN:-}" ]; then
  # Weights trained on a PyTorch GPU box (docs/gpu-training.md): checked, scored, kept as they are.
  [ -f "$RUN/model.keras" ] || $EDGECNN train --model "$MODEL" --data "$EDGECNN_DATA" --out "$RUN" \
    --split "$SPLIT" --input-size 50 --init-from "$GPU_RUN" --epochs 0 --mixed-precision off --json "$RUN.train.json"
else
  [ -f "$RUN/model.keras" ] || $EDGECNN train --model "$MODEL" --data "$EDGECNN_DATA" --out "$RUN" \
    --split "$SPLIT" "${TRAIN[@]}" "${TEACHERS[@]}" "${KD[@]}" --seed 0 --json "$RUN.train.json"
fi
[ -f "$RUN/qat/model.keras" ] || $EDGECNN quantize "$RUN" "${QAT[@]}" --json "$RUN.qat.json"
$EDGECNN export "$RUN" --format tflite --precision int8-qat --out "$OUT" --force
if [ "$MODEL" != vgg13 ]; then
  $EDGECNN export "$RUN" --format onnx --precision int8-ptq --out "$OUT" --force
  $EDGECNN export "$RUN" --format onnx --precision fp32 --out "$OUT" --force
  # TensorRT's input (docs/tensorrt.md): symmetric INT8 Q/DQ, zero points 0; PTQ here because the
  # release QAT model keeps TFLite's asymmetric ranges. The export checks it; the line below shows it.
  $EDGECNN export "$RUN" --format onnx --precision int8-trt --out "$OUT" --force
  $EDGECNN export --check-trt "$OUT/$MODEL-int8-trt.onnx"
  # Arm Ethos-U (docs/experiments.md §12): the shipped int8 TFLite with integer I/O, compiled by Vela.
  $EDGECNN export "$OUT/$MODEL-int8-qat.tflite" --format vela --data "$EDGECNN_DATA" --force
fi

# Field-level context (docs/context.md): three fold models give the training patients' out-of-fold
# outputs, every candidate stage is chosen on validation; then both levels are scored for the card.
ARTIFACTS=("$OUT"/*.tflite)
[ "$MODEL" != vgg13 ] && ARTIFACTS+=("$OUT"/*.onnx)
# Every model reuses the Basic CNN's fold runs: the stage reads probabilities, not the network.
$EDGECNN context fit "${ARTIFACTS[@]}" --data "$EDGECNN_DATA" --split "$SPLIT" --folds-dir "${FOLDS:-runs/release-folds}" \
  --json "$RUN.context.json"
.venv/bin/python scripts/context_report.py "$OUT" --data "$EDGECNN_DATA" --split "$SPLIT"

.venv/bin/python scripts/model_card.py "$RUN" "$OUT" "${CARD[@]}"
echo "release model written to $OUT"
