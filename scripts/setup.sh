#!/usr/bin/env bash
# Set up a fresh Debian/Ubuntu machine for kiln and build it (release).
#  - installs the Vulkan loader, and Mesa's software Vulkan driver (lavapipe) when no
#    Vulkan driver is installed (a machine without a GPU still runs every kernel);
#  - with --with-gl also Mesa's GL/EGL (llvmpipe) for the GL smoke tests;
#  - builds the `kiln` binary into target/release/kiln; with --tests it builds every test
#    instead, the binary among them (scripts/test.sh: one build, not two, because the
#    tests' dev-dependencies enable more of naga's features than the binary alone).
set -euo pipefail
cd "$(dirname "$0")/.."

with_gl=0
with_tests=0
for arg in "$@"; do
    case "$arg" in
        --with-gl) with_gl=1 ;;
        --tests) with_tests=1 ;;
        *) echo "setup: unknown option $arg (use --with-gl, --tests)" >&2; exit 2 ;;
    esac
done

sudo_cmd=""
if [[ $(id -u) -ne 0 ]]; then sudo_cmd="sudo"; fi

# True if any Vulkan driver manifest (ICD) is installed.
have_icd() {
    local dir
    for dir in /usr/share/vulkan/icd.d /etc/vulkan/icd.d /usr/local/share/vulkan/icd.d; do
        compgen -G "$dir/*.json" >/dev/null && return 0
    done
    return 1
}

pkgs=()
if command -v apt-get >/dev/null 2>&1; then
    ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' || pkgs+=(libvulkan1)
    if ! have_icd; then
        echo "setup: no Vulkan driver found; installing Mesa's software driver (lavapipe)"
        pkgs+=(mesa-vulkan-drivers)
    fi
    if [[ $with_gl -eq 1 ]]; then
        pkgs+=(libegl1 libegl-mesa0 libgl1-mesa-dri libgles2)
    fi
    if [[ ${#pkgs[@]} -gt 0 ]]; then
        $sudo_cmd apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${pkgs[@]}" >/dev/null
    fi
else
    echo "setup: not a Debian/Ubuntu system; install a Vulkan, Metal or DX12 driver yourself" >&2
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found. Install Rust 1.87 or newer with rustup, then run this again." >&2
    exit 1
fi

# Lavapipe warns about XDG_RUNTIME_DIR on headless machines; give it one.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/kiln-xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

if [[ $with_tests -eq 1 ]]; then
    # The same command and features as `cargo test --workspace --release`, which then
    # finds everything built; the CLI's integration tests build target/release/kiln.
    cargo test --workspace --release --no-run
else
    cargo build --release -p kiln-cli
fi
echo "setup: built target/release/kiln"
