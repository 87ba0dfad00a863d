#!/bin/sh
# One GPU burst of training for the default model, about 9 minutes on an H100/H200-class GPU.
#
#   OUT=/somewhere sh recipes/gpu_burst.sh [INIT]
#
# (DEVICE=cpu SECONDS_LIMIT=100 BURST_SET="--set batch_size=2 --set crop=64" runs the same plumbing on a
# CPU, as a check: BURST_SET is added to both training commands.)
# Trains recipes/realistic_gpu.json (batch 32 of 256^2, bf16 autocast, channels-last, the realistic blur
# engine rendering on the GPU) on the compact corpus pack data/pack (`napari-deblurgan corpus data/corpus
# --pack data/pack`; git-ignored, so the device call names it in `carry`), starting from INIT (default:
# the shipped model; to go on from the CPU's current stage, whose architecture and data mix the recipe
# matches, `napari-deblurgan export RUN data/init.safetensors --half`, pass data/init.safetensors and
# carry it too), then writes to $OUT:
# generator.safetensors (the weight average, float16), metrics.csv and log.txt.
# The whole burst fits SECONDS_LIMIT (default 530): a probe of PROBE_SECONDS (default 40) measures the
# device's steps per second and start-up time, and the run is then given as many steps as fit the time
# left, so its cosine schedule ends at zero instead of being cut off at a high learning rate.
# Training then continues on the CPU from that snapshot: record it in recipes/default.json as a stage
# ("set": this recipe's options and the steps it was given) and init the next stage from it. Runs from
# the repository root without installing the package (PYTHONPATH=src): the device machine has torch,
# safetensors, scikit-image and tqdm.
set -eu
: "${OUT:?set OUT to the folder for the results}"
INIT="${1:-src/napari_deblurgan/models/default.safetensors}"
[ -d data/pack ] || { echo "data/pack is missing: build it and carry it (see the header)" >&2; exit 2; }
export PYTHONPATH=src PYTHONUNBUFFERED=1
DEVICE="${DEVICE:-cuda}"
LIMIT="${SECONDS_LIMIT:-530}"
PROBE="${PROBE_SECONDS:-40}"
# processes that prepare batches (one takes about 0.25 s of a core for 32 x 256^2; the H200 profile suggests
# ~15 steps a second once fed)
WORKERS="${DATA_WORKERS:-$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))}"
WORK=$(mktemp -d)
START=$(date +%s)
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "device: $DEVICE"; } | tee "$OUT/log.txt"
train() {  # train SECONDS RUN [--set KEY=VALUE ...]; SIGINT at the limit: the step finishes, a checkpoint is saved
  seconds=$1 run=$2
  shift 2
  timeout -s INT "$seconds" python3 -m napari_deblurgan train --config recipes/realistic_gpu.json \
    --out "$run" --init "$INIT" --device "$DEVICE" --data-workers "$WORKERS" --quiet ${BURST_SET:-} "$@" 2>&1 | tee -a "$OUT/log.txt" || true
}
train "$PROBE" "$WORK/probe" --set steps=1000000 --set log_every=5 --set validate_every=1000000000 \
  --set checkpoint_every=1000000000
STEPS=$(python3 - "$WORK/probe/metrics.csv" "$PROBE" "$((LIMIT - $(date +%s) + START))" <<'PY'
import csv, sys
rows = [(int(r["step"]), float(r["time"])) for r in csv.DictReader(open(sys.argv[1]))]
probe, left = float(sys.argv[2]), float(sys.argv[3])
if len(rows) < 3:
    sys.exit(f"the probe logged {len(rows)} rows in {probe:.0f} s: too slow for a burst")
(s1, t1), (s2, t2) = rows[1], rows[-1]  # from the second row: the first holds the warm-up
rate = (s2 - s1) / (t2 - t1)
startup = probe - (s2 / rate)  # seconds of the probe not spent in steps: imports, data, first steps
steps = int(rate * (left - startup - 20))  # 20 s: the final validation and checkpoint
print(f"probe: {rate:.2f} steps/s, {startup:.0f} s start-up; {left:.0f} s left: {steps} steps", file=sys.stderr)
print(max(steps, 0))
PY
) 2>>"$OUT/log.txt"
tail -n 1 "$OUT/log.txt"
[ "$STEPS" -gt 0 ] || { echo "no time left for training" >&2; exit 1; }
# the schedule's warm-up is 200 steps of the recipe's 5,000: the same fraction of this run's steps
WARMUP=$((STEPS / 25))
train "$((LIMIT - $(date +%s) + START))" "$WORK/run" --set steps="$STEPS" --set warmup="$WARMUP" \
  --set checkpoint_every="$((STEPS / 4 + 1))" --set validate_every="$((STEPS / 2 + 1))"
python3 -m napari_deblurgan export "$WORK/run" "$OUT/generator.safetensors" --half 2>&1 | tee -a "$OUT/log.txt"
cp "$WORK/run/metrics.csv" "$OUT/"
tail -n 3 "$OUT/metrics.csv"
