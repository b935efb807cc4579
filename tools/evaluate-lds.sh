#!/usr/bin/env bash
# The LDS table of docs/guides/evaluate.md, on the papers' protocol: N = 1000 embedded 16×16 images, a reference model (5 checkpoints kept for
# TracIn/ReTrac) and M = 64 subset models (α = 0.5) each trained with S = 3 seeds, all with the fast recipe; a 32-member
# encoded ensemble trained with the same recipe; Q = 50 generated test queries (seeds 0 … 49) and V = 20 validation
# queries (seeds 2^32 + 0 … 19) on which every method's damping is chosen from 1e-6 … 1000 before the test queries are
# scored once; the noise ceiling from the 3 seeds; every method.
# Resumable: rerun after a kill and it continues (each trained model, measured loss, store and score file is saved once;
# a run with smaller M or S continues to larger ones, reusing its models). An eval/lds folder from before --subset-seeds
# keeps its 64 models as seed 0; its reference kept only 3 checkpoints, so for tracin/retrac move eval/lds/reference,
# eval/lds/reference-run and eval/lds/stores aside first (the command says so).
# Cost: about 3 × 64 + 33 trainings of ~33 s on 2 idle cores (~2 h), then the builds and the damping sweeps (each λ one
# Cholesky factorisation of the k × k kernel and one scoring of the 20 validation queries per method); still to be measured.
# The results are copied to docs/results (lds*.json, lds*.md, lds-curves.png): docs/guides/evaluate.md's LDS table is that lds.md
# ('onnx-attribution lds --report-only --out docs/results' writes it again from the JSON).
# Then the curves of the settings that matter (item 4 of the quality issue): R = 3 reference models with their scores
# averaged, K = 30 timesteps, 3 noise draws per timestep, each its own setting point (--point) sharing the models and
# measured losses, then K = 100 and k = 16384, 32768; 'lds-curves' tabulates every point and plots LDS against
# build cost (lds-curves.md/.png).
# Extra arguments go to every 'lds'. METHODS=trak,d-trak scores fewer methods (the ensemble is trained only when
# listed); SUBSET_MODELS and SUBSET_SEEDS set M and S (a smaller run continues to larger ones); CURVES=0 skips the curves,
# CURVE_METHODS sets their methods.
set -euo pipefail
cd "$(dirname "$0")/.."
# glibc maps and unmaps the big activations every step; these cut training time ~2x here (docs/design.md, Platform notes).
export MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=268435456
dotnet build src/OnnxAttribution.Cli -c Release -v q -nologo -o out/cli
cli=out/cli/onnx-attribution
recipe=(--steps 1500 --batch-size 32 --lr 2e-3 --ema 0.995 --base-channels 16)
methods=${METHODS:-trak,d-trak,journey-trak,tracin,retrac,das,kfac,ekfac,ensemble,pixel,gradient-cosine,random}
ensemble=()
if [[ ",$methods," == *,ensemble,* ]]; then
    "$cli" train-ensemble --data embedded --subset 0:1000 --members 32 --groups 1000 "${recipe[@]}" --seed 100 --encoding-seed 1 \
        --out eval/ensemble-e32
    ensemble=(--ensemble eval/ensemble-e32)
fi
common=(--data embedded --subset 0:1000 --subset-models "${SUBSET_MODELS:-64}" --subset-seeds "${SUBSET_SEEDS:-3}" \
    --alpha 0.5 --queries 50 --validation-queries 20 --damping-grid 1e-6,1e-5,1e-4,1e-3,1e-2,1e-1,1,10,100,1000 "${recipe[@]}" --seed 0 \
    --measure-timesteps 100 --measure-draws 3 --damping 1e-3 --out eval/lds)
# The main table: every method at K = 10 timesteps x 1 noise draw, k = 4096, one reference model.
"$cli" lds "${common[@]}" --timesteps 10 --dim 4096 "${ensemble[@]}" --methods "$methods" "$@"
# The curves' other points (CURVES=0 skips them), each sharing the models and measured losses above:
# R = 3 reference models, scores averaged (lds-R3.json); K = 30 timesteps (lds-K30.json), and with R = 3 (lds-K30-R3.json);
# 3 noise draws per timestep (lds-K10x3.json).
if [[ "${CURVES:-1}" != 0 ]]; then
    "$cli" lds "${common[@]}" --timesteps 10 --dim 4096 --reference-models 3 --methods "${CURVE_METHODS:-trak,d-trak,das}" "$@"
    "$cli" lds "${common[@]}" --point K30 --timesteps 30 --dim 4096 --methods "${CURVE_METHODS:-d-trak,das}" "$@"
    "$cli" lds "${common[@]}" --point K30 --timesteps 30 --dim 4096 --reference-models 3 --methods "${CURVE_METHODS:-d-trak}" "$@"
    "$cli" lds "${common[@]}" --point K10x3 --timesteps 10 --noise-draws 3 --dim 4096 --methods "${CURVE_METHODS:-d-trak,das}" "$@"
    # K = 100 timesteps (lds-K100.json); k = 16384 and 32768 (dense; finalized in the dual N × N form, which makes each λ of
    # the sweep one 1000 × 1000 factorisation instead of a k × k one).
    "$cli" lds "${common[@]}" --point K100 --timesteps 100 --dim 4096 --methods "${CURVE_METHODS:-d-trak,das}" "$@"
    "$cli" lds "${common[@]}" --point k16384 --timesteps 10 --dim 16384 --methods "${CURVE_METHODS:-d-trak,das}" "$@"
    "$cli" lds "${common[@]}" --point k32768 --timesteps 10 --dim 32768 --methods "${CURVE_METHODS:-d-trak,das}" "$@"
    # The factored projector (per-layer Kronecker, k = layers × side² ≤ 4096) instead of the dense one (lds-factored.json).
    "$cli" lds "${common[@]}" --point factored --timesteps 10 --dim 4096 --projector factored --methods d-trak "$@"
    "$cli" lds-curves --out eval/lds
fi
mkdir -p docs/results
cp eval/lds/lds*.json eval/lds/lds*.md docs/results/
[[ -f eval/lds/lds-curves.png ]] && cp eval/lds/lds-curves.png docs/results/
