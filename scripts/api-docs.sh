#!/usr/bin/env bash
# The API reference of the library packages (OnnxAttribution.Primitives, .Onnx, .Store, .Imaging, .Runtime, .Core) from their XML docs, with docfx
# (a local .NET tool: dotnet-tools.json), into out/api-docs/site/. Fails on any docfx warning: an unresolved cross-reference
# or a broken link (CI runs it: .ci/run).
# Usage: bash scripts/api-docs.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dotnet tool restore >/dev/null
rm -rf out/api-docs
dotnet docfx metadata docs/api/docfx.json --warningsAsErrors
dotnet docfx build docs/api/docfx.json --warningsAsErrors
echo "API reference: out/api-docs/site/index.html ($(find out/api-docs/site/api -name '*.html' | wc -l) pages)"
