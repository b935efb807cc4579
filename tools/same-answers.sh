#!/usr/bin/env bash
# Checks that a change leaves every answer as it was: builds the CLI of revision REV (default HEAD) and of the working
# tree, builds small stores of the shipped model (rows 0:300 of the embedded data) with REV's CLI for d-trak, trak, das,
# kfac, gradient-cosine, pixel and journey-trak, then has both CLIs attribute three generated queries and one PNG
# against each store and a d-trak + das + kfac combination, and compares the grid PNGs, journey pictures and the
# --json rankings byte for byte (timings and output paths left out). TracIn/ReTrac need training checkpoints
# (tools/make-fm16-checkpoints.sh) and are left out. Exit 0 when every file is the same, 1 otherwise (naming them).
# Usage: bash tools/same-answers.sh [REV]; everything lands in out/same-answers/ (stores are reused by a rerun for the same REV).
set -euo pipefail
cd "$(dirname "$0")/.."
rev=$(git rev-parse --short "${1:-HEAD}")
work=$PWD/out/same-answers
mkdir -p "$work"
if [ ! -d "$work/src-$rev" ]; then
    git worktree add --detach "$work/src-$rev" "$rev" >/dev/null
fi
echo "== building the CLI of $rev and of the working tree"
dotnet build "$work/src-$rev/src/OnnxAttribution.Cli" -c Release -v q -nologo -o "$work/cli-$rev" | grep -E " error " || true
dotnet build src/OnnxAttribution.Cli -c Release -v q -nologo -o "$work/cli-now" | grep -E " error " || true
old=$work/cli-$rev/onnx-attribution
stores=$work/stores-$rev
methods=(d-trak trak das kfac gradient-cosine pixel journey-trak)
mkdir -p "$stores"
echo "== stores (built with $rev's CLI)"
for m in "${methods[@]}"; do
    [ -f "$stores/$m.done" ] && continue
    case $m in
        d-trak|trak) "$old" featurize --model models/fm16 --data embedded --subset 0:300 --method "$m" --timesteps 4 --projector dense --dim 512 --out "$stores/$m" >/dev/null
                     "$old" finalize --store "$stores/$m" >/dev/null ;;
        pixel|journey-trak) "$old" featurize --model models/fm16 --data embedded --subset 0:300 --method "$m" --out "$stores/$m" >/dev/null ;;
        *) "$old" featurize --model models/fm16 --data embedded --subset 0:300 --method "$m" --timesteps 4 --dim 512 --out "$stores/$m" >/dev/null ;;
    esac
    touch "$stores/$m.done"
done
# The answers of one CLI into a folder: grids, query PNGs, journeys, rankings without timings and paths, exit codes.
answers() {
    local cli=$1/onnx-attribution o=$2
    rm -rf "$o" && mkdir -p "$o"
    for m in "${methods[@]}"; do
        "$cli" attribute --store "$stores/$m" --seed 3 --count 3 --top 12 --out "$o/$m.png" --json > "$o/$m.raw" 2>/dev/null; echo "$m $?" >> "$o/exit-codes"
        "$cli" attribute --store "$stores/$m" --image "$work/query.png" --top 5 --out "$o/$m-image.png" --json > "$o/$m-image.raw" 2>/dev/null; echo "$m image $?" >> "$o/exit-codes"
    done
    "$cli" attribute --store "$stores/d-trak" --combine-with "$stores/das,$stores/kfac" --seed 1 --count 2 --top 120 --out "$o/combination.png" --json \
        > "$o/combination.raw" 2>/dev/null; echo "combination $?" >> "$o/exit-codes"
    for raw in "$o"/*.raw; do
        python3 -c 'import json,sys,re
d=json.load(open(sys.argv[1]))
for k in ("generateSeconds","attributeSeconds","png","queryPng"): d.pop(k,None)
for j in d.get("journeys") or []: j["png"]=j["png"].rsplit("/",1)[-1]
print(json.dumps(d,indent=1,sort_keys=True))' "$raw" > "${raw%.raw}.json" && rm "$raw"
    done
}
"$old" generate --model models/fm16 --seed 11 --steps 20 --out "$work/query.png" >/dev/null
echo "== answers of $rev and of the working tree"
answers "$work/cli-$rev" "$work/answers-$rev"
answers "$work/cli-now" "$work/answers-now"
same=0; different=()
for f in "$work/answers-$rev"/*; do
    if cmp -s "$f" "$work/answers-now/$(basename "$f")"; then same=$((same + 1)); else different+=("$(basename "$f")"); fi
done
[ "$(ls "$work/answers-$rev" | wc -l)" = "$(ls "$work/answers-now" | wc -l)" ] || different+=("(the file lists differ)")
echo "same: $same files; different: ${#different[@]}${different:+ (${different[*]})}"
[ ${#different[@]} -eq 0 ]
