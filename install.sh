#!/usr/bin/env bash
# Install shapezoo on a fresh machine: open3d's system library (when root with apt), the CPU build of torch,
# then shapezoo itself (editable) with its test tools.
set -euo pipefail
cd "$(dirname "$0")"
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  apt-get install -y -q libusb-1.0-0 >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q libusb-1.0-0 >/dev/null; } \
    || echo "note: could not install libusb-1.0-0; open3d stays disabled and shapezoo uses its fallbacks"
else
  echo "note: not root with apt: install libusb-1.0-0 yourself to enable open3d (shapezoo works without it)"
fi
python3 -m pip install -q torch==2.13.0 -e ".[dev]"
