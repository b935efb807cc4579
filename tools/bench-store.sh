#!/bin/sh
# Feature-store query latency on synthetic stores (k = 4096): float32 and float16, 60,000 and 1,000,000 rows, next to a plain
# sequential SIMD read of the same bytes; "int8" configs also write the store's 8-bit copy and time the scan through it (with its
# exact re-rank) next to a read of the int8 bytes. Each config runs under /usr/bin/time -v for the peak resident memory.
# Prints a markdown table; the synthetic stores are deleted after each config.
# Usage: tools/bench-store.sh [dir]   (default /tmp/storebench; needs ~16 GB free disk and page cache for the largest store)
#   BENCH=... to skip the build; CONFIGS="1000000 float16 int8;60000 float16 int8" to choose configs (';'-separated), RUNS=2 to time each config twice.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-/tmp/storebench}
mkdir -p "$dir"
artifacts=${ARTIFACTS:-/tmp/art-store}
# BENCH=path/to/OnnxAttribution.StoreBench.dll runs a build made already (no second copy of the build on a full disk).
bench=${BENCH:-}
if [ -z "$bench" ]; then
    dotnet build -c Release --artifacts-path "$artifacts" "$root/tools/OnnxAttribution.StoreBench" >/dev/null
    bench="$artifacts/bin/OnnxAttribution.StoreBench/release/OnnxAttribution.StoreBench.dll"
fi
echo "load average before: $(cut -d" " -f1-3 /proc/loadavg)"
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB"
echo
echo "| store | dtype | data GB | sequential read, ms | 1 query: p50 / p99 ms | runs | batch of 64: p50 / p99 ms | runs |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
configs=${CONFIGS:-60000 float32;60000 float16;60000 float16 int8;1000000 float16;1000000 float16 int8;1000000 float32}
runs=${RUNS:-1}
echo "$configs" | tr ';' '\n' | while read -r config; do
    set -- $config
    bytes=$(if [ "$2" = float32 ]; then echo 4; else echo 2; fi)
    need_gb=$(( $1 * 4096 * bytes / 1000000000 + 1 ))
    int8=""
    if [ "${3:-}" = int8 ]; then int8=--int8; need_gb=$(( need_gb + $1 * 4096 / 1000000000 )); fi
    avail_gb=$(awk '/MemAvailable/ {print int($2 / 1048576)}' /proc/meminfo)
    if [ "$need_gb" -ge "$avail_gb" ]; then
        echo "| $1 × 4096 | $2 | $need_gb | skipped: needs $need_gb GB of page cache, $avail_gb GiB available | | | | |"
        continue
    fi
    run=1
    while [ "$run" -le "$runs" ]; do
        echo "  (run $run of $runs; load average before: $(cut -d" " -f1-3 /proc/loadavg))"
        /usr/bin/time -v -o "$dir/time.txt" dotnet "$bench" "$dir/$1-$2" "$1" 4096 "$2" --keep $int8
        echo "  (peak RSS of the process: $(awk -F': ' '/Maximum resident set size/ {printf "%.0f MB", $2 / 1024}' "$dir/time.txt"))"
        run=$(( run + 1 ))
    done
    # How much of the file was in the page cache at the end (a scan that misses it reads from disk).
    for f in features.npy features.i8.npy; do
        [ -f "$dir/$1-$2/$f" ] && command -v fincore >/dev/null && fincore -b -n -o RES,SIZE "$dir/$1-$2/$f" |
            awk -v f="$f" '{printf "  (%s resident after the runs: %.0f%% of %.1f GB)\n", f, 100 * $1 / $2, $2 / 1e9}'
    done
    rm -rf "$dir/$1-$2"
done
rm -rf "$dir"
