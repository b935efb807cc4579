#!/usr/bin/env bash
# Latency of one image query over HTTP: starts the server on the demo store (bash scripts/demo.sh makes it), sends
# warm-up requests, then N sequential POSTs of one PNG (curl, one process per request) and prints p50 / p99 of curl's
# time_total, next to the server's own scoreMs and its stages (decode, features, solve, scan); then the same N requests from CLIENTS concurrent clients (the server
# scores the requests queued for a store in one batch), with the throughput of both. Then a bounded load test
# (LOAD_SECONDS > 0): LOAD_CLIENTS clients for LOAD_SECONDS, every SEED_EVERY-th of them sending expensive seed requests
# (SEEDS seeds × SEED_STEPS DDPM steps, within the server's default --max-seed-steps), the others the cheap PNG query;
# it prints the answers by kind and status (5xx counted apart), the cheap queries' p99 against the unloaded p99 of the
# sequential run, and the server's peak RSS (VmHWM). Stops the server it started.
# Usage: bash tools/bench-server.sh [requests] [store] [png]
#        (defaults: 200, out/demo/store-dtrak, out/demo/sample-seed7.png; PORT=5081 TOP=10 THREADS=0 WARMUP=10 CLIENTS=8
#         LOAD_SECONDS=60 LOAD_CLIENTS=32 SEED_EVERY=8 SEEDS=16 SEED_STEPS=64; LOAD_SECONDS=0 skips the load test;
#         SERVER_ARGS="--max-wait-ms 300" passes settings to the server)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}
store=${2:-out/demo/store-dtrak}
png=${3:-out/demo/sample-seed7.png}
port=${PORT:-5081}
top=${TOP:-10}
warmup=${WARMUP:-10}
for f in "$store/meta.json" "$png"; do
    [ -f "$f" ] || { echo "missing $f: run 'bash scripts/demo.sh' first (or pass a store and a PNG)" >&2; exit 2; }
done
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build src/OnnxAttribution.Server -c Release -v q -nologo -o out/server >/dev/null

work=$(mktemp -d)
out/server/onnx-attribution-server --store "bench=$store" --urls "http://127.0.0.1:$port" --threads "${THREADS:-0}" ${SERVER_ARGS:-} >"$work/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
    sleep 0.2
done
url="http://127.0.0.1:$port/stores/bench/attribute?top=$top"
# One query; a 429 (the store is busy: more work ahead than --max-wait-ms) is waited out for its Retry-After and sent
# again, each refusal counted in $work/refused; the time printed is the answered request's.
query() {
    local r
    while :; do
        r=$(curl -s -X POST "$url" -H 'Content-Type: image/png' --data-binary "@$png" -o "${1:-$work/body.json}" -w '%{http_code} %{time_total}')
        case "$r" in
            200\ *) echo "${r#* }"; return 0 ;;
            429\ *) echo x >>"$work/refused"; sleep 1 ;;
            *) echo "query failed: HTTP $r" >&2; return 1 ;;
        esac
    done
}
first=$(query)   # the first client after start: the server warmed its store up before listening
for _ in $(seq 2 "$warmup"); do query >/dev/null; done

echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
grep -m1 "store 'bench'" "$work/server.log" | sed 's/^ *//'
echo "first request after start: $(awk -v t="$first" 'BEGIN {printf "%.1f", t * 1000}') ms"
: >"$work/times"
: >"$work/score"
start=$(date +%s.%N)
for _ in $(seq 1 "$n"); do
    query >>"$work/times"
    grep -o '"scoreMs":[0-9.]*' "$work/body.json" | cut -d: -f2 >>"$work/score"
    grep -o '"generateMs":[0-9.]*' "$work/body.json" | cut -d: -f2 >>"$work/stage-decode"
    for stage in features solve scan; do
        grep -o "\"$stage\":[0-9.]*" "$work/body.json" | cut -d: -f2 >>"$work/stage-$stage" || true
    done
done
sequential_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')

# The same requests from CLIENTS clients at once: each answer says how many requests shared its scan.
clients=${CLIENTS:-8}
export -f query
export url png work
mkdir -p "$work/concurrent"
start=$(date +%s.%N)
seq 1 "$n" | xargs -P "$clients" -I{} bash -c 'query "$work/concurrent/{}.json" >"$work/concurrent/{}.time"'
concurrent_s=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')
cat "$work"/concurrent/*.time >"$work/ctimes"
grep -ho '"batchedRequests":[0-9]*' "$work"/concurrent/*.json | cut -d: -f2 >"$work/batches"

pct() { sort -g "$1" | awk -v p="$2" '{v[NR] = $1} END {i = int(NR * p + 0.999999); if (i < 1) i = 1; print v[i]}'; }
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "top row of the last answer: $(sed -n 's/.*"top":\[{"rank":1,"index":\([0-9]*\).*/\1/p' "$work/body.json")"
awk -v p50="$(pct "$work/times" 0.5)" -v p99="$(pct "$work/times" 0.99)" -v s50="$(pct "$work/score" 0.5)" -v s99="$(pct "$work/score" 0.99)" \
    -v n="$n" -v png="$png" -v top="$top" 'BEGIN {
    printf "%d sequential requests of %s (top=%d): curl time_total p50 %.1f ms, p99 %.1f ms; server scoreMs p50 %.1f ms, p99 %.1f ms\n", n, png, top, p50 * 1000, p99 * 1000, s50, s99 }'
# Where the scorer's time went (timings.stagesMs of TRAK-family stores): p50 of each stage.
if [ -s "$work/stage-features" ]; then
    echo "server stages p50: decode $(pct "$work/stage-decode" 0.5) ms, features $(pct "$work/stage-features" 0.5) ms, solve $(pct "$work/stage-solve" 0.5) ms," \
        "scan with top-k $(pct "$work/stage-scan" 0.5) ms; HTTP and the rest: curl time_total less these"
fi
awk -v p50="$(pct "$work/ctimes" 0.5)" -v p99="$(pct "$work/ctimes" 0.99)" -v n="$n" -v c="$clients" -v seq="$sequential_s" -v conc="$concurrent_s" \
    -v refused="$(cat "$work/refused" 2>/dev/null | wc -l)" -v mean_batch="$(awk '{s += 1 / $1} END {printf "%.1f", NR / s}' "$work/batches")" 'BEGIN {
    printf "%d requests from %d concurrent clients: curl time_total p50 %.1f ms, p99 %.1f ms (answered requests; %d refusals with 429 waited out); mean requests per scan %s\n", n, c, p50 * 1000, p99 * 1000, refused, mean_batch
    printf "throughput: %.1f requests/s sequential (%.1f s), %.1f requests/s with %d clients (%.1f s): %.1fx\n", n / seq, seq, n / conc, c, conc, seq / conc }'

# The bounded load test: cheap image queries from most clients, expensive seed requests from every SEED_EVERY-th.
load_s=${LOAD_SECONDS:-60}
if [ "$load_s" -gt 0 ]; then
    lclients=${LOAD_CLIENTS:-32}
    every=${SEED_EVERY:-8}
    seedbody="{\"seeds\":[$(seq -s, 1 "${SEEDS:-16}")],\"sampler\":\"ddpm\",\"steps\":${SEED_STEPS:-64}}"
    mkdir -p "$work/load"
    end=$(($(date +%s) + load_s))
    # One client: requests back to back until the end; a 503 or 429 is waited out for its Retry-After (1 s).
    client() {
        local kind=cheap r
        [ $(($1 % every)) -eq 0 ] && kind=seed
        while [ "$(date +%s)" -lt "$end" ]; do
            if [ "$kind" = cheap ]; then
                r=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -X POST "$url" -H 'Content-Type: image/png' --data-binary "@$png" || echo "000 0")
            else
                r=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -X POST "$url" -H 'Content-Type: application/json' -d "$seedbody" || echo "000 0")
            fi
            echo "$kind $r"
            case "$r" in 503* | 429*) sleep 1 ;; esac
        done >"$work/load/$1"
    }
    export -f client
    export end every seedbody
    echo "load: $lclients clients for $load_s s, one in $every sending $seedbody, the others the PNG; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    seq 1 "$lclients" | xargs -P "$lclients" -I{} bash -c 'client {}'
    peak_kb=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
    cat "$work"/load/* >"$work/answers"
    awk '$1 == "cheap" && $2 == 200 {print $3}' "$work/answers" >"$work/cheap"
    echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
    awk '{n[$1 " " $2]++} END {for (k in n) printf "  %s: %d\n", k, n[k]}' "$work/answers" | sort
    awk '$2 >= 500 && $2 != 503 {f++} $2 == 503 {q++} $2 == 429 {b++} $2 == "000" {c++} END {
        printf "5xx: %d (503 draining: %d; other 5xx: %d); 429 busy (refused at once, retried after 1 s): %d; no answer (curl failed): %d\n", f + q, q, f, b + 0, c }' "$work/answers"
    if [ -s "$work/cheap" ]; then
        awk -v loaded="$(pct "$work/cheap" 0.99)" -v p50="$(pct "$work/cheap" 0.5)" -v idle="$(pct "$work/times" 0.99)" 'BEGIN {
            printf "cheap queries under load: p50 %.1f ms, p99 %.1f ms; unloaded p99 (sequential run above) %.1f ms: %.2fx\n", p50 * 1000, loaded * 1000, idle * 1000, loaded / idle }'
    fi
    echo "server peak RSS (VmHWM): $((peak_kb / 1024)) MiB"
    curl -sf "http://127.0.0.1:$port/metrics" | grep -E '^oa_queue_rejected_total|^oa_store_batch_requests_(sum|count)' || true
fi
