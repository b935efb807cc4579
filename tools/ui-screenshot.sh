#!/usr/bin/env bash
# Takes docs/results/ui.png, the screenshot of the auditor's page (/ui): the browser test
# Screenshot_SeedAnswered_PageRendersResults drives Debian's Chromium (1100×560 viewport) through Playwright against a
# 24-row D-TRAK store of models/fm16 (seed 7, top 6, the first result clicked) and writes the PNG where this says.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ONNX_ATTRIBUTION_UI_SCREENSHOT="$PWD/docs/results/ui.png" dotnet test tests/OnnxAttribution.Server.BrowserTests -c Release \
    --filter "FullyQualifiedName~Screenshot_SeedAnswered_PageRendersResults"
ls -l docs/results/ui.png
