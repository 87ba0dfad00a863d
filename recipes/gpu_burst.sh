#!/bin/sh
# One GPU burst of training for the default model, about 9 minutes on an H100/H200-class GPU.
#
#   OUT=/somewhere sh recipes/gpu_burst.sh [INIT]
#
# (DEVICE=cpu SECONDS_LIMIT=60 runs the same plumbing on a CPU, as a check.)
# Trains recipes/realistic_gpu.json (batch 32 of 256^2, bf16 autocast, channels-last, the realistic blur
# engine rendering on the GPU) on the compact corpus pack data/pack (`napari-deblurgan corpus data/corpus
# --pack data/pack`; git-ignored, so the device call names it in `carry`), starting from INIT (default:
# the shipped model, whose lineage's architecture and data mix the recipe matches), then writes to $OUT:
# generator.safetensors (the weight average, float16), metrics.csv and log.txt. Training then continues on the CPU from that
# snapshot: record it in recipes/default.json as a stage ("set": this recipe's options, "until": the
# step it reached) and init the next stage from it. Runs from the repository root without installing
# the package (PYTHONPATH=src): the device machine has torch, safetensors, scikit-image and tqdm.
set -eu
: "${OUT:?set OUT to the folder for the results}"
INIT="${1:-src/napari_deblurgan/models/default.safetensors}"
[ -d data/pack ] || { echo "data/pack is missing: build it and carry it (see the header)" >&2; exit 2; }
export PYTHONPATH=src PYTHONUNBUFFERED=1
DEVICE="${DEVICE:-cuda}"
RUN=$(mktemp -d)/run
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "device: $DEVICE"; } | tee "$OUT/log.txt"
# SIGINT at the time limit: the trainer finishes its step and saves a checkpoint (as Ctrl-C does)
timeout -s INT "${SECONDS_LIMIT:-530}" python3 -m napari_deblurgan train --config recipes/realistic_gpu.json \
  --out "$RUN" --init "$INIT" --device "$DEVICE" --quiet 2>&1 | tee -a "$OUT/log.txt" || true
python3 -m napari_deblurgan export "$RUN" "$OUT/generator.safetensors" --half 2>&1 | tee -a "$OUT/log.txt"
cp "$RUN/metrics.csv" "$OUT/"
tail -n 3 "$OUT/metrics.csv"
