#!/usr/bin/env bash
# The LDS protocol of docs/results/lds.md on a class-conditional pixel model (issue 28's setting a): N = 1000 embedded
# 16×16 Fashion-MNIST images with their labels, every model (the reference and M subset models × S seeds) trained
# class-conditionally with the fast recipe (label embedding added to the time embedding, 10% condition dropout);
# Q = 50 test queries (seed q generated with label q mod 10, guidance 1) and V = 20 validation queries (label v mod 10)
# on which each method's damping is chosen; the noise ceiling from the S seeds; the methods that attribute conditional
# models. Resumable: rerun after a kill and it continues (every trained model, measured loss, store and score file is kept).
# CONDITION=text runs the same protocol on text-conditioned models instead (the pixel-space part of setting b): every model
# trained with its rows' captions ("a dark sneaker"), query q under "a dark|light <class q mod 10>"; folder eval/lds-text,
# results docs/results/lds-text.{json,md}.
# SUBSET_MODELS (default 32) and SUBSET_SEEDS (default 3) set M and S; METHODS the methods; extra arguments go to 'lds'.
# Results: eval/lds-conditional/lds.json and lds.md, copied to docs/results/lds-conditional.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
export MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=268435456
dotnet build src/OnnxAttribution.Cli -c Release -v q -nologo -o out/cli
cli=out/cli/onnx-attribution
condition=${CONDITION:-label}
name=$([ "$condition" = text ] && echo text || echo conditional)
"$cli" lds --condition "$condition" --data embedded --subset 0:1000 --subset-models "${SUBSET_MODELS:-32}" --subset-seeds "${SUBSET_SEEDS:-3}" \
    --alpha 0.5 --queries 50 --validation-queries 20 --damping-grid 1e-6,1e-5,1e-4,1e-3,1e-2,1e-1,1,10,100,1000 \
    --steps 1500 --batch-size 32 --lr 2e-3 --ema 0.995 --base-channels 16 --seed 0 --measure-timesteps 100 --measure-draws 3 \
    --damping 1e-3 --timesteps 10 --dim 4096 --methods "${METHODS:-trak,d-trak,das,kfac,ekfac,tracin,retrac,journey-trak,pixel,gradient-cosine,random}" \
    --out "eval/lds-$name" "$@"
mkdir -p docs/results
cp "eval/lds-$name/lds.json" "docs/results/lds-$name.json"
cp "eval/lds-$name/lds.md" "docs/results/lds-$name.md"
