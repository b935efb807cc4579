#!/usr/bin/env bash
# Runs the whole test suite (all but the Gpu category): the Slow category included (fixtures that train toy models, pack and
# install the NuGet packages, run an Orleans cluster: a few minutes on 2 cores), the Torch category (files written by PyTorch's own
# exporter: about 2.5 minutes the first time, when the exports are made and cached in ~/.cache/onnx-attribution/torch-models;
# setup.sh --torch installs Debian's python3-torch) and the browser tests of the auditor's page (Playwright driving Debian's
# chromium, which setup.sh --torch installs). CI runs this same command; it ends with the counts parsed from the test results:
# "Tests: N passed, M failed[, K skipped]". (The counts of each category are in the TRX results, not written here, so they cannot go stale.)
# Usage: bash scripts/test.sh [--fast]     (--fast leaves out the tests marked [Category("Slow")] and [Category("Torch")])
set -uo pipefail
cd "$(dirname "$0")/.."

# The Gpu category needs a CUDA build and a GPU: tools/gpu-check.sh runs it, this script never does.
filter="Category!=Gpu"
if [ "${1:-}" = "--fast" ]; then filter="Category!=Slow&Category!=Gpu&Category!=Torch"; fi

bash scripts/setup.sh --torch || exit $?

results=TestResults
rm -rf "$results"
args=(test OnnxAttribution.sln -c Release --logger "trx" --results-directory "$results" --logger "console;verbosity=minimal")
if [ -n "$filter" ]; then args+=(--filter "$filter"); fi
dotnet "${args[@]}"
status=$?

# The SIMD kernels (projection, store scan, float16 conversion) once more on each fallback path: without AVX-512
# (Vector256), without AVX2 (Vector128) and without hardware intrinsics (scalar). .NET 10 reads DOTNET_EnableAVX512
# (DOTNET_EnableAVX512F for older runtimes); both are set. Their results count with the others.
path=0
for config in "DOTNET_EnableAVX512F=0 DOTNET_EnableAVX512=0" "DOTNET_EnableAVX512F=0 DOTNET_EnableAVX512=0 DOTNET_EnableAVX2=0" \
    "DOTNET_EnableHWIntrinsic=0"; do
    path=$((path + 1))
    echo "== SIMD kernel tests with $config"
    env $config dotnet test tests/OnnxAttribution.Runtime.Tests -c Release --no-build --filter "FullyQualifiedName~OnnxAttribution.Runtime.Tests.Projection" \
        --logger "trx;LogFileName=simd-fallback-projection-$path.trx" --results-directory "$results" --logger "console;verbosity=minimal" || status=1
    env $config dotnet test tests/OnnxAttribution.Core.Tests -c Release --no-build --filter "FullyQualifiedName~OnnxAttribution.Core.Tests.Store" \
        --logger "trx;LogFileName=simd-fallback-core-store-$path.trx" --results-directory "$results" --logger "console;verbosity=minimal" || status=1
    env $config dotnet test tests/OnnxAttribution.Store.Tests -c Release --no-build \
        --logger "trx;LogFileName=simd-fallback-store-$path.trx" --results-directory "$results" --logger "console;verbosity=minimal" || status=1
done

passed=0; failed=0; skipped=0; files=0
for trx in "$results"/*.trx; do
  [ -f "$trx" ] || continue
  files=$((files + 1))
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -1)
  get() { echo "$counters" | sed -n "s/.* $1=\"\([0-9]*\)\".*/\1/p"; }
  p=$(get passed); f=$(get failed); total=$(get total); executed=$(get executed)
  errors=$(get error); timeout=$(get timeout); aborted=$(get aborted)
  passed=$((passed + ${p:-0}))
  failed=$((failed + ${f:-0} + ${errors:-0} + ${timeout:-0} + ${aborted:-0}))
  skipped=$((skipped + ${total:-0} - ${executed:-0}))
done
if [ "$files" -eq 0 ]; then
  echo "no test results were written (the build or the test host failed)"
  [ "$status" -eq 0 ] && status=1
fi
if [ "$skipped" -gt 0 ]; then
  echo "Tests: $passed passed, $failed failed, $skipped skipped"
else
  echo "Tests: $passed passed, $failed failed"
fi
exit $status
