#!/usr/bin/env bash
# The engine side by side with the peers' D-TRAK recipe (functorch vmap(grad) + TRAK's chunked ±1 projection, PyTorch on
# this CPU; tools/peer-bench/peer.py), issue 27 part 1. In one run:
#   1. agreement: check-gradients --reference on the peer's vmap(grad) gradients at fixed (x_t, t) (fm16, t = 0, 100, 500, 999),
#      and the engine's dense features against the peer's unprojected averaged gradients (squared norms, 3 projection seeds);
#   2. fm16, ROWS rows × TIMESTEPS timesteps, k = DIM: engine featurize dense and factored, the peer, each under /usr/bin/time,
#      example×timesteps/s (steady and whole process) and the ratio engine/peer;
#   3. rankings: 16 generated queries (generate --seed 0..15, PNGs), top-10 from the engine's dense store vs the peer's own
#      TRAK scores (same relative damping as finalize's d-trak default), and two engine stores with different projection seeds;
#   4. (REAL=1) the 35.7M-parameter DDPM U-Net of tools/torch-models (random weights, export.py + import as real-size.sh does):
#      engine dense and factored vs the peer on REAL_ROWS rows × TIMESTEPS timesteps.
# Usage: bash tools/peer-bench/run.sh [out-folder]
#   (ROWS=128 TIMESTEPS=10 DIM=4096 PEER_BATCH=64 QUERIES=16 REAL=1 REAL_ROWS=4 REAL_PEER_BATCH=ROWS REAL_BLOCK=32 REAL_BUDGET=120
#    SKIP_CHECKS=0 FM16=1). The peer's projection at 35.7M (p·k = 1.5e11 signs a batch) is timed for REAL_BUDGET s and extrapolated
#    (every block is the same work); REAL_BLOCK = 32 columns keep its block at 4.6 GB (TRAK's default 100 would take 14.3 GB).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-out/peer-bench}
rows=${ROWS:-128}
ts=${TIMESTEPS:-10}
dim=${DIM:-4096}
peer_batch=${PEER_BATCH:-64}
queries=${QUERIES:-16}
real_rows=${REAL_ROWS:-4}
py=/usr/bin/python3
peer="$py tools/peer-bench/peer.py"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
mkdir -p "$out"
dotnet build src/OnnxAttribution.Cli -c Release -v q -nologo -o out/cli >/dev/null
cli=out/cli/onnx-attribution
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u '+%F %H:%M UTC')"
echo "torch $($py -c 'import torch; print(torch.__version__)'), 2 threads; engine: featurize's default 2 streams × 1 ONNX Runtime thread"

timed() { # name, command...: runs it, keeps its output in $out/name.log, leaves wall seconds in $out/name.time
    local name=$1; shift
    /usr/bin/time -f "%e %M" -o "$out/$name.time" "$@" >"$out/$name.log" 2>&1 || { cat "$out/$name.log" >&2; exit 1; }
}
wall() { # wall seconds, plus what an extrapolated peer projection did not run
    echo "$(cut -d' ' -f1 "$out/$1.time") + $(awk '/^peer-extra-seconds:/ { s = $2 } END { print s + 0 }' "$out/$1.log")" | bc -l
}
rss() { awk '{printf "%.2f", $2 / 1048576}' "$out/$1.time"; }
engine_steady() { $peer engine-rate "$out/$1.log" "$ts"; }
peer_steady() { grep -o '[0-9.]* example\*timesteps/s' "$out/$1.log" | tail -1 | cut -d' ' -f1; }
row() { # setting, engine log, peer log, examples×timesteps
    local e p ew pw
    e=$(engine_steady "$2"); p=$(peer_steady "$3")
    ew=$(echo "$4 / $(wall "$2")" | bc -l); pw=$(echo "$4 / $(wall "$3")" | bc -l)
    printf '| %s | %.3g (%.3g whole, %s GB) | %.3g (%.3g whole, %s GB) | **%.1f×** (%.1f× whole) |\n' "$1" "$e" "$ew" "$(rss "$2")" "$p" "$pw" "$(rss "$3")" \
        "$(echo "$e / $p" | bc -l)" "$(echo "$ew / $pw" | bc -l)"
}

if [ "${SKIP_CHECKS:-0}" != 1 ]; then
    echo "== agreement: the peer's vmap(grad) per-example gradients vs the engine's gradient graph (check-gradients --reference)"
    for t in 0 100 500 999; do
        $peer reference --model models/fm16 --t "$t" --out "$out/ref-t$t" >/dev/null
        "$cli" check-gradients --model models/fm16 --reference "$out/ref-t$t" 2>&1 | grep -E "forward ε̂|PASSED|FAILED"
    done
    echo "== agreement: engine dense features (k = $dim) vs the peer's unprojected averaged gradients, 8 rows × $ts timesteps"
    $peer featurize --model models/fm16 --subset 0:8 --timesteps "$ts" --dim 0 --batch 8 --out "$out/grad8.npy" >/dev/null 2>&1
    for s in 0 1 2; do
        rm -rf "$out/jl-$s"
        "$cli" featurize --model models/fm16 --data embedded --subset 0:8 --method d-trak --timesteps "$ts" --dim "$dim" --projector dense \
            --projection-seed "$s" --out "$out/jl-$s" >/dev/null 2>&1
    done
    $py - "$out" "$dim" <<'EOF'
import sys, numpy as np
o = sys.argv[1]
g = np.load(f"{o}/grad8.npy").astype(np.float64)
n2 = (g * g).sum(1)
r = np.stack([((np.load(f"{o}/jl-{s}/features.npy").astype(np.float64) ** 2).sum(1) / n2 - 1) for s in range(3)])
print(f"  ||P^T g||^2 / ||g||^2 - 1 per projection seed (mean over rows): {', '.join(f'{v:+.4f}' for v in r.mean(1))}; "
      f"mean over seeds and rows {r.mean():+.4f} (JL noise of one seed at k = {sys.argv[2]}: sqrt(2/k) = {(2 / int(sys.argv[2])) ** 0.5:.3f})")
EOF
fi

if [ "${FM16:-1}" = 1 ]; then
echo "== fm16: $rows rows × $ts timesteps, k = $dim"
rm -rf "$out/engine-dense" "$out/engine-dense-seed1" "$out/engine-factored"
# Arrays rather than functions: /usr/bin/time runs programs.
feat=("$cli" featurize --model models/fm16 --data embedded --subset "0:$rows" --method d-trak --timesteps "$ts" --dim "$dim")
timed engine-dense "${feat[@]}" --projector dense --out "$out/engine-dense"
timed engine-factored "${feat[@]}" --projector factored --out "$out/engine-factored"
pfeat=($py tools/peer-bench/peer.py featurize --model models/fm16 --subset "0:$rows" --timesteps "$ts" --dim "$dim")
timed peer-fm16 "${pfeat[@]}" --batch "$peer_batch" --out "$out/peer-train.npy"
timed peer-fm16-random "${pfeat[@]}" --batch "$peer_batch" --signs random --out "$out/peer-train-random.npy"
timed peer-fm16-all "${pfeat[@]}" --batch "$rows" --signs random --out "$out/peer-train-all.npy"
n=$((rows * ts))
kf=$(grep -o '"dim": [0-9]*' "$out/engine-factored/meta.json" | head -1 | cut -d' ' -f2)
echo "| setting | engine ex×ts/s steady (whole process, peak RSS) | peer ex×ts/s steady (whole, RSS) | engine/peer |"
echo "| --- | ---: | ---: | ---: |"
row "fm16, dense k = $dim; peer as TRAK (bernoulli_ signs), batch $peer_batch" engine-dense peer-fm16 "$n"
row "fm16, dense k = $dim; peer with random_ signs, batch $peer_batch" engine-dense peer-fm16-random "$n"
row "fm16, dense k = $dim; peer with random_ signs, one batch of $rows" engine-dense peer-fm16-all "$n"
row "fm16, engine factored k = $kf; peer as TRAK, batch $peer_batch" engine-factored peer-fm16 "$n"
row "fm16, engine factored k = $kf; peer random_, one batch of $rows" engine-factored peer-fm16-all "$n"
for f in peer-fm16 peer-fm16-random peer-fm16-all; do echo "  $f: $(grep -h "peer:.*steady" "$out/$f.log")"; done

echo "== rankings: $queries generated queries, top-10"
"${feat[@]}" --projector dense --projection-seed 1 --out "$out/engine-dense-seed1" >/dev/null 2>&1
mkdir -p "$out/queries"
qs=()
for s in $(seq 0 $((queries - 1))); do
    "$cli" generate --model models/fm16 --seed "$s" --count 1 --scale 1 --out "$out/queries/q$s.png" >/dev/null 2>&1
    qs+=("$out/queries/q$s.png")
done
for store in engine-dense engine-dense-seed1 engine-factored; do
    "$cli" finalize --store "$out/$store" >/dev/null 2>&1
    files=()
    for s in $(seq 0 $((queries - 1))); do
        "$cli" attribute --store "$out/$store" --image "$out/queries/q$s.png" --top 10 --json --out "$out/queries/$store-$s.png" >"$out/queries/$store-$s.json" 2>/dev/null
        files+=("$out/queries/$store-$s.json")
    done
    $peer collect --out "$out/top-$store.json" "${files[@]}"
done
$peer featurize --model models/fm16 --queries "$(IFS=,; echo "${qs[*]}")" --timesteps "$ts" --dim "$dim" --batch "$peer_batch" \
    --out "$out/peer-queries.npy" >/dev/null 2>&1
$peer score --train "$out/peer-train.npy" --queries "$out/peer-queries.npy" --damping 0.1 --top 10 --out "$out/top-peer.json"
$peer overlap --a "$out/top-engine-dense.json" --b "$out/top-peer.json" --label "engine dense vs peer (different projections)"
$peer overlap --a "$out/top-engine-dense.json" --b "$out/top-engine-dense-seed1.json" --label "engine dense seed 0 vs seed 1 (projection noise alone)"
$peer overlap --a "$out/top-engine-dense-seed1.json" --b "$out/top-peer.json" --label "engine dense seed 1 vs peer"
$peer overlap --a "$out/top-engine-dense.json" --b "$out/top-engine-factored.json" --label "engine dense vs engine factored"
fi

if [ "${REAL:-1}" = 1 ]; then
    echo "== real size: DDPM U-Net (tools/torch-models, --width full, 1×32×32, random weights), $real_rows rows × $ts timesteps, k = $dim"
    rs=out/real-size
    [ -f "$rs/torch/model.onnx" ] || $py tools/torch-models/export.py --model ddpm_unet --width full --opset 17 --channels 1 --size 32 \
        --threads 2 --out "$rs/torch" >/dev/null
    [ -f "$rs/model/vjp.onnx" ] || "$cli" import --onnx "$rs/torch/model.onnx" --out "$rs/model" >/dev/null
    if [ "${SKIP_CHECKS:-0}" != 1 ]; then
        $peer reference --torch-model ddpm_unet:full --oracle "$rs/torch/oracle" --out "$out/ref-real" >/dev/null
        "$cli" check-gradients --model "$rs/model" --reference "$out/ref-real" 2>&1 | grep -E "forward ε̂|PASSED|FAILED"
    fi
    rm -rf "$out/real-dense" "$out/real-factored"
    rfeat=("$cli" featurize --model "$rs/model" --data embedded --size 32 --subset "0:$real_rows" --method d-trak --timesteps "$ts" --dim "$dim")
    timed real-engine-factored "${rfeat[@]}" --projector factored --out "$out/real-factored"
    timed real-engine-dense "${rfeat[@]}" --projector dense --out "$out/real-dense"
    budget=${REAL_BUDGET:-120}
    rpeer=($py tools/peer-bench/peer.py featurize --torch-model ddpm_unet:full --image-size 32 --subset "0:$real_rows" --timesteps "$ts" \
        --dim "$dim" --batch "${REAL_PEER_BATCH:-$real_rows}" --block "${REAL_BLOCK:-32}" --projection-budget "$budget")
    timed real-peer "${rpeer[@]}" --out "$out/real-peer.npy"
    timed real-peer-random "${rpeer[@]}" --signs random --out "$out/real-peer-random.npy"
    rn=$((real_rows * ts))
    rk=$(grep -o '"dim": [0-9]*' "$out/real-factored/meta.json" | head -1 | cut -d' ' -f2)
    echo "| setting | engine ex×ts/s steady (whole process, peak RSS) | peer ex×ts/s steady (whole, RSS) | engine/peer |"
    echo "| --- | ---: | ---: | ---: |"
    row "35.7M, dense k = $dim, $real_rows rows × $ts ts; peer as TRAK (bernoulli_)" real-engine-dense real-peer "$rn"
    row "35.7M, dense k = $dim; peer random_ signs" real-engine-dense real-peer-random "$rn"
    row "35.7M, engine factored k = $rk; peer as TRAK" real-engine-factored real-peer "$rn"
    row "35.7M, engine factored k = $rk; peer random_ signs" real-engine-factored real-peer-random "$rn"
    for f in real-peer real-peer-random; do echo "  $f: $(grep -h "peer:.*steady" "$out/$f.log")"; done
fi
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
