#!/usr/bin/env bash
# Training checkpoints of the shipped model models/fm16, for TracIn / ReTrac (featurize --method tracin|retrac --checkpoints …).
# Re-runs the shipped model's recipe (tools/train-shipped-model.sh: seed 20261123, 8000 steps, batch 64, lr 1e-3, same data)
# keeping the checkpoints at steps 2000, 4000, 6000 and 8000, and exports their raw (non-EMA) weights — the weights training
# had at those steps — to models/fm16/checkpoints/step-NNNN/ (forward.onnx + model.json with the step and learning rate).
# Resumable: rerun after a kill and training continues from the last checkpoint in runs/fm16-ckpt.
# About 20 minutes on 2 cores (8000 steps at ~145 ms/step when the machine is otherwise idle).
set -euo pipefail
cd "$(dirname "$0")/.."
# glibc maps and unmaps the big activations every step; these cut system time ~5x (docs/design.md, Platform notes).
export MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=268435456
dotnet build src/OnnxAttribution.Cli -c Release -v q -nologo -o out/cli
cli=out/cli/onnx-attribution
"$cli" train --data embedded --size 16 --subset all --steps 8000 --batch-size 64 --lr 1e-3 --ema 0.999 \
    --seed 20261123 --threads 2 --checkpoint-every 250 --keep-checkpoints-every 2000 --out runs/fm16-ckpt
for step in 2000 4000 6000 8000; do
    "$cli" export --checkpoint runs/fm16-ckpt --step "$step" --out "models/fm16/checkpoints/step-$step" --name "fm16-step-$step"
done
echo "checkpoints: models/fm16/checkpoints/step-{2000,4000,6000,8000}; e.g."
echo "  $cli featurize --method tracin --model models/fm16 --subset 0:1000 --out stores/tracin \\"
echo "      --checkpoints models/fm16/checkpoints/step-2000,models/fm16/checkpoints/step-4000,models/fm16/checkpoints/step-6000,models/fm16/checkpoints/step-8000"
