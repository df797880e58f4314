//! `kiln score` end to end on a tiny checkpoint: the JSON fields are present and
//! consistent with each other and with transformers' goldens
//! (tests/fixtures/goldens/score_qwen2-tiny-tied-f32.json), the table prints, and bad
//! arguments exit non-zero with a clear message.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

const MODEL: &str = "qwen2-tiny-tied-f32";

fn kiln() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env("KILN_BACKEND", std::env::var("KILN_TEST_BACKEND").unwrap_or_else(|_| "vulkan".into()));
    c
}

fn model() -> String {
    format!("{}/../tests/fixtures/models/{MODEL}", env!("CARGO_MANIFEST_DIR"))
}

fn golden_case(name: &str) -> Value {
    let path = format!("{}/../tests/fixtures/goldens/score_{MODEL}.json", env!("CARGO_MANIFEST_DIR"));
    let g: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    g["cases"].as_array().unwrap().iter().find(|c| c["name"] == name).unwrap().clone()
}

/// Run `kiln score -m MODEL args...` with `stdin`; (success, stdout, stderr).
fn score(args: &[&str], stdin: &str) -> (bool, String, String) {
    let mut child = kiln()
        .arg("score")
        .args(["-m", &model()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kiln runs");
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("missing number {key} in {v}"))
}

fn close(what: &str, got: f64, want: f64, tol: f64) {
    assert!((got - want).abs() <= tol, "{what}: {got} vs {want} (tolerance {tol})");
}

/// The totals agree with the per-token log-probs.
fn check_consistent(v: &Value) {
    let lps: Vec<f64> = v["token_logprobs"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
    let n = lps.len();
    assert_eq!(v["tokens"].as_array().unwrap().len(), n);
    assert_eq!(v["n_tokens"].as_u64().unwrap() as usize, n);
    let sum: f64 = lps.iter().sum();
    close("sum_logprob = Σ token_logprobs", f(v, "sum_logprob"), sum, 1e-6);
    close("mean_logprob", f(v, "mean_logprob"), sum / n as f64, 1e-9);
    close("perplexity = exp(-mean)", f(v, "perplexity"), (-sum / n as f64).exp(), 1e-9 * f(v, "perplexity"));
    let bpb = -sum / std::f64::consts::LN_2 / f(v, "bytes");
    close("bits_per_byte", f(v, "bits_per_byte"), bpb, 1e-9);
    for (t, lp) in v["tokens"].as_array().unwrap().iter().zip(&lps) {
        assert_eq!(f(t, "logprob"), *lp);
        close("prob = exp(logprob)", f(t, "prob"), lp.exp(), 1e-12);
        assert!(t["token"].is_string() && t["rank"].as_u64().unwrap() >= 1, "{t}");
    }
}

#[test]
fn text_json_is_consistent_and_matches_transformers() {
    let want = golden_case("english");
    let text = want["text"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.txt");
    std::fs::write(&path, text).unwrap();
    // transformers keeps K and V in f32: compare that cache at the f32 bound.
    let (ok, stdout, stderr) = score(&["--text", path.to_str().unwrap(), "--json", "--kv-cache", "f32"], "");
    assert!(ok, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    check_consistent(&v);
    assert_eq!(v["ids"], want["ids"]);
    assert!(v.get("answer_logprob").is_none(), "no answer fields for --text");
    let n = want["token_logprobs"].as_array().unwrap().len() as f64;
    close("sum_logprob vs transformers", f(&v, "sum_logprob"), f(&want["totals"], "sum_logprob"), 1e-3 * n);
    close("bits_per_byte vs transformers", f(&v, "bits_per_byte"), f(&want["totals"], "bits_per_byte"), 1e-3);

    // The same text from stdin gives the same numbers.
    let (ok, stdout, stderr) = score(&["--text", "-", "--json", "--kv-cache", "f32"], text);
    assert!(ok, "{stderr}");
    let w: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["token_logprobs"], w["token_logprobs"]);

    // The default f16 cache, within its bound (tests/tests/score.rs: 2e-2 nats per token).
    let (ok, stdout, stderr) = score(&["--text", "-", "--json"], text);
    assert!(ok, "{stderr}");
    let h: Value = serde_json::from_str(&stdout).unwrap();
    check_consistent(&h);
    close("f16 KV cache: sum_logprob vs transformers", f(&h, "sum_logprob"), f(&want["totals"], "sum_logprob"), 2e-2 * n);
}

#[test]
fn answer_json_counts_answer_tokens_only() {
    let want = golden_case("france");
    let args = ["--context", "The capital of France is", "--answer", " Paris.", "--json"];
    let (ok, stdout, stderr) = score(&[&args[..], &["--kv-cache", "f32"]].concat(), "");
    assert!(ok, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    check_consistent(&v);
    let answer: Vec<&Value> = v["answer_tokens"].as_array().unwrap().iter().collect();
    assert_eq!(answer.len() as u64, v["answer_n_tokens"].as_u64().unwrap());
    assert!(!answer.is_empty() && answer.len() < v["tokens"].as_array().unwrap().len());
    let sum: f64 = answer.iter().map(|t| f(t, "logprob")).sum();
    close("answer_logprob = Σ answer tokens", f(&v, "answer_logprob"), sum, 1e-6);
    close("answer_mean_logprob", f(&v, "answer_mean_logprob"), sum / answer.len() as f64, 1e-9);
    close(
        "answer_logprob vs transformers",
        f(&v, "answer_logprob"),
        f(&want, "answer_logprob"),
        1e-3 * answer.len() as f64,
    );
    assert_eq!(v["answer_start"], want["answer_start"]);
    assert_eq!(v["answer"], " Paris.");

    // The default f16 cache, within its bound (2e-2 nats per token).
    let (ok, stdout, stderr) = score(&args, "");
    assert!(ok, "{stderr}");
    let h: Value = serde_json::from_str(&stdout).unwrap();
    let bound = 2e-2 * answer.len() as f64;
    close("f16 KV cache: answer_logprob vs transformers", f(&h, "answer_logprob"), f(&want, "answer_logprob"), bound);
}

#[test]
fn table_lists_every_token_and_the_totals() {
    let (ok, stdout, stderr) = score(&["--context", "One, two, three, ", "--answer", "four"], "");
    assert!(ok, "{stderr}");
    for want in ["pos", "logprob", "entropy", "(context, not scored)", "answer", "perplexity", "bits per byte"] {
        assert!(stdout.contains(want), "missing {want:?}: {stdout}");
    }
    // The context's trailing space moved to the answer (lm-evaluation-harness convention).
    assert!(stdout.contains("answer \" four\" given \"One, two, three,\""), "{stdout}");
}

#[test]
fn bad_arguments_exit_non_zero_with_a_clear_message() {
    let missing = "/nonexistent/kiln-score-input.txt";
    let empty = tempfile::NamedTempFile::new().unwrap();
    let empty = empty.path().to_str().unwrap().to_string();
    let cases: &[(&[&str], &str)] = &[
        (&["--text", missing, "--context", "a", "--answer", "b"], "cannot be used with"),
        (&["--context", "The capital"], "--answer"),
        (&["--answer", "Paris"], "--context"),
        (&[], "required"),
        (&["--text", missing], "--text: reading /nonexistent/kiln-score-input.txt"),
        (&["--text", &empty], "is empty"),
        (&["--context", "The capital", "--answer", ""], "--answer is empty"),
        (&["--context", "", "--answer", "Paris"], "invalid context"),
        (&["--text", "-"], "is empty"),
    ];
    for (args, want) in cases {
        let (ok, _, stderr) = score(args, "");
        assert!(!ok, "{args:?} should fail");
        assert!(stderr.contains(want), "{args:?}: expected {want:?} in: {stderr}");
    }
    let (ok, _, stderr) = score(&["--text", "-"], "a");
    assert!(!ok && stderr.contains("single token"), "{stderr}");
}
