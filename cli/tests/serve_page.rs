//! The page at `/` in headless Chromium: tests/page/check_page.py drives it against
//! `kiln serve` on a tiny checkpoint (streamed tokens shaded by probability, their
//! alternatives on hover, chat mode, the lens grid, nothing fetched from elsewhere), once
//! without an API key and once with `--api-key` (the page shows a key field and sends it).
//!
//! Needs Debian's `chromium`, `chromium-driver` and `python3-selenium` (scripts/test.sh
//! installs them). Without them the test says so and passes, unless
//! KILN_REQUIRE_CHROMIUM=1 (set by scripts/test.sh).

mod serve_common;

use std::path::Path;
use std::process::Command;

use serve_common::*;

const PYTHON: &str = "/usr/bin/python3";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/page/check_page.py");

/// What is missing to drive a browser, if anything.
fn missing() -> Vec<&'static str> {
    let mut missing = Vec::new();
    if !Path::new("/usr/bin/chromium").exists() {
        missing.push("chromium");
    }
    if !Path::new("/usr/bin/chromedriver").exists() {
        missing.push("chromium-driver");
    }
    let selenium = Command::new(PYTHON).args(["-c", "import selenium"]).output().is_ok_and(|o| o.status.success());
    if !selenium {
        missing.push("python3-selenium");
    }
    missing
}

#[test]
fn the_page_streams_shaded_tokens_and_draws_the_lens_in_chromium() {
    let missing = missing();
    if !missing.is_empty() {
        assert!(
            std::env::var("KILN_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "KILN_REQUIRE_CHROMIUM=1 but {} not installed",
            missing.join(", ")
        );
        eprintln!("SKIPPED: {} not installed (Debian: apt-get install chromium chromium-driver python3-selenium); the page test did not run", missing.join(", "));
        return;
    }
    // Without a key, then with --api-key (the page asks for the key and sends it).
    for key in [None, Some("sesame")] {
        let server = match key {
            None => serve(&[]),
            Some(k) => serve(&["--api-key", k]),
        };
        let url = format!("http://127.0.0.1:{}", server.port);
        let mut cmd = Command::new(PYTHON);
        cmd.arg(SCRIPT).arg(&url).env("HOME", std::env::temp_dir());
        if let Some(k) = key {
            cmd.args(["--key", k]);
        }
        let out = cmd.output().unwrap();
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "check_page.py (key {key:?}) failed:\n{stdout}\n{stderr}\nserver log:\n{}", server.log());
        assert!(stdout.contains("PAGE OK"), "{stdout}");
        println!("{stdout}");
    }
}
