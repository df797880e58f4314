//! `kiln chat` fed from a pipe: answers stream to stdout, `/reset` forgets the
//! conversation (the same question after a reset gets the first answer again), `/quit` ends.

use std::io::Write;
use std::process::{Command, Stdio};

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/models/qwen2-tiny-tied-f32");

fn chat(input: &str) -> (bool, Vec<String>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["chat", "-m", MODEL, "--max-tokens", "6", "--temperature", "0"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    (out.status.success(), stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn reset_forgets_and_quit_ends() {
    let (ok, answers, stderr) = chat("Hello there\nHow are you?\n/reset\nHello there\n/quit\nnever read\n");
    assert!(ok, "{stderr}");
    assert_eq!(answers.len(), 3, "three answers: {answers:?}\n{stderr}");
    assert_eq!(answers[0], answers[2], "after /reset the same question gets the same (greedy) answer");
    assert!(stderr.contains("conversation cleared"));
}

#[test]
fn a_model_without_a_template_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["chat", "-m", concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/models/gpt2-tiny-f32")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("chat template"));
}
