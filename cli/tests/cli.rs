//! `kiln` end to end, as a user runs it.

use std::process::Command;

fn kiln() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env("KILN_BACKEND", std::env::var("KILN_TEST_BACKEND").unwrap_or_else(|_| "vulkan".into()));
    c
}

fn run(c: &mut Command) -> (bool, String, String) {
    let out = c.output().expect("kiln runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn devices_lists_the_adapter_with_limits_and_features() {
    let (ok, stdout, stderr) = run(kiln().arg("devices"));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("[0] "), "{stdout}");
    assert!(stdout.contains("backend      Vulkan"), "{stdout}");
    if std::env::var_os("CI").is_some() {
        // CI machines have no GPU: the adapter must be Mesa's software Vulkan driver.
        assert!(stdout.contains("llvmpipe"), "{stdout}");
    }
    for field in ["max storage buffer binding size", "max workgroup storage", "max invocations per workgroup", "features"] {
        assert!(stdout.contains(field), "missing {field}: {stdout}");
    }
}

/// On a machine without a login session (no XDG_RUNTIME_DIR, or one that does not exist),
/// probing adapters must not print Mesa's "XDG_RUNTIME_DIR is invalid" lines: kiln gives
/// the window-system code a private directory of its own.
#[test]
fn no_xdg_runtime_dir_error_without_a_session() {
    for (what, env) in [("unset", None), ("missing directory", Some("/nonexistent/kiln-test-xdg"))] {
        for backend in ["vulkan", "auto"] {
            let mut c = kiln();
            match env {
                None => c.env_remove("XDG_RUNTIME_DIR"),
                Some(d) => c.env("XDG_RUNTIME_DIR", d),
            };
            let (ok, stdout, stderr) = run(c.env("KILN_BACKEND", backend).arg("devices"));
            assert!(ok, "{what}, {backend}: {stderr}");
            assert!(stdout.contains("[0] "), "{what}, {backend}: {stdout}");
            assert!(!stderr.contains("XDG_RUNTIME_DIR"), "{what}, {backend}: {stderr}");
        }
    }
}

#[test]
fn unknown_backend_is_a_clear_error() {
    let (ok, _, stderr) = run(kiln().args(["--backend", "directx9", "devices"]));
    assert!(!ok);
    assert!(stderr.contains("unknown backend \"directx9\""), "{stderr}");
    let (ok, _, stderr) = run(kiln().env("KILN_BACKEND", "webgl").arg("devices"));
    assert!(!ok);
    assert!(stderr.contains("unknown backend \"webgl\""), "{stderr}");
}

#[test]
fn bad_adapter_index_is_a_clear_error() {
    let (ok, _, stderr) = run(kiln().args(["--adapter", "42", "bench", "kernels", "--filter", "rms_norm"]));
    assert!(!ok);
    assert!(stderr.contains("adapter index 42 is out of range"), "{stderr}");
}

#[test]
fn bench_kernels_json_reports_correct_kernels() {
    let (ok, stdout, stderr) =
        run(kiln().args(["bench", "kernels", "--json", "--budget-ms", "1", "--filter", "norm"]));
    assert!(ok, "{stderr}");
    assert!(stderr.contains("copy bandwidth"), "device line on stderr: {stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    let rows = rows.as_array().expect("a JSON array");
    // The peak matmul plus rms_norm and layer_norm at decode and prefill shapes.
    assert!(rows.len() >= 5, "{stdout}");
    for r in rows {
        for key in ["kernel", "shape", "median_us", "gflops", "gbps", "correct"] {
            assert!(r.get(key).is_some(), "missing {key} in {r}");
        }
        assert_eq!(r["correct"], serde_json::Value::Bool(true), "{r}");
        assert!(r["median_us"].as_f64().unwrap() > 0.0, "{r}");
    }
    assert!(rows.iter().any(|r| r["kernel"] == "layer_norm"), "{stdout}");
    assert!(rows.iter().any(|r| r["kernel"] == "rms_norm"), "{stdout}");
}

fn fixture(name: &str) -> String {
    format!("{}/../tests/fixtures/models/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn golden_case(model: &str, case: usize) -> serde_json::Value {
    let path = format!("{}/../tests/fixtures/goldens/{model}.json", env!("CARGO_MANIFEST_DIR"));
    let g: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    g["cases"][case].clone()
}

#[test]
fn generate_json_matches_transformers_greedy_ids() {
    for model in ["gpt2-tiny-f32", "qwen2-tiny-untied-bf16"] {
        let case = golden_case(model, 0);
        let prompt = case["prompt"].as_str().unwrap();
        let (ok, stdout, stderr) =
            run(kiln().args(["generate", "-m", &fixture(model), "--greedy", "--max-tokens", "12", "--json", prompt]));
        assert!(ok, "{stderr}");
        let out: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON object");
        assert_eq!(out["prompt_ids"], case["prompt_ids"], "{model}");
        assert_eq!(out["generated_ids"], case["greedy"]["new_ids"], "{model}");
        assert_eq!(out["text"], case["greedy"]["new_text"], "{model}");
        assert!(stderr.contains("prefill:") && stderr.contains("decode:"), "stats line: {stderr}");
    }
}

#[test]
fn generate_streams_text_and_accepts_prompt_ids() {
    let case = golden_case("qwen2-tiny-tied-f32", 1);
    let ids: Vec<String> = case["prompt_ids"].as_array().unwrap().iter().map(|v| v.to_string()).collect();
    let (ok, stdout, stderr) = run(kiln().args([
        "generate",
        "-m",
        &fixture("qwen2-tiny-tied-f32"),
        "--greedy",
        "--max-tokens",
        "12",
        "--prompt-ids",
        &ids.join(","),
    ]));
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim_end_matches('\n'), case["greedy"]["new_text"].as_str().unwrap());
    assert!(stderr.contains(&format!("prompt tokens: {}", ids.len())), "{stderr}");
}

#[test]
fn next_json_lists_the_top_tokens_in_rank_order() {
    let model = "gpt2-tiny-f16";
    let case = golden_case(model, 2);
    let prompt = case["prompt"].as_str().unwrap();
    let (ok, stdout, stderr) = run(kiln().args(["next", "-m", &fixture(model), "--top", "10", "--json", prompt]));
    assert!(ok, "{stderr}");
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let top = out["top"].as_array().unwrap();
    assert_eq!(top.len(), 10);
    // The most likely next token is the first greedy token transformers generated.
    assert_eq!(top[0]["id"], case["greedy"]["new_ids"][0]);
    let last_argmax = case["prompt_argmax"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(top[0]["id"], last_argmax);
    let mut prev = f64::INFINITY;
    for t in top {
        for key in ["id", "token", "logit", "prob", "logprob"] {
            assert!(t.get(key).is_some(), "missing {key}: {t}");
        }
        let logit = t["logit"].as_f64().unwrap();
        assert!(logit <= prev, "rank order: {stdout}");
        prev = logit;
        let (p, lp) = (t["prob"].as_f64().unwrap(), t["logprob"].as_f64().unwrap());
        assert!((p.ln() - lp).abs() < 1e-4, "{t}");
    }
    // The table form prints the same first id.
    let (ok, table, _) = run(kiln().args(["next", "-m", &fixture(model), "--top", "3", prompt]));
    assert!(ok);
    assert!(table.lines().nth(1).unwrap().contains(&top[0]["id"].to_string()), "{table}");
}

#[test]
fn trace_lists_every_kernel_of_a_decode_step() {
    let (ok, _, stderr) = run(kiln().args([
        "generate",
        "-m",
        &fixture("gpt2-tiny-f32"),
        "--greedy",
        "--max-tokens",
        "2",
        "--trace",
        "Hello",
    ]));
    assert!(ok, "{stderr}");
    // 2 embedding dispatches, 6 per block (2 blocks), the LM head and 3 sampling kernels:
    // norms, biases, GELU and residual adds live in the fused matvecs.
    assert!(stderr.contains("trace of one decode step: 18 dispatches"), "{stderr}");
    for kernel in ["embedding::embedding", "embedding::add_positions", "matvec::", "kv_cache::kv_append_rows", "attention::attention_decode", "sample::process", "sample::draw_partial", "sample::draw_finish"] {
        assert!(stderr.contains(kernel), "missing {kernel}: {stderr}");
    }
}

#[test]
fn bad_model_input_gives_clear_errors() {
    let m = fixture("gpt2-tiny-f32");
    // The fixture's context is 128 positions.
    let (ok, _, stderr) = run(kiln().args(["generate", "-m", &m, "--max-tokens", "200", "Hello"]));
    assert!(!ok);
    assert!(stderr.contains("model's context is 128 positions"), "{stderr}");
    let (ok, _, stderr) = run(kiln().args(["generate", "-m", &m, "--prompt-ids", "1,x,3"]));
    assert!(!ok);
    assert!(stderr.contains("\"x\" is not a token id"), "{stderr}");
    let (ok, _, stderr) = run(kiln().args(["next", "-m", &m, "--prompt-ids", "5,99999"]));
    assert!(!ok);
    assert!(stderr.contains("99999") && stderr.contains("vocabulary of 1024"), "{stderr}");
    let (ok, _, stderr) = run(kiln().args(["generate", "-m", "/nonexistent/model", "Hi"]));
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/model"), "{stderr}");
    let (ok, _, stderr) = run(kiln().args(["generate", "-m", &m, "--temperature=-1", "Hi"]));
    assert!(!ok);
    assert!(stderr.contains("temperature"), "{stderr}");
}

/// A cached real model, or None (with a note) unless KILN_REQUIRE_MODELS=1.
fn real_model(file: &str) -> Option<std::path::PathBuf> {
    let path = kiln_model::fetch::cache_dir().join("models").join(file);
    if path.exists() {
        return Some(path);
    }
    assert_ne!(std::env::var("KILN_REQUIRE_MODELS").as_deref(), Ok("1"), "{} missing: run kiln fetch", path.display());
    eprintln!("skipping: {} not cached (kiln fetch smollm2)", path.display());
    None
}

fn smollm2_golden() -> serde_json::Value {
    let path = format!("{}/../tests/fixtures/goldens/gguf_smollm2-135m-q4_1.json", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn generate_and_next_json_work_on_gguf_files() {
    let Some(model) = real_model("smollm2-135m-instruct-q4_1.gguf") else { return };
    let m = model.to_str().unwrap();
    let case = &smollm2_golden()["cases"][0];
    let prompt = case["prompt"].as_str().unwrap();
    let (ok, stdout, stderr) = run(kiln().args(["generate", "-m", m, "--greedy", "--max-tokens", "4", "--json", "-v", prompt]));
    assert!(ok, "{stderr}");
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    // transformers 5's tokenizer(prompt): SmolLM2's GGUF says add_bos_token = false, so the
    // prompt is the raw ids and greedy decoding follows transformers' greedy ids.
    assert_eq!(out["prompt_ids"], case["prompt_ids_add_special_tokens"]);
    assert_eq!(out["prompt_ids"], case["prompt_ids"]);
    let want_greedy: Vec<serde_json::Value> = case["greedy"]["new_ids"].as_array().unwrap()[..4].to_vec();
    assert_eq!(out["generated_ids"].as_array().unwrap(), &want_greedy);
    assert!(stderr.contains("weights resident on the GPU:"), "{stderr}");
    assert!(stderr.contains("KV cache:"), "{stderr}");
    let raw: Vec<String> = case["prompt_ids"].as_array().unwrap().iter().map(|v| v.to_string()).collect();
    let (ok, stdout, stderr) = run(kiln().args(["next", "-m", m, "--json", "--prompt-ids", &raw.join(",")]));
    assert!(ok, "{stderr}");
    let out: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let top: Vec<u64> = out["top"].as_array().unwrap().iter().map(|t| t["id"].as_u64().unwrap()).collect();
    let want: Vec<u64> = case["last"]["top_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    assert_eq!(top[0], want[0], "most likely next token");
    assert_eq!(top[0], case["greedy"]["new_ids"][0].as_u64().unwrap());
}

#[test]
fn truncated_or_bit_flipped_gguf_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    // A valid GGUF header start with a huge metadata count, then nothing.
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes()); // tensors
    bytes.extend_from_slice(&u64::MAX.to_le_bytes()); // metadata entries
    let huge = tmp.path().join("huge-count.gguf");
    std::fs::write(&huge, &bytes).unwrap();
    let (ok, _, stderr) = run(kiln().args(["generate", "-m", huge.to_str().unwrap(), "Hi"]));
    assert!(!ok);
    assert!(stderr.contains("huge-count.gguf"), "names the file: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let Some(model) = real_model("smollm2-135m-instruct-q4_1.gguf") else { return };
    let data = std::fs::read(&model).unwrap();
    let cut = tmp.path().join("truncated.gguf");
    std::fs::write(&cut, &data[..data.len() / 2]).unwrap();
    let (ok, _, stderr) = run(kiln().args(["next", "-m", cut.to_str().unwrap(), "Hi"]));
    assert!(!ok);
    assert!(stderr.contains("truncated.gguf") && !stderr.contains("panicked"), "{stderr}");
    // Flip a bit in the version field.
    let mut flipped = data[..1 << 20].to_vec();
    flipped[4] ^= 0x40;
    let bad = tmp.path().join("flipped.gguf");
    std::fs::write(&bad, &flipped).unwrap();
    let (ok, _, stderr) = run(kiln().args(["next", "-m", bad.to_str().unwrap(), "Hi"]));
    assert!(!ok);
    assert!(stderr.contains("flipped.gguf") && stderr.contains("version"), "{stderr}");
}
