//! `kiln bench model --synthetic` on lavapipe: builds SmolLM2-135M's shapes with random
//! Q4_K_M-style weights in memory, runs prefill and decode, and reports the fields the
//! performance work is judged by. Figures are printed, never asserted — except the
//! per-token counters, which are exact: one submit, no buffer created, 4 bytes read back.

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
    // SmolLM2-135M with these types reads ~100 MiB of weights per token.
    let mib = v["decode_weight_bytes_per_token"].as_f64().unwrap() / (1 << 20) as f64;
    assert!((80.0..130.0).contains(&mib), "{mib} MiB");
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
