#!/usr/bin/env bash
# Recipe of the shipped model models/fm16: train on the embedded 16×16 Fashion-MNIST subset (all 4000 images),
# export forward.onnx + vjp.onnx + model.json, check the gradient graph, and draw the sample grid.
# Resumable: rerun after a kill and training continues from the last checkpoint in runs/fm16.
# About 20 minutes on 2 cores (8000 steps at ~145 ms/step when the machine is otherwise idle).
set -euo pipefail
cd "$(dirname "$0")/.."
# glibc maps and unmaps the big activations every step; these cut system time ~5x (docs/design.md, Platform notes).
export MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=268435456
dotnet build src/OnnxAttribution.Cli -c Release -v q -nologo -o out/cli
cli=out/cli/onnx-attribution
"$cli" train --data embedded --size 16 --subset all --steps 8000 --batch-size 64 --lr 1e-3 --ema 0.999 \
    --seed 20261123 --threads 2 --checkpoint-every 250 --out runs/fm16
"$cli" export --checkpoint runs/fm16 --out models/fm16 --name fm16
"$cli" check-gradients --model models/fm16
"$cli" generate --model models/fm16 --seed 0 --count 32 --steps 50 --out models/fm16/samples.png
