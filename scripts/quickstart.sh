#!/usr/bin/env bash
# The README's first command: set up, build, then show the devices and benchmark every kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/kiln-xdg-$(id -u)}"
./target/release/kiln devices
./target/release/kiln bench kernels "$@"
