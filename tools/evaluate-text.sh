#!/usr/bin/env bash
# The LDS protocol of docs/results/lds.md on text-conditioned models (issue 28; the pixel-space part of setting b): every
# model — the reference and each of the M × S subset models — a text-conditioned U-Net trained with its rows' captions
# ("a dark sneaker"), test query q generated with and attributed under "a dark|light <class q mod 10>", validation query v
# likewise, each method's damping chosen on the V validation queries. Resumable: rerun after a kill and it continues.
# SUBSET_MODELS (default 32) and SUBSET_SEEDS (default 3) set M and S; METHODS the methods; extra arguments go to 'lds'.
# Results: eval/lds-text/lds.json and lds.md, copied to docs/results/lds-text.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
export MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=268435456
dotnet build src/OnnxAttribution.Cli -c Release -v q -nologo -o out/cli
cli=out/cli/onnx-attribution
"$cli" lds --condition text --data embedded --subset 0:1000 --subset-models "${SUBSET_MODELS:-32}" --subset-seeds "${SUBSET_SEEDS:-3}" \
    --alpha 0.5 --queries 50 --validation-queries 20 --damping-grid 1e-6,1e-5,1e-4,1e-3,1e-2,1e-1,1,10,100,1000 \
    --steps 1500 --batch-size 32 --lr 2e-3 --ema 0.995 --base-channels 16 --seed 0 --measure-timesteps 100 --measure-draws 3 \
    --damping 1e-3 --timesteps 10 --dim 4096 --methods "${METHODS:-trak,d-trak,das,kfac,ekfac,tracin,pixel,gradient-cosine,random}" \
    --out eval/lds-text "$@"
mkdir -p docs/results
cp eval/lds-text/lds.json docs/results/lds-text.json
cp eval/lds-text/lds.md docs/results/lds-text.md
