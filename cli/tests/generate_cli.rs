//! `kiln generate` as a user runs it, on a tiny checkpoint: sampling flags, seeded
//! reproducibility, --json log-probs, --stop, --ban, --beams, and invalid parameters
//! giving a clear error and a non-zero exit.

use std::process::{Command, Output};

use serde_json::Value;

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/models/qwen2-tiny-tied-f32");

fn kiln(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiln")).args(["generate", "-m", MODEL]).args(args).output().unwrap()
}

fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let out = kiln(&all);
    assert!(out.status.success(), "kiln generate {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_sampling_flag_runs_and_a_seed_reproduces() {
    let args = [
        "The quick brown fox", "--max-tokens", "12", "--temperature", "0.9", "--top-k", "50", "--top-p", "0.9",
        "--min-p", "0.02", "--repeat-penalty", "1.1", "--frequency-penalty", "0.3", "--presence-penalty", "-0.2",
        "--logit-bias", "5=2.5", "--logit-bias", "7=-inf", "--seed", "11",
    ];
    let a = json(&args);
    let b = json(&args);
    assert_eq!(a["generated_ids"], b["generated_ids"], "same seed, same tokens");
    assert_eq!(a["text"], b["text"]);
    assert!(!a["generated_ids"].as_array().unwrap().contains(&Value::from(7)), "id 7 is banned");
    assert_eq!(a["readback_bytes_per_token"], 4);
}

#[test]
fn json_logprobs_have_the_requested_alternatives() {
    let v = json(&["Hello", "--max-tokens", "4", "--logprobs", "3", "--seed", "1"]);
    let tokens = v["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 4);
    for t in tokens {
        assert!(t["logprob"].as_f64().unwrap() <= 0.0);
        let top = t["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        assert!(top[0]["logprob"].as_f64().unwrap() >= top[2]["logprob"].as_f64().unwrap());
        // The chosen token is no more likely than the best alternative.
        assert!(t["logprob"].as_f64().unwrap() <= top[0]["logprob"].as_f64().unwrap() + 1e-6);
    }
}

#[test]
fn stop_strings_cut_the_text() {
    let full = json(&["Hello", "--max-tokens", "12", "--greedy"]);
    let text = full["text"].as_str().unwrap().to_string();
    // Stop at the text's third character onwards: the output is what came before it.
    let stop: String = text.chars().skip(2).take(2).collect();
    if stop.chars().count() < 2 {
        return;
    }
    let cut = json(&["Hello", "--max-tokens", "12", "--greedy", "--stop", &stop]);
    let want = &text[..text.find(&stop).unwrap()];
    assert_eq!(cut["text"].as_str().unwrap(), want);
}

#[test]
fn ban_removes_the_tokens_of_a_text() {
    let plain = json(&["Hello", "--max-tokens", "6", "--greedy"]);
    let first = plain["tokens"][0]["token"].as_str().unwrap().to_string();
    let banned = json(&["Hello", "--max-tokens", "6", "--greedy", "--ban", &first]);
    assert_ne!(banned["generated_ids"][0], plain["generated_ids"][0], "banned {first:?}");
}

#[test]
fn beams_print_the_best_hypothesis() {
    let v = json(&["Hello", "--max-tokens", "5", "--beams", "3", "--length-penalty", "0.5"]);
    assert_eq!(v["beams"], 3);
    let hyps = v["hypotheses"].as_array().unwrap();
    assert!(!hyps.is_empty() && hyps.len() <= 3);
    assert_eq!(v["generated_ids"], hyps[0]["generated_ids"]);
}

#[test]
fn invalid_parameters_exit_non_zero_with_a_clear_message() {
    let cases: &[(&[&str], &str)] = &[
        (&["--temperature", "-1"], "temperature"),
        (&["--temperature", "NaN"], "temperature"),
        (&["--top-p", "0"], "top_p"),
        (&["--top-p", "1.5"], "top_p"),
        (&["--top-k", "0"], "top_k"),
        (&["--min-p", "-0.5"], "min_p"),
        (&["--min-p", "2"], "min_p"),
        (&["--beams", "0"], "beams"),
        (&["--logit-bias", "99999=1"], "logit_bias"),
        (&["--logit-bias", "12"], "--logit-bias"),
        (&["--logit-bias", "12=abc"], "--logit-bias"),
        (&["--logprobs", "50"], "logprobs"),
        (&["--repeat-penalty", "0"], "repetition_penalty"),
        (&["--frequency-penalty", "5"], "frequency_penalty"),
        (&["--stop", ""], "stop"),
        (&["--beams", "2", "--top-k", "5"], "--top-k"),
    ];
    for (flags, name) in cases {
        let mut args = vec!["Hello", "--max-tokens", "2"];
        args.extend_from_slice(flags);
        let out = kiln(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flags:?} must fail");
        assert!(err.contains(name), "{flags:?}: the error must name {name}: {err}");
    }
}
