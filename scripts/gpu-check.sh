#!/usr/bin/env bash
# One prepared GPU check for a machine with nothing but a built kiln binary (no Rust, no
# network): the adapter list, the self-test, every kernel benchmark and the synthetic
# model benchmarks, each written into one output folder with the command that made it.
#
#   scripts/gpu-check.sh [KILN_BINARY] [OUT_DIR]
#
# KILN_BINARY defaults to ./target/release/kiln, OUT_DIR to ./gpu-check-<date>. Each step
# has its own time limit, so the whole run stays under about 8 minutes on an H100; a step
# that fails or times out is recorded (its exit status in OUT_DIR/summary.txt) and the
# next one still runs. The script exits non-zero if any step failed.
#
# On a machine without a Vulkan loader, unpack one first (see BENCHMARKS.md, "Running the
# GPU check"). KILN_BACKEND (default vulkan) picks the graphics API.
#
# The peer (optional): with PEER_BENCH set to a llama.cpp Vulkan `llama-bench`, the script
# also writes the synthetic Qwen2.5-0.5B, SmolLM2-135M and Gemma 3 270M (Q4_K_M mix) as GGUF files with
# `kiln bench model --write-gguf`, and times both engines on those very files: kiln's
# `bench model -m FILE` and `llama-bench -m FILE -ngl 99 -p PROMPT_TOKENS -n DECODE_TOKENS`.
#
# The tuning sweep (optional): with SWEEP=1, the synthetic Qwen2.5-0.5B and SmolLM2-135M
# decode once per setting of the launch knobs (KILN_ATTN_MIN_CHUNK, KILN_MATVEC_Q8_LANES,
# KILN_MATVEC_WG, KILN_MATVEC_ROWS; see kernels/src/matvec.rs and attention.rs), and the
# quantized kernels are timed with each workgroup size, so a default can be chosen from
# one run. `sweep-*.out` hold the JSON of each.
#
# Sizes and limits (environment): PROMPT_TOKENS (default 512) and DECODE_TOKENS (128) for
# the model benchmarks, LIMIT_SCALE (1) multiplies every step's time limit. On a software
# device (lavapipe) the whole script runs end to end with, for example,
#   PROMPT_TOKENS=4 DECODE_TOKENS=3 LIMIT_SCALE=10 scripts/gpu-check.sh
set -uo pipefail

kiln=${1:-./target/release/kiln}
out=${2:-./gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}
backend=${KILN_BACKEND:-vulkan}
prompt=${PROMPT_TOKENS:-512}
decode=${DECODE_TOKENS:-128}
scale=${LIMIT_SCALE:-1}
mkdir -p "$out"
if [[ ! -x "$kiln" ]]; then
    echo "gpu-check: no kiln binary at $kiln (build it with: cargo build --release)" >&2
    exit 2
fi
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp/kiln-xdg-$(id -u)}
mkdir -p "$XDG_RUNTIME_DIR"

failed=0
# run NAME LIMIT_SECONDS COMMAND...: run COMMAND into OUT/NAME.{out,err}, with its exit
# status and seconds in OUT/summary.txt.
run() {
    local name=$1 limit=$(($2 * scale))
    shift 2
    local cmd=("$@")
    echo "== $name: ${cmd[*]} (limit ${limit}s)"
    local start=$SECONDS
    timeout "$limit" "${cmd[@]}" >"$out/$name.out" 2>"$out/$name.err"
    local rc=$?
    local took=$((SECONDS - start))
    printf '%-28s rc=%-3s %4ss  %s\n' "$name" "$rc" "$took" "${cmd[*]}" >>"$out/summary.txt"
    if [[ $rc -ne 0 ]]; then
        failed=1
        echo "   failed (rc $rc, ${took}s); last lines of $out/$name.err:"
        tail -n 5 "$out/$name.err" | sed 's/^/   /'
    else
        echo "   ok (${took}s)"
    fi
}

# step NAME LIMIT_SECONDS ARGS...: `kiln --backend $backend ARGS`.
step() {
    local name=$1 limit=$2
    shift 2
    run "$name" "$limit" "$kiln" --backend "$backend" "$@"
}

{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "host: $(uname -a)"
    echo "kiln: $("$kiln" --version 2>&1)"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
} >"$out/machine.txt" 2>&1
: >"$out/summary.txt"

step devices 60 devices
step selftest 180 selftest
step bench-kernels 150 bench kernels --json --quiet
for spec in "qwen2.5-0.5b q4_k" "qwen2.5-0.5b f16" "smollm2-135m q4_k" "gemma3-270m q4_k" "gpt2 f16"; do
    read -r name dtype <<<"$spec"
    step "bench-model-$name-$dtype" 60 bench model --synthetic "$name" --dtype "$dtype" \
        --prompt-tokens "$prompt" --decode-tokens "$decode" --json --profile
done

if [[ -n ${PEER_BENCH:-} ]]; then
    export GGML_VK_VISIBLE_DEVICES=${GGML_VK_VISIBLE_DEVICES:-0}
    for name in qwen2.5-0.5b smollm2-135m gemma3-270m; do
        file="${TMPDIR:-/tmp}/kiln-synthetic-$name-q4_k.gguf"
        step "write-gguf-$name" 60 bench model --synthetic "$name" --dtype q4_k --write-gguf "$file"
        step "bench-file-$name" 60 bench model -m "$file" --prompt-tokens "$prompt" \
            --decode-tokens "$decode" --json
        run "peer-$name" 120 "$PEER_BENCH" -m "$file" -ngl 99 -p "$prompt" -n "$decode" -r 3 -o json
        rm -f "$file"
    done
fi

if [[ ${SWEEP:-0} == 1 ]]; then
    # knob NAME LIMIT ENV... -- ARGS...: `env ENV... kiln --backend $backend ARGS`.
    knob() {
        local name=$1 limit=$2
        shift 2
        local envs=()
        while [[ $1 != -- ]]; do envs+=("$1"); shift; done
        shift
        run "sweep-$name" "$limit" env "${envs[@]}" "$kiln" --backend "$backend" "$@"
    }
    for name in qwen2.5-0.5b smollm2-135m; do
        for setting in "KILN_ATTN_MIN_CHUNK=128 KILN_MATVEC_Q8_LANES=1" KILN_ATTN_MIN_CHUNK=128 \
            KILN_ATTN_MIN_CHUNK=64 KILN_ATTN_MIN_CHUNK=16 KILN_MATVEC_Q8_LANES=1 KILN_MATVEC_Q8_LANES=2 \
            KILN_MATVEC_Q8_LANES=8 KILN_MATVEC_WG=64 KILN_MATVEC_WG=128 "KILN_MATVEC_WG=128 KILN_MATVEC_ROWS=1" \
            "KILN_MATVEC_WG=128 KILN_MATVEC_ROWS=4" KILN_MATVEC_ROWS=4 KILN_NONE=1; do
            read -r -a envs <<<"$setting"
            knob "$name-${setting// /-}" 60 "${envs[@]}" -- bench model --synthetic "$name" --dtype q4_k \
                --prompt-tokens "$prompt" --decode-tokens "$decode" --json
        done
    done
    for wg in 32 64 128; do
        knob "kernels-quant-wg$wg" 90 KILN_MATVEC_WG=$wg -- bench kernels --filter quant --budget-ms 40 --json --quiet
    done
fi

echo
cat "$out/summary.txt"
echo "everything is in $out"
exit $failed
