#!/bin/sh
# Feature-store query latency on synthetic stores (k = 4096): float32 and float16, 60,000 and 1,000,000 rows, next to a plain
# sequential SIMD read of the same bytes. Prints a markdown table; the synthetic stores are deleted after each row.
# Usage: tools/bench-store.sh [dir]   (default /tmp/storebench; needs ~16 GB free disk and page cache for the largest store)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-/tmp/storebench}
artifacts=${ARTIFACTS:-/tmp/art-store}
dotnet build -c Release --artifacts-path "$artifacts" "$root/tools/OnnxAttribution.StoreBench" >/dev/null
bench="$artifacts/bin/OnnxAttribution.StoreBench/release/OnnxAttribution.StoreBench.dll"
echo "load average before: $(cut -d" " -f1-3 /proc/loadavg)"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
echo
echo "| store | dtype | data GB | sequential read, ms | 1 query: p50 / p99 ms | runs | batch of 64: p50 / p99 ms | runs |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for config in "60000 float32" "60000 float16" "1000000 float16" "1000000 float32"; do
    set -- $config
    need_gb=$(( $1 * 4096 * $(if [ "$2" = float32 ]; then echo 4; else echo 2; fi) / 1000000000 + 1 ))
    avail_gb=$(awk '/MemAvailable/ {print int($2 / 1048576)}' /proc/meminfo)
    if [ "$need_gb" -ge "$avail_gb" ]; then
        echo "| $1 × 4096 | $2 | $need_gb | skipped: needs $need_gb GB of page cache, $avail_gb GiB available | | | | |"
        continue
    fi
    dotnet "$bench" "$dir/$1-$2" "$1" 4096 "$2" --keep
    # How much of the file was in the page cache at the end (a scan that misses it reads from disk).
    command -v fincore >/dev/null && fincore -b -n -o RES,SIZE "$dir/$1-$2/features.npy" | awk '{printf "  (resident after the run: %.0f%% of %.1f GB)\n", 100 * $1 / $2, $2 / 1e9}'
    rm -rf "$dir/$1-$2"
done
rm -rf "$dir"
