#!/usr/bin/env bash
# The main job end to end on the embedded default (the shipped model models/fm16 and the shipped
# 16×16 Fashion-MNIST subset): generate an image, attribute it to training images, write the top-k grid
# and scores. Everything lands in out/demo/. Rerunning reuses finished work (the feature store resumes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build src/OnnxAttribution.Cli -c Release -v q -nologo -o out/cli
cli=out/cli/onnx-attribution
out=out/demo
mkdir -p "$out"

echo "== generate: 16 samples from models/fm16, and seed 7 with its trajectory"
"$cli" generate --model models/fm16 --seed 0 --count 16 --steps 50 --out "$out/samples.png"
"$cli" generate --model models/fm16 --seed 7 --steps 50 --out "$out/sample-seed7.png" --trajectory "$out/sample-seed7.traj"
echo "wrote $out/samples.png, $out/sample-seed7.png, $out/sample-seed7.traj"

store="$out/store-dtrak"
echo "== featurize: D-TRAK features (squared output norm, 10 timesteps, dense k = 2048) of the first 1000 embedded training images"
"$cli" featurize --model models/fm16 --data embedded --subset 0:1000 --method d-trak --timesteps 10 \
    --projector dense --dim 2048 --out "$store"
"$cli" finalize --store "$store"      # λ: D-TRAK's default, chosen on the LDS validation queries

echo "== attribute: seeds 0..5 against the store, top 10 each"
"$cli" attribute --store "$store" --seed 0 --count 6 --top 10 --out "$out/attribution.png" --json > "$out/attribution.json"
"$cli" attribute --store "$store" --seed 7 --top 16 --out "$out/attribution-seed7.png"
echo "wrote $out/attribution.png (each row: a generated query, then its top-10 training images with scores),"
echo "      $out/attribution.json (the rankings), $out/attribution-seed7.png"
