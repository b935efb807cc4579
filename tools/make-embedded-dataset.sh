#!/bin/sh
# Rebuilds models/data/fashion-mnist-16 (the embedded demo dataset) from the Debian package dataset-fashion-mnist.
# Usage: tools/make-embedded-dataset.sh [count] [size]     (defaults: 4000 16)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
count=${1:-4000}
size=${2:-16}
src=/usr/share/datasets/fashion-mnist
if [ ! -f "$src/train-images-idx3-ubyte.gz" ]; then
    echo "Fashion-MNIST not found in $src: run 'sudo apt-get install dataset-fashion-mnist'" >&2
    exit 1
fi
version=$(dpkg-query -W -f='${Version}' dataset-fashion-mnist 2>/dev/null || echo unknown)
dotnet run --project "$root/tools/MakeEmbeddedDataset" --artifacts-path "${ARTIFACTS:-/tmp/art-make-embedded}" -- \
    "$src" "$root/models/data/fashion-mnist-$size" "$count" "$size" "$version"
