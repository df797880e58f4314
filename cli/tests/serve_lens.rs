//! `POST /v1/lens` on a tiny checkpoint: the answer equals `kiln lens --json` for the same
//! prompt (ids, tokens, blocks, top ids, log-probs), `blocks` picks rows, bad `top` /
//! `blocks` / `prompt` are 400s naming the parameter, and the API key guards the endpoint
//! (not the page); a lens takes a place in the queue like a sequence (503 when full).

mod serve_common;

use std::process::Command;

use serde_json::{json, Value};
use serve_common::*;

/// `kiln lens -m MODEL --json --top TOP [--blocks LIST] PROMPT`.
fn kiln_lens(prompt: &str, top: usize, blocks: Option<&str>) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(["lens", "-m", MODEL, "--json", "--top", &top.to_string()]);
    if let Some(b) = blocks {
        cmd.args(["--blocks", b]);
    }
    let out = cmd.arg(prompt).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The same lens: equal ids, tokens, blocks and top ids; log-probs within 1e-4.
fn assert_same_lens(got: &Value, want: &Value) {
    for key in ["prompt_ids", "tokens", "blocks"] {
        assert_eq!(got[key], want[key], "{key}");
    }
    let (g_rows, w_rows) = (got["lens"].as_array().unwrap(), want["lens"].as_array().unwrap());
    assert_eq!(g_rows.len(), w_rows.len());
    assert_eq!(g_rows.len(), want["blocks"].as_array().unwrap().len());
    for (r, (g_row, w_row)) in g_rows.iter().zip(w_rows).enumerate() {
        let (g_row, w_row) = (g_row.as_array().unwrap(), w_row.as_array().unwrap());
        assert_eq!(g_row.len(), want["prompt_ids"].as_array().unwrap().len(), "row {r}");
        assert_eq!(g_row.len(), w_row.len(), "row {r}");
        for (t, (g, w)) in g_row.iter().zip(w_row).enumerate() {
            let (g, w) = (g["top"].as_array().unwrap(), w["top"].as_array().unwrap());
            assert_eq!(g.len(), w.len(), "row {r} position {t}");
            for (a, b) in g.iter().zip(w) {
                assert_eq!(a["id"], b["id"], "row {r} position {t}");
                assert_eq!(a["token"], b["token"], "row {r} position {t}");
                let (x, y) = (a["logprob"].as_f64().unwrap(), b["logprob"].as_f64().unwrap());
                assert!((x - y).abs() < 1e-4, "row {r} position {t}: {x} vs {y}");
                assert!((a["prob"].as_f64().unwrap() - x.exp()).abs() < 1e-5);
            }
        }
    }
}

#[test]
fn lens_equals_kiln_lens_json() {
    let server = serve(&[]);
    let prompt = "The capital of France is";
    let (status, got) = post(server.port, "/v1/lens", &json!({"prompt": prompt}));
    assert_eq!(status, 200, "{got}");
    let want = kiln_lens(prompt, 5, None);
    assert_same_lens(&got, &want);
    assert_eq!(got["lens"][0][0]["top"].as_array().unwrap().len(), 5, "top defaults to 5");

    let (status, got) = post(server.port, "/v1/lens", &json!({"prompt": prompt, "top": 3, "blocks": [1]}));
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["blocks"], json!([1]));
    assert_same_lens(&got, &kiln_lens(prompt, 3, Some("1")));
}

#[test]
fn bad_lens_requests_are_400s_naming_the_parameter() {
    let server = serve(&[]);
    let port = server.port;
    // (body, what the message says, the parameter named)
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!({}), "required", "prompt"),
        (json!({"prompt": 5}), "string", "prompt"),
        (json!({"prompt": ""}), "no tokens", "prompt"),
        (json!({"prompt": "x ".repeat(200)}), "context", "prompt"),
        (json!({"prompt": "x", "top": 0}), "top", "top"),
        (json!({"prompt": "x", "top": 33}), "top", "top"),
        (json!({"prompt": "x", "top": -1}), "top", "top"),
        (json!({"prompt": "x", "top": "five"}), "top", "top"),
        (json!({"prompt": "x", "blocks": []}), "at least one", "blocks"),
        (json!({"prompt": "x", "blocks": [2]}), "blocks 0 to 1", "blocks"),
        (json!({"prompt": "x", "blocks": [0, 0]}), "twice", "blocks"),
        (json!({"prompt": "x", "blocks": [-1]}), "not a block", "blocks"),
        (json!({"prompt": "x", "blocks": "0"}), "array", "blocks"),
    ];
    for (body, want, param) in &cases {
        let (status, v) = post(port, "/v1/lens", body);
        assert_eq!(status, 400, "{body}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains(want), "{body}: {v}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{v}");
        assert_eq!(v["error"]["param"], *param, "{body}: {v}");
    }
    let (status, v) = post(port, "/v1/lens", &json!({"prompt": "still here", "top": 1}));
    assert_eq!(status, 200, "{v}");
}

#[test]
fn the_page_needs_no_key_and_the_lens_does() {
    let server = serve(&["--api-key", "sesame"]);
    let port = server.port;
    for path in ["/", "/page/app.js", "/page/style.css"] {
        let (status, body) = get(port, path).unwrap();
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, html) = get(port, "/").unwrap();
    assert!(html.contains("<script src=\"/page/app.js\">") && html.contains("id=\"lens-grid\""), "{html}");
    let (status, v) = post(port, "/v1/lens", &json!({"prompt": "x"}));
    assert_eq!(status, 401, "{v}");
    let (status, v) = post_auth(port, "/v1/lens", &json!({"prompt": "x"}), "sesame");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["blocks"], json!([0, 1]));
}

/// A lens takes one of the server's places: with `--slots 1 --queue 0` and the slot held
/// by a long stream it is a 503; once the stream is gone it is answered.
#[test]
fn a_lens_waits_its_turn_like_a_sequence() {
    use std::io::{BufRead, BufReader};
    let server = serve(&["--slots", "1", "--queue", "0"]);
    let port = server.port;
    let long = json!({"prompt": "a", "max_tokens": 120, "stream": true, "seed": 1});
    let mut reader = BufReader::new(request(port, "POST", "/v1/completions", &long.to_string()).unwrap());
    let mut line = String::new();
    while !line.starts_with("data:") {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }
    let (status, v) = post(port, "/v1/lens", &json!({"prompt": "x"}));
    assert_eq!(status, 503, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("busy"), "{v}");
    drop(reader);
    wait_idle(port, std::time::Duration::from_secs(60));
    let (status, v) = post(port, "/v1/lens", &json!({"prompt": "x"}));
    assert_eq!(status, 200, "{v}");
}
