#!/bin/sh
# The GPU checks of the deblurring pipeline in one run (about 3-5 minutes on an H100/H200), for a machine
# lent for a few minutes:
#
#   OUT=/somewhere sh benchmarks/gpu_check.sh
#
# 1. the CUDA tests (tests/test_cuda.py, tests/test_realistic.py -m cuda): CPU and CUDA agree (the
#    network within 2 grey levels, the PSF refinement to the same quality, a 720p stack), half precision,
#    training with autocast;
# 2. benchmarks/speed.py --stacks on CUDA: ms per frame of 720p and 1080p stacks, split into network,
#    refinement and host-device copies (the goal: a 720p frame through the default pipeline in <= 20 ms).
# (DEVICE=cpu FRAMES=1 runs the same plumbing on a CPU, as a check.) TESTS_LIMIT and SPEED_LIMIT (seconds,
# default 240 each) bound the two parts, so the check can share one device call with a training burst. Writes $OUT/gpu_check.txt and $OUT/gpu_tests.txt. Runs from the repository root without installing the package (PYTHONPATH=src):
# the device machine has torch, scipy, scikit-image, safetensors, pytest and tqdm.
set -u
: "${OUT:?set OUT to the folder for the results}"
export PYTHONPATH=src PYTHONUNBUFFERED=1
LOG="$OUT/gpu_check.txt"
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"; } | tee "$LOG"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$LOG"
# the whole pytest output (tracebacks included) in $OUT/gpu_tests.txt, its summary in the log
timeout "${TESTS_LIMIT:-240}" python3 -m pytest -q -p no:cacheprovider -m cuda --tb=short -W ignore::DeprecationWarning \
  tests/test_cuda.py tests/test_realistic.py > "$OUT/gpu_tests.txt" 2>&1
grep -E "^(FAILED|ERROR)| in [0-9.]+s" "$OUT/gpu_tests.txt" | tee -a "$LOG"
timeout "${SPEED_LIMIT:-240}" python3 benchmarks/speed.py --device "${DEVICE:-cuda}" --stacks ${FRAMES:+--frames $FRAMES} 2>&1 | tee -a "$LOG"
