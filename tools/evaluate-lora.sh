#!/usr/bin/env bash
# The LDS protocol of docs/results/lds.md on a LoRA setting (issue 28's setting c, the papers' ArtBench setting at this
# machine's scale): a base U-Net trained on the embedded 16×16 Fashion-MNIST images of classes 0–4 (2,021 rows); the
# fine-tuning set N = the first 1000 images of classes 5–9; the reference model and every subset model (M × S) are LoRA
# fine-tunes of that one base (rank 4 adapters on the residual blocks' 3×3 convolutions) on their rows, and every gradient
# is the adapters'. Q = 50 test queries, V = 20 validation queries choosing each method's damping, the noise ceiling from
# the S seeds. Resumable: rerun after a kill and it continues (the base, every fine-tune, loss, store and score is kept).
# SUBSET_MODELS (default 32) and SUBSET_SEEDS (default 3) set M and S; METHODS the methods; extra arguments go to 'lds'.
# Results: eval/lds-lora/lds/lds.json and lds.md, copied to docs/results/lds-lora.{json,md}. Needs python3 (the class lists).
set -euo pipefail
cd "$(dirname "$0")/.."
export MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=268435456
out=eval/lds-lora
labels=models/data/fashion-mnist-16/train-labels-idx1-ubyte.gz
mkdir -p "$out"
dotnet build src/OnnxAttribution.Cli -c Release -v q -nologo -o out/cli
cli=out/cli/onnx-attribution
python3 tools/class-rows.py "$labels" 0-4 > "$out/base-rows.txt"
python3 tools/class-rows.py "$labels" 5-9 1000 > "$out/finetune-rows.txt"
# The base: the fast recipe of the other LDS runs on classes 0–4 (resumes after a kill; exported once).
if [ ! -f "$out/base/model.json" ]; then
    "$cli" train --data embedded --subset "@$out/base-rows.txt" --steps 1500 --batch-size 32 --lr 2e-3 --ema 0.995 --base-channels 16 \
        --seed 0 --out "$out/base-run"
    "$cli" export --checkpoint "$out/base-run" --out "$out/base"
fi
"$cli" lds --data embedded --subset "@$out/finetune-rows.txt" --base "$out/base" --lora-rank 4 --lora-targets conv \
    --subset-models "${SUBSET_MODELS:-32}" --subset-seeds "${SUBSET_SEEDS:-3}" \
    --alpha 0.5 --queries 50 --validation-queries 20 --damping-grid 1e-6,1e-5,1e-4,1e-3,1e-2,1e-1,1,10,100,1000 \
    --steps "${LORA_STEPS:-500}" --batch-size 32 --lr "${LORA_LR:-5e-3}" --ema 0.995 --seed 0 --measure-timesteps 100 --measure-draws 3 \
    --damping 1e-3 --timesteps 10 --dim 4096 --methods "${METHODS:-trak,d-trak,das,kfac,ekfac,tracin,retrac,journey-trak,pixel,gradient-cosine,random}" \
    --out "$out/lds" "$@"
mkdir -p docs/results
cp "$out/lds/lds.json" docs/results/lds-lora.json
cp "$out/lds/lds.md" docs/results/lds-lora.md
