#!/bin/sh
# Reproduces the shipped default model from scratch, on any machine (CPU: hours; one GPU: minutes), in
# fresh run folders under $OUT (default runs/default-model), so nothing committed under training/ is touched.
# Every batch is a function of (seed, step), so each stage gives the same weights wherever it stops and resumes:
# pass --resume to continue an interrupted reproduction, --device cuda for a GPU.
set -e
OUT="${OUT:-runs/default-model}"
# Stage 1: content-only pretraining on the scikit-image images; its 60,000-step schedule is cut at 19,000.
napari-deblurgan train --config recipes/stage1.json --out "$OUT/stage1" --until 19000 "$@"
# Stage 2: fine-tunes stage 1 on augmented data (dead leaves, scale); the critic joins for the final phase.
napari-deblurgan train --config recipes/stage2.json --out "$OUT/stage2" --init "$OUT/stage1/generator.safetensors" "$@"
# Stage 3: soft (defocused) regions in the targets, motion-only kernels; the critic joins at the end.
napari-deblurgan train --config recipes/stage3.json --out "$OUT/stage3" --init "$OUT/stage2/generator.safetensors" "$@"
# Stage 4: a second cosine cycle from stage 3 (lr 2e-4, new seed); the critic joins at the end.
napari-deblurgan train --config recipes/stage4.json --out "$OUT/stage4" --init "$OUT/stage3/generator.safetensors" "$@"
# (Stage 5, recipes/stage5.json, was a third cosine cycle that did not beat stage 4: not part of the model.)
# Stage 6: a fine-tune of stage 4 with low-contrast crops (contrast_min) and a weight average; critic at the end.
napari-deblurgan train --config recipes/stage6.json --out "$OUT/stage6" --init "$OUT/stage4/generator.safetensors" "$@"
# (Stage 7, recipes/stage7.json, lowered contrast_min further without gain: not part of the model.)
# Stage 8: a fine-tune of stage 6 where a fifth of the kernels are slight (small_blur), so sharp images are left alone.
napari-deblurgan train --config recipes/stage8.json --out "$OUT/stage8" --init "$OUT/stage6/generator.safetensors" "$@"
# Stage 8's generator in float16, as it was shipped before stage 13 (in history: git show 99b2477:training/stage8/...).
napari-deblurgan export "$OUT/stage8" "$OUT/stage8/generator-half.safetensors" --overwrite --half --weights raw
# (Stages 9-12, recipes/stage9.json to stage12.json, fine-tuned stage 8 without gain: not part of the model.)
# Stage 13: stage 8 narrowed to 16 base channels (4x fewer multiply-adds), fine-tuned; critic at the end.
napari-deblurgan train --config recipes/stage13.json --out "$OUT/stage13" --init "$OUT/stage8/generator-half.safetensors" "$@"
# The shipped file holds float16 weights (half the size; loaded as float32): the optimised weights, not the
# weight average (export's default since 2026-12-04; stages 8 and 13 were exported before it existed).
napari-deblurgan export "$OUT/stage13" "$OUT/default.safetensors" --overwrite --half --weights raw
echo "Reproduced: $OUT/default.safetensors (ship it: cp it to src/napari_deblurgan/models/default.safetensors)"
