#!/usr/bin/env bash
# In-process latency of one image query, stage by stage (decode, features, solve, scan with top-k), p50 and p99 over N
# sequential queries, with the scan set against a plain read of the same bytes in the same run.
# Usage: bash tools/bench-query.sh [store] [png] [queries] [--query-timesteps Q]
#        (defaults: out/demo/store-dtrak, out/demo/sample-seed7.png, 200; the model is the store's own, from source.json)
set -euo pipefail
cd "$(dirname "$0")/.."
store=${1:-out/demo/store-dtrak}
png=${2:-out/demo/sample-seed7.png}
n=${3:-200}
shift $(($# < 3 ? $# : 3))
model=$(sed -n 's/.*"modelDirectory": *"\([^"]*\)".*/\1/p' "$store/source.json")
case "$model" in /*) ;; *) model="$store/$model" ;; esac
dotnet build tools/OnnxAttribution.QueryBench -c Release -v q -nologo -o out/querybench >/dev/null
echo "machine: $(nproc) cores; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
dotnet out/querybench/OnnxAttribution.QueryBench.dll "$store" "$model" "$png" "$n" "$@"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
