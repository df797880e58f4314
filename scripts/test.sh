#!/usr/bin/env bash
# The README's second command: the whole test suite (kernels vs CPU twins on Vulkan,
# the GL smoke set, WGSL portability to MSL/HLSL/SPIR-V, loaders, CLI end to end).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --with-gl
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/kiln-xdg-$(id -u)}"
# Two test threads: lavapipe already uses every core for each dispatch.
cargo test --workspace --release -- --test-threads=2
