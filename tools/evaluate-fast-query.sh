#!/usr/bin/env bash
# What a faster query costs in attribution quality (docs/results/performance.md, "Query latency"): D-TRAK's LDS at fewer timesteps
# and a smaller k than the default (K = 10, k = 4096), in two ways:
#   - the store featurized at K timesteps and queries measured at all K (points K1/K2/K4/K10 × k1024/k2048);
#   - the default store, queries measured at Q of its K timesteps (--query-timesteps; points Q1, Q2, k2048-Q2).
# It reuses the subset models and measured losses of tools/evaluate-lds.sh in eval/lds (run that first; with its models
# present each point takes a few minutes: one store build and a damping sweep) and copies lds-POINT.json/.md to
# docs/results (docs/results/performance.md's table; docs/results/lds-curves.* leave them out: their build times were taken while other
# jobs shared the machine). POINTS="K2-k1024 Q2" runs only those.
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet build src/OnnxAttribution.Cli -c Release -v q -nologo -o out/cli
cli=out/cli/onnx-attribution
common=(--data embedded --subset 0:1000 --subset-models "${SUBSET_MODELS:-64}" --subset-seeds "${SUBSET_SEEDS:-3}" \
    --alpha 0.5 --queries 50 --validation-queries 20 --damping-grid 1e-6,1e-5,1e-4,1e-3,1e-2,1e-1,1,10,100,1000 \
    --steps 1500 --batch-size 32 --lr 2e-3 --ema 0.995 --base-channels 16 --seed 0 \
    --measure-timesteps 100 --measure-draws 3 --damping 1e-3 --out eval/lds --methods "${METHODS:-d-trak}")
declare -A settings=(
    [Q1]="--timesteps 10 --dim 4096 --query-timesteps 1"
    [Q2]="--timesteps 10 --dim 4096 --query-timesteps 2"
    [k2048]="--timesteps 10 --dim 2048"
    [k2048-Q2]="--timesteps 10 --dim 2048 --query-timesteps 2"
    [K10-k1024]="--timesteps 10 --dim 1024"
    [K4-k1024]="--timesteps 4 --dim 1024"
    [K2-k2048]="--timesteps 2 --dim 2048"
    [K2-k1024]="--timesteps 2 --dim 1024"
    [K1-k1024]="--timesteps 1 --dim 1024"
)
mkdir -p docs/results
for point in ${POINTS:-Q1 Q2 k2048 k2048-Q2 K10-k1024 K4-k1024 K2-k2048 K2-k1024 K1-k1024}; do
    # shellcheck disable=SC2086 # the settings are words
    "$cli" lds "${common[@]}" --point "$point" ${settings[$point]} "$@"
    cp "eval/lds/lds-$point.json" "eval/lds/lds-$point.md" docs/results/
done
