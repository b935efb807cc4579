#!/usr/bin/env bash
# Runs the projection tests four times: as the machine allows (Vector512 on AVX-512 hardware), with AVX-512 off
# (Vector256 path), with AVX2 off too (Vector128 path) and with every hardware intrinsic off (scalar path), so that every fallback of the kernels runs.
# The golden-value tests pin the same bits on every path. Each run prints the path it took.
# Usage: tests/run-kernel-fallbacks.sh [artifacts-path]   (default /tmp/art-proj)
set -euo pipefail
cd "$(dirname "$0")/.."
artifacts="${1:-/tmp/art-proj}"
project=tests/OnnxAttribution.Core.Tests
filter='FullyQualifiedName~Projection'
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

dotnet build --artifacts-path "$artifacts" "$project" -v quiet -nologo > /dev/null

status=0
run() {
    local label="$1"
    shift
    echo "=== $label"
    if env "$@" dotnet test --artifacts-path "$artifacts" "$project" --no-build --filter "$filter" \
        --logger "console;verbosity=normal" > "$log" 2>&1; then
        grep -E "run at" "$log" || true
        grep -E "^(Passed|Failed)!|Total tests|Passed:|Failed:" "$log" | head -3 || true
    else
        cat "$log"
        status=1
    fi
}

run "default"
# .NET 8/9 read DOTNET_EnableAVX512F; .NET 10 groups AVX-512 under DOTNET_EnableAVX512. Set both.
run "AVX-512 off" DOTNET_EnableAVX512F=0 DOTNET_EnableAVX512=0
run "AVX2 off (Vector128 path)" DOTNET_EnableAVX512F=0 DOTNET_EnableAVX512=0 DOTNET_EnableAVX2=0
run "all hardware intrinsics off" DOTNET_EnableHWIntrinsic=0
exit $status
