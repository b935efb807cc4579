#!/usr/bin/env bash
# The 35.7M-parameter DDPM CIFAR-10 U-Net (Ho et al. 2020) exported by PyTorch, end to end at real size: export (random
# weights, 1 channel at 32×32 so the Fashion-MNIST package's images feed it), import, the autograd oracle, the operation
# count, featurize (factored and dense, k = 4096, ROWS rows × TIMESTEPS timesteps), finalize, attribute, and the HTTP
# server answering PNG queries. Prints wall time and peak RSS (/usr/bin/time's maximum resident set) for each step, the
# steady featurization rate (example×timesteps/s, from the store's timing without the set-up) and the share of the FMA
# peak by operation count. Needs python3-torch (scripts/setup.sh --torch) and the dataset-fashion-mnist package.
# Usage: bash tools/torch-models/real-size.sh [out-folder]   (ROWS=32 TIMESTEPS=2 DIM=4096 DENSE=1 PEAK_GFLOPS=418 PORT=5083)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-out/real-size}
rows=${ROWS:-32}
timesteps=${TIMESTEPS:-2}
dim=${DIM:-4096}
peak=${PEAK_GFLOPS:-418}
port=${PORT:-5083}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
mkdir -p "$out"
dotnet build src/OnnxAttribution.Cli -c Release -v q -nologo -o out/cli >/dev/null
dotnet build src/OnnxAttribution.Server -c Release -v q -nologo -o out/server >/dev/null
cli="out/cli/onnx-attribution"
timed() { # name, command...: runs it, keeps its output in $out/name.log, prints wall and peak RSS
    local name=$1; shift
    /usr/bin/time -f "%e %M" -o "$out/$name.time" "$@" >"$out/$name.log" 2>&1 || { cat "$out/$name.log" >&2; exit 1; }
    read -r wall kb <"$out/$name.time"
    printf '%-34s %8.1f s  %6.2f GB peak RSS\n' "$name" "$wall" "$(echo "$kb / 1048576" | bc -l)"
}
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $rows rows × $timesteps timesteps, k = $dim"
[ -f "$out/torch/model.onnx" ] || timed "export (PyTorch, opset 17)" /usr/bin/python3 tools/torch-models/export.py --model ddpm_unet --width full \
    --opset 17 --channels 1 --size 32 --threads 2 --out "$out/torch"
rm -rf "$out/model" "$out/store-factored" "$out/store-dense"
timed import "$cli" import --onnx "$out/torch/model.onnx" --out "$out/model"
timed "check-gradients --reference" "$cli" check-gradients --model "$out/model" --reference "$out/torch/oracle"
grep -E "PASSED|FAILED" "$out/check-gradients --reference.log"
"$cli" inspect --model "$out/model" --json >"$out/flops.json"
"$cli" inspect --model "$out/model" | sed -n '2,4p'
share() { # store log, FLOP field: the steady rate and its share of the peak
    local rate
    rate=$(grep -o '[0-9.]* example×timesteps/s' "$out/$1.log" | tail -1 | cut -d' ' -f1)
    python3 -c "import json, sys; f = json.load(open(sys.argv[1]))[sys.argv[2]]['multiplyAddFlops']; r = float(sys.argv[3]); p = float(sys.argv[4]);
print(f'  steady {r} example×timesteps/s; {f / 1e9:.2f} GFLOP each (gradient graph) -> {r * f / 1e9:.0f} GFLOP/s, {100 * r * f / 1e9 / p:.0f}% of {p:.0f} GFLOP/s')" \
        "$out/flops.json" "$2" "$rate" "$peak"
}
timed "featurize factored" "$cli" featurize --model "$out/model" --data fashion-mnist --subset "0:$rows" --method d-trak --timesteps "$timesteps" \
    --projector factored --dim "$dim" --out "$out/store-factored"
share "featurize factored" vjpFactored
if [ "${DENSE:-1}" = 1 ]; then
    timed "featurize dense" "$cli" featurize --model "$out/model" --data fashion-mnist --subset "0:$rows" --method d-trak --timesteps "$timesteps" \
        --projector dense --dim "$dim" --out "$out/store-dense"
    share "featurize dense" vjpDense
fi
timed finalize "$cli" finalize --store "$out/store-factored"
timed "attribute (seed, 50 steps)" "$cli" attribute --store "$out/store-factored" --seed 3 --steps 50 --top 8 --out "$out/grid.png"

out/server/onnx-attribution-server --store "real=$out/store-factored" --urls "http://127.0.0.1:$port" >"$out/server.log" 2>&1 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    kill -0 "$server" 2>/dev/null || { cat "$out/server.log" >&2; exit 1; }
    sleep 0.2
done
: >"$out/server-times"
for _ in $(seq 1 10); do
    curl -sf -X POST "http://127.0.0.1:$port/stores/real/attribute?top=8" -H 'Content-Type: image/png' --data-binary "@$out/grid-query.png" \
        -o "$out/answer.json" -w '%{time_total}\n' >>"$out/server-times"
done
echo "server: 10 PNG queries, median $(sort -n "$out/server-times" | sed -n 5p) s; peak RSS $(grep VmHWM /proc/$server/status | awk '{printf "%.2f GB", $2 / 1048576}')"
