#!/usr/bin/env bash
# The GPU machine's checks and benchmarks (tools/OnnxAttribution.GpuCheck), in two halves:
#
#   bash tools/gpu-check.sh prepare [DIR]    here: publishes GpuCheck self-contained for linux-x64 against ONNX Runtime's
#                                            CUDA package (-p:OrtFlavor=cuda), packs it as xz and splits it into parts of
#                                            at most 48 MB under DIR (default out/gpu-payload): the GPU machine has no .NET
#                                            and no network, and each call to it carries at most 64 MiB.
#   bash tools/gpu-check.sh run PARTS [ARGS] there: joins and unpacks the parts found in the folder PARTS, puts CUDA 13
#                                            and cuDNN 9 from Python's nvidia packages on LD_LIBRARY_PATH, and runs the
#                                            checks on models/fm16; the JSON and the log go to $OUT (or out/gpu-check).
#                                            ARGS go to GpuCheck (e.g. --device cpu --rows 20000 to try it without a GPU).
#
# The GPU machine keeps files between calls while it is warm (about 30 s): copy the parts to one folder there in
# back-to-back calls (each carrying one part), then call 'run' on that folder. See docs/guides/gpu.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

case "${1:-}" in
prepare)
    dir=${2:-out/gpu-payload}
    publish=$(mktemp -d)
    dotnet publish tools/OnnxAttribution.GpuCheck -c Release -r linux-x64 --self-contained -p:OrtFlavor=cuda -o "$publish/app" >/dev/null
    rm -rf "$dir" && mkdir -p "$dir"
    echo "published: $(du -sh "$publish/app" | cut -f1); packing with xz (a few minutes on 2 cores)"
    tar -C "$publish" -cf - app | xz -T0 -6 | split -b 48M -d - "$dir/part-"
    rm -rf "$publish"
    (cd "$dir" && sha256sum part-* > SHA256SUMS)
    ls -l "$dir"
    ;;
run)
    parts=${2:?usage: bash tools/gpu-check.sh run PARTS [ARGS]}
    shift 2
    out=${OUT:-out/gpu-check}
    mkdir -p "$out"
    app=$(mktemp -d)
    (cd "$parts" && if [ -f SHA256SUMS ]; then sha256sum -c --quiet SHA256SUMS; fi)
    cat "$parts"/part-* | xz -dc | tar -C "$app" -xf -
    # CUDA 13 and cuDNN 9 as the GPU machine has them: inside Python's nvidia-* packages, one lib folder each.
    libs=$(python3 -c 'import glob, site; print(":".join(sorted({d for p in site.getsitepackages() for d in glob.glob(p + "/nvidia/*/lib")})))' 2>/dev/null || true)
    if [ -z "$libs" ]; then libs=$(find / -xdev -type d -path '*site-packages/nvidia/*/lib' 2>/dev/null | sort -u | paste -sd: -); fi
    export LD_LIBRARY_PATH="${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    (command -v nvidia-smi >/dev/null && nvidia-smi || echo "nvidia-smi: not found") > "$out/nvidia-smi.txt" 2>&1
    echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH" > "$out/environment.txt"
    set +e
    "$app/app/OnnxAttribution.GpuCheck" models/fm16 "$app/work" --json "$out/gpu-check.json" "$@" 2>&1 | tee "$out/gpu-check.log"
    status=${PIPESTATUS[0]}
    rm -rf "$app"
    exit "$status"
    ;;
*)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
