#!/usr/bin/env bash
# Three VGG13 recipes at once on one GPU, then the pick (docs/gpu-training.md, "Comparing recipes").
#   bash scripts/gpu_sweep.sh PACK WORK_DIR BACK_DIR
# WORK_DIR gets one torchtrain folder per recipe (A, B, C) and their logs; BACK_DIR gets what a
# narrow link should carry home: the pick's weights in 15 MiB pieces (cat them back together)
# and sweep.tar.gz (summaries, validation probabilities, logs, GPU utilisation).
set -euo pipefail
pack=$1 work=$2 back=$3 py=${PYTHON:-python3}
mkdir -p "$work" "$back"
export OMP_NUM_THREADS=2 PYTHONUNBUFFERED=1   # 11 processes share 16 cores; the GPU does the work
common=(--pack "$pack" --model vgg13 --epochs "${EPOCHS:-16}" --lr 3e-4 --ema 0.998
        --deadline-minutes "${DEADLINE:-7.5}" --save-dtype float16 ${EXTRA:-})
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 15 > "$work/gpu.csv" 2>&1 &
smi=$!
"$py" -m edgecnn.torchtrain "${common[@]}" --out "$work/A" --seeds 3 4 5 --jobs 3 > "$work/A.log" 2>&1 &
"$py" -m edgecnn.torchtrain "${common[@]}" --out "$work/B" --seeds 3 4 5 --jobs 3 \
    --stain-jitter 0.1 --label-smoothing 0.1 > "$work/B.log" 2>&1 &
"$py" -m edgecnn.torchtrain "${common[@]}" --out "$work/C" --seeds 3 4 --jobs 2 --input-size 100 > "$work/C.log" 2>&1 &
status=0
for job in $(jobs -p | grep -v "^$smi$"); do wait "$job" || status=1; done
kill "$smi" 2>/dev/null || true
tail -n 4 "$work"/[ABC].log
done_arms=$(for a in A B C; do [ -f "$work/$a/summary.json" ] && echo "$work/$a"; done)
"$py" -m edgecnn.torchtrain.compare --json $done_arms > "$work/all.json" || true
release_arms=$(for a in A B; do [ -f "$work/$a/summary.json" ] && echo "$work/$a"; done)
"$py" -m edgecnn.torchtrain.compare $release_arms --out "$work/pick"
split -b 15M -d "$work/pick/weights.npz" "$back/weights.npz.part"
(cd "$work" && tar czf "$back/sweep.tar.gz" --exclude='weights.npz' --exclude='jobs/*/weights.npz' \
    all.json gpu.csv ./*.log pick A B C 2>/dev/null) || true
ls -la "$back"
exit $status
