//! `kiln bench model --synthetic` on lavapipe: builds SmolLM2-135M's shapes with random
//! Q4_K_M-style weights in memory, runs prefill and decode, and reports the fields the
//! performance work is judged by. Figures are printed, never asserted — except the
//! per-token counters, which are exact: one submit, no buffer or bind group created, 4
//! bytes read back, and the dispatches per layer of each family (Qwen2.5's Q4_K_M mix
//! alternates v_proj between Q8_0 and Q5_0, so half its layers run q/k/v as two matvecs).

use std::process::Command;

use serde_json::Value;

#[test]
fn synthetic_bench_reports_figures_and_per_token_counters() {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["bench", "model", "--synthetic", "smollm2-135m", "--prompt-tokens", "2", "--decode-tokens", "3", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    for field in ["prefill_tok_s", "decode_tok_s", "decode_gbps", "copy_gbps", "decode_weight_bytes_per_token"] {
        assert!(v[field].as_f64().is_some_and(|x| x > 0.0), "{field}: {v}");
    }
    assert!(v["device"].is_string() && v["backend"].is_string());
    assert_eq!(v["submits_per_token"], 1.0, "{v}");
    assert_eq!(v["buffers_created_per_token"], 0.0, "{v}");
    assert_eq!(v["readback_bytes_per_token"], 4.0, "{v}");
    assert_eq!(v["bind_groups_per_token"], 0.0, "{v}");
    assert_eq!(v["dispatches_per_layer"], 6.0, "{v}");
    // SmolLM2-135M with these types reads ~100 MiB of weights per token.
    let mib = v["decode_weight_bytes_per_token"].as_f64().unwrap() / (1 << 20) as f64;
    assert!((80.0..130.0).contains(&mib), "{mib} MiB");
}

/// Qwen2.5-0.5B's exact Q4_K_M mix and GPT-2 in f16: nothing created per token, and
/// dispatches per layer within the targets (≤ 8).
#[test]
fn qwen_and_gpt2_decode_steps_create_nothing() {
    for (name, dtype, per_layer) in [("qwen2.5-0.5b", "q4_k", 6.5), ("gpt2", "f16", 6.0)] {
        let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
            .args(["bench", "model", "--synthetic", name, "--dtype", dtype, "--prompt-tokens", "2", "--decode-tokens", "3", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["submits_per_token"], 1.0, "{name}: {v}");
        assert_eq!(v["buffers_created_per_token"], 0.0, "{name}: {v}");
        assert_eq!(v["bind_groups_per_token"], 0.0, "{name}: {v}");
        assert_eq!(v["upload_bytes_per_token"], 0.0, "{name}: {v}");
        assert_eq!(v["dispatches_per_layer"], per_layer, "{name}: {v}");
        assert!(v["record_cpu_us_per_token"].as_f64().is_some_and(|us| us > 0.0), "{name}: {v}");
    }
}

#[test]
fn unknown_synthetic_models_and_types_are_clear_errors() {
    for (args, want) in [(["--synthetic", "gpt5", "--dtype", "f16"], "known synthetic models"), (["--synthetic", "smollm2-135m", "--dtype", "q3"], "dtype")] {
        let out = Command::new(env!("CARGO_BIN_EXE_kiln")).args(["bench", "model"]).args(args).output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{err}");
    }
}

/// `--write-gguf` writes a synthetic model as a GGUF file that kiln loads back (the same
/// shapes, types and decode step), for llama.cpp's llama-bench to run beside it; SmolLM2
/// and GPT-2.
#[test]
fn write_gguf_gives_a_file_kiln_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("smollm2.gguf");
    let kiln = || Command::new(env!("CARGO_BIN_EXE_kiln"));
    let out = kiln()
        .args(["bench", "model", "--synthetic", "smollm2-135m", "--write-gguf"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrote synthetic smollm2-135m"));
    let out = kiln()
        .args(["bench", "model", "-m"])
        .arg(&path)
        .args(["--prompt-tokens", "2", "--decode-tokens", "3", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dispatches_per_layer"], 6.0, "{v}");
    assert_eq!(v["bind_groups_per_token"], 0.0, "{v}");
    let mib = v["decode_weight_bytes_per_token"].as_f64().unwrap() / (1 << 20) as f64;
    assert!((80.0..130.0).contains(&mib), "{mib} MiB");

    // GPT-2 too: llama.cpp's gpt2 layout (Conv1D weights transposed), which kiln reads back.
    let gpt2 = dir.path().join("gpt2.gguf");
    let out = kiln().args(["bench", "model", "--synthetic", "gpt2", "--write-gguf"]).arg(&gpt2).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = kiln()
        .args(["bench", "model", "--prompt-tokens", "2", "--decode-tokens", "2", "--json", "-m"])
        .arg(&gpt2)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dispatches_per_layer"], 6.0, "{v}");
}
