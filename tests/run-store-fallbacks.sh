#!/bin/sh
# Runs the feature-store tests as the hardware allows, then without AVX-512 (Vector256 is the widest), without AVX/AVX2
# (Vector128), and without any hardware intrinsics (scalar), so every fallback path is what Auto picks at least once.
# .NET 10 reads DOTNET_EnableAVX512 (DOTNET_EnableAVX512F alone no longer turns Vector512 off); both are set.
# Usage: tests/run-store-fallbacks.sh   (ARTIFACTS=... to choose the build folder; default /tmp/art-store)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
artifacts=${ARTIFACTS:-/tmp/art-store}
project="$root/tests/OnnxAttribution.Store.Tests"
dotnet build --artifacts-path "$artifacts" "$project" >/dev/null
for config in "" "DOTNET_EnableAVX512F=0 DOTNET_EnableAVX512=0" "DOTNET_EnableAVX512F=0 DOTNET_EnableAVX512=0 DOTNET_EnableAVX=0" \
    "DOTNET_EnableHWIntrinsic=0"; do
    echo "== feature-store tests ${config:-with all hardware features}"
    env $config dotnet test --no-build --artifacts-path "$artifacts" "$project" --filter "FullyQualifiedName~OnnxAttribution.Store.Tests"
done
