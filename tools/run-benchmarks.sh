#!/usr/bin/env bash
# Builds and runs the projector benchmarks (BenchmarkDotNet). Extra arguments go to BenchmarkDotNet, e.g.
#   tools/run-benchmarks.sh --filter '*DenseProjectorBenchmarks*' --job short
# Default: every benchmark with the short job (3 warm-ups, 3 iterations; a few minutes on 2 cores).
# Results (Markdown, CSV) land in $BENCH_ARTIFACTS (default /tmp/onnxattribution-bench)/results.
set -euo pipefail
cd "$(dirname "$0")/.."
build="${BUILD_ARTIFACTS:-/tmp/art-bench}"
out="${BENCH_ARTIFACTS:-/tmp/onnxattribution-bench}"
dotnet build -c Release --artifacts-path "$build" tools/OnnxAttribution.Benchmarks -v quiet -nologo > /dev/null
args=("$@")
if [ ${#args[@]} -eq 0 ]; then
    args=(--filter '*' --job short)
fi
# In-process: BenchmarkDotNet does not generate and build a second project, so the build above is what runs.
exec dotnet "$build/bin/OnnxAttribution.Benchmarks/release/OnnxAttribution.Benchmarks.dll" --inProcess --artifacts "$out" "${args[@]}"
