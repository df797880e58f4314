//! `kiln selftest` end to end: a small subset passes with one line per case and the
//! summary; demanding bit-exact agreement (`--tolerance-scale 0`, a hidden flag) makes
//! the same real comparisons fail and the exit status non-zero; JSON output; the
//! embedded tiny-checkpoint goldens; a filter that matches nothing.

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

/// (passed, failed, skipped) from the `N passed, M failed, K skipped` line.
fn summary(text: &str) -> (usize, usize, usize) {
    let line = text.lines().find(|l| l.contains(" passed, ")).unwrap_or_else(|| panic!("no summary line in {text}"));
    let num = |word: &str| -> usize {
        let before = line.split(word).next().unwrap();
        before.trim_end().rsplit([' ', ',']).next().unwrap().parse().unwrap_or_else(|_| panic!("{word} in {line:?}"))
    };
    (num(" passed"), num(" failed"), num(" skipped"))
}

fn listed(filter: &str) -> Vec<String> {
    let (ok, stdout, stderr) = run(kiln().args(["selftest", "--list", "--filter", filter]));
    assert!(ok, "{stderr}");
    stdout.lines().map(String::from).collect()
}

#[test]
fn a_filtered_run_passes_with_one_line_per_case() {
    // The Q4_K matvec at one row: edge shapes and a long row.
    let names = listed("matvec/q4_k/m1/");
    assert!(names.len() >= 4, "{names:?}");
    let (ok, stdout, stderr) = run(kiln().args(["selftest", "--filter", "matvec/q4_k/m1/"]));
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.starts_with("kiln selftest: "), "header line: {stdout}");
    for name in &names {
        let line = stdout
            .lines()
            .find(|l| l.starts_with(name.as_str()))
            .unwrap_or_else(|| panic!("no line for {name}: {stdout}"));
        assert!(line.contains(" pass ") && line.contains("% of tol"), "{line}");
    }
    assert_eq!(summary(&stdout), (names.len(), 0, 0), "{stdout}");
}

#[test]
fn bit_exact_tolerance_makes_real_comparisons_fail() {
    // f32 dot products over K = 4863 on the GPU (f32 sums) cannot equal the f64 twin to
    // the last bit everywhere: with every tolerance scaled to 0 these cases must fail.
    let filter = "matvec/f32/m1/n21/k4863";
    let (ok, stdout, stderr) = run(kiln().args(["selftest", "--filter", filter]));
    assert!(ok, "passes at the real tolerance: {stdout}\n{stderr}");
    assert_eq!(summary(&stdout), (1, 0, 0));

    let (ok, stdout, stderr) = run(kiln().args(["selftest", "--filter", filter, "--tolerance-scale", "0"]));
    assert!(!ok, "must exit non-zero: {stdout}");
    assert_eq!(summary(&stdout), (0, 1, 0), "{stdout}");
    let line = stdout.lines().find(|l| l.starts_with(filter)).unwrap();
    assert!(line.contains(" FAIL ") && line.contains("of tol 0e0+0e0"), "{line}");
    assert!(stdout.contains("mismatch") && stdout.contains("first bad index"), "the failure says where: {stdout}");
    assert!(stderr.contains("1 self-test case(s) failed"), "{stderr}");
}

#[test]
fn json_has_one_object_per_case() {
    let filter = "argmax/";
    let names = listed(filter);
    let (ok, stdout, stderr) = run(kiln().args(["selftest", "--json", "--filter", filter]));
    assert!(ok, "{stderr}");
    let rows: serde_json::Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), names.len());
    for r in rows {
        assert_eq!(r["status"], "pass", "{r}");
        assert!(r["exact_compared"].as_u64().unwrap() > 0, "argmax compares ids exactly: {r}");
        assert_eq!(r["exact_mismatches"], 0, "{r}");
    }
    assert_eq!(summary(&stderr), (names.len(), 0, 0), "summary on stderr: {stderr}");
}

#[test]
fn embedded_tiny_checkpoints_match_their_goldens() {
    let names = listed("model/qwen2-tiny-tied-f32/");
    assert!(!names.is_empty());
    let (ok, stdout, stderr) = run(kiln().args(["selftest", "--filter", "model/qwen2-tiny-tied-f32/"]));
    assert!(ok, "{stdout}\n{stderr}");
    for line in stdout.lines().filter(|l| l.starts_with("model/")) {
        // Logits within tolerance and exact ids (prompt and greedy).
        assert!(line.contains("% of tol") && line.contains("exact: 0 of"), "{line}");
    }
    assert_eq!(summary(&stdout), (names.len(), 0, 0), "{stdout}");
}

#[test]
fn a_filter_matching_nothing_is_an_error() {
    let (ok, _, stderr) = run(kiln().args(["selftest", "--filter", "no-such-kernel"]));
    assert!(!ok);
    assert!(stderr.contains("no self-test case matches") && stderr.contains("no-such-kernel"), "{stderr}");
    let (ok, _, stderr) = run(kiln().args(["selftest", "--filter", "argmax/", "--tolerance-scale=-1"]));
    assert!(!ok);
    assert!(stderr.contains("--tolerance-scale"), "{stderr}");
}
