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
