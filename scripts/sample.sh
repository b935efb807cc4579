#!/usr/bin/env bash
# Packs OnnxAttribution.Primitives, .Onnx, .Store, .Imaging, .Runtime and .Core and the edge tool (OnnxAttribution.Edge, a .NET tool with
# per-platform packages for linux-x64 and linux-arm64) into samples/feed, checks that every package carries the version
# set in Directory.Build.props, then builds samples/AttributeOnePng against those packages alone (samples/nuget.config:
# OnnxAttribution.* only from samples/feed; no project references) and runs it on models/fm16 with a small D-TRAK store
# it builds with the library; then installs the tool from the feed into an empty folder and runs its 'attribute' on that
# store, which must give the sample's ranking. Restores into a fresh packages folder so a package packed earlier with the
# same version is never reused. Usage: bash scripts/sample.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d /tmp/oa-sample-XXXXXX)
trap 'rm -rf "$work"' EXIT

version=$(sed -n 's:.*<Version>\(.*\)</Version>.*:\1:p' Directory.Build.props | head -1)
[ -n "$version" ] || { echo "sample: no <Version> in Directory.Build.props"; exit 1; }

feed=samples/feed
rm -rf "$feed"
for project in OnnxAttribution.Primitives OnnxAttribution.Onnx OnnxAttribution.Store OnnxAttribution.Imaging OnnxAttribution.Runtime OnnxAttribution.Core; do
  dotnet pack "src/$project" -c Release -o "$feed" --nologo -v quiet
done
dotnet pack src/OnnxAttribution.Edge -c Release -o "$feed" --nologo -v quiet

# Every package in the feed (and its symbols package) carries the one version.
status=0
for package in OnnxAttribution.Primitives OnnxAttribution.Onnx OnnxAttribution.Store OnnxAttribution.Imaging OnnxAttribution.Runtime OnnxAttribution.Core; do
  for ext in nupkg snupkg; do
    file="$feed/$package.$version.$ext"
    if [ ! -f "$file" ]; then echo "sample: $file missing (feed holds: $(ls "$feed" | tr '\n' ' '))"; status=3; fi
  done
  nuspec=$(unzip -p "$feed/$package.$version.nupkg" "$package.nuspec" 2>/dev/null || true)
  packed=$(echo "$nuspec" | sed -n 's:.*<version>\(.*\)</version>.*:\1:p' | head -1)
  if [ "$packed" != "$version" ]; then echo "sample: $package.nuspec says version '$packed', Directory.Build.props '$version'"; status=3; fi
done
# The tool: a package that points at one per platform (symbols inside the assemblies).
for package in OnnxAttribution.Edge OnnxAttribution.Edge.linux-x64 OnnxAttribution.Edge.linux-arm64; do
  [ -f "$feed/$package.$version.nupkg" ] || { echo "sample: $feed/$package.$version.nupkg missing"; status=3; }
done
others=$(ls "$feed" | grep -v -E "^OnnxAttribution\.(Primitives|Onnx|Store|Imaging|Runtime|Core)\.$version\.s?nupkg$" \
  | grep -v -E "^OnnxAttribution\.Edge(\.linux-x64|\.linux-arm64)?\.$version\.nupkg$" || true)
if [ -n "$others" ]; then echo "sample: unexpected packages in the feed: $others"; status=3; fi
[ "$status" -eq 0 ] || exit $status
echo "sample: packed OnnxAttribution.Primitives, .Onnx, .Store, .Imaging, .Runtime, .Core and the tool OnnxAttribution.Edge $version into $feed"

# A fresh packages folder for our packages; everything else is found in the usual one (read-only fallback). A copy
# of our packages there would shadow the feed, so refuse rather than test the wrong bits.
global=${NUGET_PACKAGES:-$HOME/.nuget/packages}
for package in onnxattribution.primitives onnxattribution.onnx onnxattribution.store onnxattribution.imaging onnxattribution.runtime onnxattribution.core \
    onnxattribution.edge onnxattribution.edge.linux-x64 onnxattribution.edge.linux-arm64; do
  if [ -d "$global/$package/$version" ]; then
    echo "sample: $global/$package/$version exists and would be used instead of the feed; remove it"; exit 1
  fi
done
export NUGET_PACKAGES="$work/packages"
sample=samples/AttributeOnePng
dotnet build "$sample" -c Release --nologo -v quiet -p:RestoreAdditionalProjectFallbackFolders="$global" -o "$work/bin"
# The sample got the packages from the feed, not the source tree.
grep -q "\"OnnxAttribution.Core/$version\"" "$work/bin/AttributeOnePng.deps.json" \
  || { echo "sample: AttributeOnePng.deps.json does not name the package OnnxAttribution.Core/$version"; exit 3; }
[ -f "$NUGET_PACKAGES/onnxattribution.core/$version/onnxattribution.core.$version.nupkg" ] \
  || { echo "sample: OnnxAttribution.Core was not restored from the feed"; exit 3; }

# Run it on the shipped model, from the repository root (where the embedded training images are found).
"$work/bin/AttributeOnePng" "$root/models/fm16" "$work/store" | tee "$work/ranking.txt"
first=$(sed -n 's:^1\. training image #\([0-9]*\) .*:\1:p' "$work/ranking.txt")
if [ "$first" != "7" ]; then echo "sample: training image 7 ranked #$first first, expected itself"; exit 3; fi

# The edge tool, installed from the feed into an empty folder, answers the same on the same store.
tool="$work/tool"
mkdir "$tool"
dotnet tool install OnnxAttribution.Edge --version "$version" --tool-path "$tool" --add-source "$feed" >/dev/null
"$tool/onnx-attribution-edge" attribute --model "$root/models/fm16" --store "$work/store" --image "$work/store/row-7.png" \
    --top 5 --out "$work/edge-grid.png" --json > "$work/edge.json"
edge=$(tr -d ' \n' < "$work/edge.json" | grep -o '"index":[0-9]*' | sed 's/"index"://' | tr '\n' ' ')
library=$(sed -n 's:^[0-9]*\. training image #\([0-9]*\) .*:\1:p' "$work/ranking.txt" | tr '\n' ' ')
if [ "$edge" != "$library" ]; then echo "sample: the installed tool ranks rows $edge; the library ranked $library"; exit 3; fi
[ -s "$work/edge-grid.png" ] || { echo "sample: the tool wrote no grid"; exit 3; }
echo "sample: tool ok (onnx-attribution-edge $version installed from the feed into an empty folder: rows $edge)"
echo "sample: ok (packages $version from the feed; training image 7 ranks itself first)"
