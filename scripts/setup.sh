#!/usr/bin/env bash
# What the project needs on a fresh Debian 12 machine beside the .NET 10 SDK, installed only when missing:
# the Fashion-MNIST package (the full dataset; the embedded default ships in models/data), a font for
# the captions of image grids, Chromium for the browser tests of the auditor's page (Playwright drives Debian's
# /usr/bin/chromium; it never downloads a browser of its own; only with --torch), redis-server for the cluster client's test
# against the silos' Redis membership table (RedisGatewaysTests; only with --torch), and PyTorch 1.13 with the onnx package (python3-torch, python3-onnx: the Torch test
# category exports tools/torch-models with PyTorch's own exporter; about 3 minutes to install on a fresh machine; only with
# --torch, which scripts/test.sh passes).
# TorchSharp's native library is fixed up by the build itself (build/TorchSharpNativeFixup.targets). Never fails the
# caller for an optional piece: a test that needs a missing one fails naming it.
set -u
need=()
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
if [ "${1:-}" = "--torch" ]; then
  # What only the tests need (the demo does not): Chromium, redis-server and PyTorch.
  [ -x /usr/bin/chromium ] || need+=(chromium)
  [ -x /usr/bin/redis-server ] || need+=(redis-server)
  /usr/bin/python3 -c "import torch, onnx" >/dev/null 2>&1 || need+=(python3-torch python3-onnx)
fi
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
      echo "setup: missing Debian packages ${need[*]} (install them with apt-get; continuing without them)"; exit 0; fi
  fi
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  ($sudo apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || { $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q "${need[@]}" >/dev/null 2>&1; }) \
    || echo "setup: could not install ${need[*]}; tests that need them will say so"
fi
exit 0
