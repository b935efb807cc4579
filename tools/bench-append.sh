#!/bin/sh
# The cost of append and remove on a 60,000-row store (Fashion-MNIST at the shipped model's 16×16, d-trak, dense k = 4096,
# 10 timesteps: featurize's default setting) against a rebuild. Prints a markdown table (docs/results/living-stores.md).
# Usage: tools/bench-append.sh [dir] [rows] [added]   (default /tmp/appendbench 60000 600; needs ~3 GB of free disk)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
artifacts=${ARTIFACTS:-/tmp/art-append}
dotnet build -c Release --artifacts-path "$artifacts" "$root/tools/OnnxAttribution.AppendBench" >/dev/null
echo "load average before: $(cut -d" " -f1-3 /proc/loadavg)"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores"
dotnet "$artifacts/bin/OnnxAttribution.AppendBench/release/OnnxAttribution.AppendBench.dll" "${1:-/tmp/appendbench}" "$root/models/fm16" "${2:-60000}" "${3:-600}"
echo "load average after: $(cut -d" " -f1-3 /proc/loadavg)"
