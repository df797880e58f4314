//! `kiln eval` end to end on the tiny checkpoints and tests/fixtures/eval/tiny_mc.jsonl:
//! per-choice log-likelihoods equal transformers' (tests/fixtures/make_eval_goldens.py)
//! and every metric — three accuracies with lm-eval's standard errors, the ECE and its
//! bins (seed 003's NumPy loop), the Brier score — equals the NumPy recomputation; the
//! table and the reliability diagram come out; bad tasks and flags are clear errors.

use std::process::Command;

use serde_json::Value;

fn kiln() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kiln"));
    c.env("KILN_BACKEND", std::env::var("KILN_TEST_BACKEND").unwrap_or_else(|_| "vulkan".into()));
    c
}

fn fixture(path: &str) -> String {
    format!("{}/../tests/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// `kiln eval` with `args`; (success, stdout, stderr).
fn eval(args: &[&str]) -> (bool, String, String) {
    let out = kiln().arg("eval").args(args).output().expect("kiln runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn close(what: &str, got: &Value, want: &Value, tol: f64) {
    let (g, w) = (got.as_f64().unwrap(), want.as_f64().unwrap());
    assert!((g - w).abs() <= tol, "{what}: kiln {g} vs transformers/NumPy {w} (tolerance {tol})");
}

#[test]
fn metrics_equal_transformers_and_numpy() {
    for model in ["gpt2-tiny-f32", "llama-tiny-f32"] {
        let golden: Value =
            serde_json::from_str(&std::fs::read_to_string(fixture(&format!("goldens/eval_{model}.json"))).unwrap()).unwrap();
        let task = fixture("eval/tiny_mc.jsonl");
        let (ok, stdout, stderr) =
            eval(&["-m", &fixture(&format!("models/{model}")), "--task", &task, "--json", "--kv-cache", "f32"]);
        assert!(ok, "{model}: {stderr}");
        let got: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(got["items"], golden["items"], "{model}");
        let (gr, wr) = (got["results"].as_array().unwrap(), golden["results"].as_array().unwrap());
        assert_eq!(gr.len(), wr.len());
        for (i, (g, w)) in gr.iter().zip(wr).enumerate() {
            let (gc, wc) = (g["choices"].as_array().unwrap(), w["choices"].as_array().unwrap());
            for (j, (a, b)) in gc.iter().zip(wc).enumerate() {
                // f32 logits through the same chain rule: sums of a few log-probs.
                close(&format!("{model} item {i} choice {j} loglikelihood"), &a["loglikelihood"], &b["loglikelihood"], 1e-4);
                assert_eq!(a["tokens"], b["tokens"], "{model} item {i} choice {j} tokens");
                assert_eq!(a["chars"], b["chars"], "{model} item {i} choice {j} chars");
            }
            for k in ["gold", "pred", "pred_norm", "pred_per_token"] {
                assert_eq!(g[k], w[k], "{model} item {i}: {k}");
            }
        }
        for k in ["acc", "acc_norm", "acc_per_token"] {
            close(&format!("{model} {k}"), &got[k]["value"], &golden[k]["value"], 1e-12);
            close(&format!("{model} {k} stderr"), &got[k]["stderr"], &golden[k]["stderr"], 1e-12);
        }
        // Confidences follow the log-likelihoods (within 1e-4 nats): ECE and Brier within 1e-4.
        close(&format!("{model} ece"), &got["ece"], &golden["ece"], 1e-4);
        close(&format!("{model} brier"), &got["brier"], &golden["brier"], 1e-4);
        let (gb, wb) = (got["bins"].as_array().unwrap(), golden["bins"].as_array().unwrap());
        assert_eq!(gb.len(), 10);
        for (b, (g, w)) in gb.iter().zip(wb).enumerate() {
            assert_eq!(g["count"], w["count"], "{model} bin {b} count");
            close(&format!("{model} bin {b} lo"), &g["lo"], &w["lo"], 0.0);
            close(&format!("{model} bin {b} accuracy"), &g["accuracy"], &w["accuracy"], 1e-12);
            close(&format!("{model} bin {b} confidence"), &g["confidence"], &w["confidence"], 1e-4);
        }
    }
}

#[test]
fn table_limit_and_plot() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("reliability.png");
    let (ok, stdout, stderr) = eval(&[
        "-m",
        &fixture("models/gpt2-tiny-f32"),
        "--task",
        &fixture("eval/tiny_mc.jsonl"),
        "--limit",
        "3",
        "--plot",
        png.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("3 items"), "{stdout}");
    for field in ["acc ", "acc_norm", "acc_per_token", "ece", "brier", "(0.90, 1.00]"] {
        assert!(stdout.contains(field), "no {field:?} in:\n{stdout}");
    }
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG was written");
}

#[test]
fn bad_tasks_and_flags_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture("models/gpt2-tiny-f32");
    let cases: [(&str, &str); 6] = [
        ("{\"context\": \"a\", \"choices\": [\"x\"], \"gold\": 1}\n", "gold is 1 but there are 1 choices"),
        ("{\"context\": \"a\", \"choices\": [\"x\", \"\"], \"gold\": 0}\n", "choice 1 is empty"),
        ("{\"context\": \"a\", \"choices\": \"x\", \"gold\": 0}\n", "\"choices\" must be an array of strings"),
        ("{\"context\": \"a\", \"choices\": [\"x\"], \"gold\": -1}\n", "\"gold\" must be a choice index"),
        ("{\"choices\": [\"x\"], \"gold\": 0}\n", "no \"context\" field"),
        ("\n\nnot json\n", "task.jsonl:3: not a JSON object"),
    ];
    for (text, want) in cases {
        let path = dir.path().join("task.jsonl");
        std::fs::write(&path, text).unwrap();
        let (ok, _, stderr) = eval(&["-m", &model, "--task", path.to_str().unwrap()]);
        assert!(!ok && stderr.contains(want), "{text:?}: want {want:?} in:\n{stderr}");
    }
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    let (ok, _, stderr) = eval(&["-m", &model, "--task", empty.to_str().unwrap()]);
    assert!(!ok && stderr.contains("no items"), "{stderr}");
    let task = fixture("eval/tiny_mc.jsonl");
    let (ok, _, stderr) = eval(&["-m", &model, "--task", &task, "--limit", "0"]);
    assert!(!ok && stderr.contains("--limit 0"), "{stderr}");
    let (ok, _, stderr) = eval(&["-m", &model, "--task", &task, "--plot", "x.gif"]);
    assert!(!ok && stderr.contains("unknown image format"), "{stderr}");
    let (ok, _, stderr) = eval(&["-m", &model, "--task", &task, "--bins", "0"]);
    assert!(!ok && stderr.contains("--bins"), "{stderr}");
}
