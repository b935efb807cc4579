#!/usr/bin/env bash
# Does the audit report's trust statistic separate good answers from bad? On a small LDS benchmark (N = 1000 embedded
# images, M subset models × 1 seed, α = 0.5, Q test queries, D-TRAK with its damping chosen on 20 validation queries),
# each test query's own LDS (the Spearman correlation over the subsets between its predicted and its measured output) is
# set beside the trust statistic the report gives that query (z and percentile of its top rows among all rows' scores).
# Writes docs/results/trust.md and trust.json via tools/trust-table.py.
# Resumable like 'lds' (rerun to continue). Cost: M + 1 trainings of ~35 s on 2 idle cores, then 50 reports of ~1 s.
# Usage: tools/validate-trust.sh [out] [M] [Q]      (default eval/trust 32 50)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-eval/trust}; m=${2:-32}; q=${3:-50}
export MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=268435456
dotnet build src/OnnxAttribution.Cli -c Release -v q -nologo -o out/cli >/dev/null
cli=out/cli/onnx-attribution
mkdir -p "$out"
lds=(lds --out "$out" --data embedded --subset 0:1000 --subset-models "$m" --subset-seeds 1 --alpha 0.5 --queries "$q" --validation-queries 20
     --damping-grid 1e-3,1e-2,1e-1,1,10 --steps 1500 --batch-size 32 --lr 2e-3 --ema 0.995 --base-channels 16 --seed 0
     --measure-timesteps 100 --measure-draws 3 --timesteps 10 --dim 4096 --methods d-trak)
"$cli" "${lds[@]}" --json > "$out/lds-result.json"
store="$out/stores/d-trak"
damping=$(python3 -c "import json,sys; d=json.load(open('$out/lds.json')); print([m for m in d['methods'] if m['method']=='d-trak'][0]['damping'])")
"$cli" finalize --store "$store" --damping "$damping" >/dev/null
mkdir -p "$out/reports"
for seed in $(seq 0 $((q - 1))); do
  [ -s "$out/reports/$seed.json" ] || "$cli" report --store "$store" --seed "$seed" --steps 50 --top 10 --out "$out/reports/$seed.html" --json > "$out/reports/$seed.json"
done
python3 tools/trust-table.py "$out" "$q" "${lds[*]}" docs/results
