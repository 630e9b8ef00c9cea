#!/usr/bin/env bash
# Install shapezoo on a fresh machine: system packages when root with apt (libusb-1.0-0 for open3d; chromium, which
# the report's browser test uses; dataset-fashion-mnist, the Fashion-MNIST files for classifier zoos), the CPU build
# of torch, then shapezoo itself (editable) with its test tools.
set -euo pipefail
cd "$(dirname "$0")"
PKGS="libusb-1.0-0 chromium dataset-fashion-mnist"
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q $PKGS >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q $PKGS >/dev/null; } \
    || echo "note: could not install $PKGS; open3d stays disabled (shapezoo uses its fallbacks), the browser test skips, Fashion-MNIST needs --root"
else
  echo "note: not root with apt: install $PKGS yourself to enable open3d and the report's browser test"
fi
python3 -m pip install -q torch==2.13.0 -e ".[dev]"
