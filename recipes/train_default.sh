#!/bin/sh
# Reproduces the shipped default model from scratch, on any machine (CPU: hours; one GPU: minutes).
# Every batch is a function of (seed, step), so each stage gives the same weights wherever it stops and resumes.
set -e
# Stage 1: content-only pretraining on the scikit-image images; its 60,000-step schedule is cut at 19,000.
napari-deblurgan train --config recipes/stage1.json --out training/stage1 --until 19000 "$@"
# Stage 2: fine-tunes stage 1 (recipe "init") on augmented data; the critic joins for the final phase.
napari-deblurgan train --config recipes/default.json --out training/default "$@"
napari-deblurgan export training/default src/napari_deblurgan/models/default.safetensors --overwrite
