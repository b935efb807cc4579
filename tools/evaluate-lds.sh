#!/usr/bin/env bash
# The README's LDS table: N = 1000 embedded 16×16 images, a reference model and M = 64 subset models (α = 0.5) trained
# with the fast recipe, a 32-member encoded ensemble trained with the same recipe, 50 generated queries, every method.
# Resumable: rerun after a kill and it continues (each trained model, store and score file is saved once).
# About 70 minutes on 2 idle cores, most of it training the 97 models (a run with a smaller M continues to a larger one, reusing its models).
# Extra arguments go to 'evaluate lds' (e.g. --methods trak,d-trak to score fewer methods).
set -euo pipefail
cd "$(dirname "$0")/.."
# glibc maps and unmaps the big activations every step; these cut training time ~2x here (docs/DESIGN.md, Platform notes).
export MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=268435456
dotnet build src/OnnxAttribution.Cli -c Release -v q -nologo -o out/cli
cli=out/cli/onnx-attribution
recipe=(--steps 1500 --batch-size 32 --lr 2e-3 --ema 0.995 --base-channels 16)
"$cli" train-ensemble --data embedded --subset 0:1000 --members 32 --groups 1000 "${recipe[@]}" --seed 100 --encoding-seed 1 \
    --out eval/ensemble-e32
"$cli" evaluate lds --data embedded --subset 0:1000 --subset-models 64 --alpha 0.5 --queries 50 "${recipe[@]}" --seed 0 \
    --measure-timesteps 100 --measure-draws 3 --timesteps 10 --dim 4096 --damping 1e-3 --ensemble eval/ensemble-e32 \
    --methods "${METHODS:-trak,d-trak,journey-trak,tracin,retrac,das,kfac,ekfac,ensemble,pixel,gradient-cosine,random}" \
    --out eval/lds "$@"
