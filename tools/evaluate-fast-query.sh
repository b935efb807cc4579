#!/usr/bin/env bash
# The LDS cost of the fast query setting (README, Speed: "25 ms queries"): D-TRAK scored with queries measured at Q of
# the store's K = 10 timesteps (--query-timesteps), at k = 4096 and at k = 2048, beside the same stores queried at all K.
# It reuses the subset models and measured losses of tools/evaluate-lds.sh in eval/lds (run that first; with its
# models present this takes a few minutes per point) and writes lds-Q1.json, lds-Q2.json, lds-k2048.json and
# lds-k2048-Q2.json (with their .md) to eval/lds and docs/results.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build src/OnnxAttribution.Cli -c Release -v q -nologo -o out/cli
cli=out/cli/onnx-attribution
common=(--data embedded --subset 0:1000 --subset-models "${SUBSET_MODELS:-64}" --subset-seeds "${SUBSET_SEEDS:-3}" \
    --alpha 0.5 --queries 50 --validation-queries 20 --damping-grid 1e-6,1e-5,1e-4,1e-3,1e-2,1e-1,1,10,100,1000 \
    --steps 1500 --batch-size 32 --lr 2e-3 --ema 0.995 --base-channels 16 --seed 0 \
    --measure-timesteps 100 --measure-draws 3 --damping 1e-3 --out eval/lds --timesteps 10 --methods "${METHODS:-d-trak}")
"$cli" lds "${common[@]}" --point Q1 --dim 4096 --query-timesteps 1 "$@"
"$cli" lds "${common[@]}" --point Q2 --dim 4096 --query-timesteps 2 "$@"
"$cli" lds "${common[@]}" --point k2048 --dim 2048 "$@"
"$cli" lds "${common[@]}" --point k2048-Q2 --dim 2048 --query-timesteps 2 "$@"
mkdir -p docs/results
for point in Q1 Q2 k2048 k2048-Q2; do
    cp "eval/lds/lds-$point.json" "eval/lds/lds-$point.md" docs/results/
done
