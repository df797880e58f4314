//! A hostile client against `kiln serve` (short timeouts by flags): more than 150
//! malformed or adversarial requests — bad JSON, wrong types, overflowing, negative and
//! out-of-range numbers, huge strings, invalid UTF-8, deep nesting, duplicate and
//! conflicting headers, bad framing, a truncated body, a slow body, slow headers, 1,000
//! idle connections, a reader that stalls. Each gets the right 4xx (naming the parameter
//! where one is at fault) or is cut off by its timeout; /health answers throughout; a
//! normal request succeeds afterwards and the slots are idle.

mod serve_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use serve_common::*;

const FLAGS: &[&str] = &[
    "--slots", "4", "--queue", "8", "--header-timeout", "1", "--body-timeout", "1", "--idle-timeout", "2", "--write-timeout", "2",
    "--max-body-bytes", "65536", "--max-header-bytes", "16384", "--max-connections", "2048",
];

/// Send raw bytes and read the answer to the end of the connection: (status or 0 when
/// the connection closed without one, body). The write side stays open, as real clients
/// keep it (the server reads a closed one as a client that left, and drops its request).
fn raw(port: u16, bytes: &[u8]) -> (u16, String) {
    let mut s = connect(port);
    // The server may answer and close before it has read everything (a refused head).
    let _ = s.write_all(bytes);
    read_status(s)
}

fn read_status(mut s: TcpStream) -> (u16, String) {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|x| x.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn post_bytes(path: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!("POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()).into_bytes();
    r.extend_from_slice(body);
    r
}

/// A JSON-level case: the body, the status, and the parameter the error must name.
struct Case {
    path: &'static str,
    body: Vec<u8>,
    status: u16,
    param: Option<String>,
}

fn case(body: Value, param: &str) -> Case {
    Case { path: "/v1/completions", body: body.to_string().into_bytes(), status: 400, param: Some(param.into()) }
}

fn chat_case(body: Value, param: &str) -> Case {
    Case { path: "/v1/chat/completions", body: body.to_string().into_bytes(), status: 400, param: Some(param.into()) }
}

fn bad_body(path: &'static str, body: &[u8]) -> Case {
    Case { path, body: body.to_vec(), status: 400, param: None }
}

fn json_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    // Not JSON, or not an object.
    for b in [
        "", " ", "{", "}", "[", "{\"prompt\":", "{\"prompt\":\"x\",}", "{'prompt': 'x'}", "nul", "{\"prompt\":\"x\"}}", "{\"prompt\" \"x\"}",
        "[]", "1", "\"x\"", "null", "true", "{\"prompt\":\"x\",\"temperature\":NaN}", "{\"prompt\":\"x\",\"temperature\":Infinity}",
        "{\"prompt\":\"x\",\"max_tokens\":1e400}", "{\"prompt\":\"\\ud800\"}", "\u{feff}{\"prompt\":\"x\"}",
    ] {
        cases.push(bad_body("/v1/completions", b.as_bytes()));
    }
    cases.push(bad_body("/v1/completions", b"{\"prompt\":\"\xff\xfe\"}")); // invalid UTF-8
    cases.push(bad_body("/v1/completions", b"{\"prompt\":\"caf\xc3\"}"));
    cases.push(bad_body("/v1/chat/completions", b"{\"messages\":[{\"role\":\"user\",\"content\":\"\x80\"}]}"));
    // Deep nesting: serde_json's recursion limit.
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000)); // within --max-body-bytes
    cases.push(bad_body("/v1/completions", deep.as_bytes()));
    let nested = format!("{{\"prompt\":\"x\",\"stop\":{}1{}}}", "{\"a\":".repeat(5000), "}".repeat(5000));
    cases.push(bad_body("/v1/completions", nested.as_bytes()));
    cases.push(bad_body("/tokenize", b"{\"content\":"));
    cases.push(bad_body("/detokenize", b"[1,2"));

    // Wrong types, field by field.
    let numeric = [
        "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "min_p", "repetition_penalty", "frequency_penalty",
        "presence_penalty", "seed", "n", "logprobs", "best_of",
    ];
    for field in numeric {
        for wrong in [json!("1"), json!([1]), json!({"a": 1}), json!(true)] {
            cases.push(case(json!({"prompt": "x", field: wrong}), field));
        }
    }
    for field in ["stream", "echo"] {
        for wrong in [json!("true"), json!(1), json!([])] {
            cases.push(case(json!({"prompt": "x", field: wrong}), field));
        }
    }
    for wrong in [json!(1), json!({}), json!([1]), json!([""]), json!(""), json!(["a", "b", "c", "d", "e"]), json!("s".repeat(2000))] {
        cases.push(case(json!({"prompt": "x", "stop": wrong}), "stop"));
    }
    for wrong in [json!(1), json!([1]), json!("x"), json!({"include_usage": "yes"})] {
        cases.push(case(json!({"prompt": "x", "stream_options": wrong}), "stream_options"));
    }

    // Overflowing, negative, fractional, out-of-range numbers.
    let big = serde_json::from_str::<Value>("18446744073709551616").unwrap(); // u64::MAX + 1: a float to serde
    let out_of_range: Vec<(&str, Value)> = vec![
        ("max_tokens", json!(-1)),
        ("max_tokens", json!(1.5)),
        ("max_tokens", json!(1e20)),
        ("max_tokens", big.clone()),
        ("max_tokens", json!(u64::MAX)),
        ("max_tokens", json!(4_294_967_296u64)),
        ("max_tokens", json!(4_294_967_295u64)),
        ("max_tokens", json!(128)),
        ("max_tokens", json!(i64::MIN)),
        ("max_completion_tokens", json!(-5)),
        ("temperature", json!(-0.1)),
        ("temperature", json!(1e39)),
        ("temperature", json!(-1e39)),
        ("temperature", json!(-1e-30)),
        ("top_p", json!(0)),
        ("top_p", json!(-1)),
        ("top_p", json!(1.0001)),
        ("top_p", json!(1e300)),
        ("min_p", json!(-0.1)),
        ("min_p", json!(1.5)),
        ("repetition_penalty", json!(0)),
        ("repetition_penalty", json!(-1)),
        ("repetition_penalty", json!(1e39)),
        ("frequency_penalty", json!(2.01)),
        ("frequency_penalty", json!(-3)),
        ("presence_penalty", json!(1e10)),
        ("presence_penalty", json!(-2.5)),
        ("top_k", json!(0)),
        ("top_k", json!(-1)),
        ("top_k", json!(1e12)),
        ("top_k", json!(u64::MAX)),
        ("n", json!(0)),
        ("n", json!(17)),
        ("n", json!(-1)),
        ("n", json!(1e30)),
        ("n", json!(u64::MAX)),
        ("best_of", json!(2)),
        ("logprobs", json!(-1)),
        ("logprobs", json!(21)),
        ("logprobs", json!(1e9)),
        ("seed", json!(1e19)),
        ("seed", big),
        ("seed", json!(0.5)),
    ];
    for (field, value) in out_of_range {
        cases.push(case(json!({"prompt": "x", field: value}), field));
    }
    for bias in [json!({"-1": 1}), json!({"1": 1e39}), json!({"1": -101}), json!({"1": 100.5}), json!({"x": 1}), json!({"99999999999": 1}), json!({"1": "a"}), json!({"1026": 1}), json!([1, 2]), json!("1:2")] {
        cases.push(case(json!({"prompt": "x", "logit_bias": bias}), "logit_bias"));
    }
    // Prompts.
    for prompt in [json!(null), json!(5), json!({}), json!([]), json!([-1]), json!([1.5]), json!([99999]), json!([4294967296u64]), json!(true), json!(""), json!("x ".repeat(30_000))] {
        cases.push(case(json!({"prompt": prompt}), "prompt"));
    }
    cases.push(case(json!({"max_tokens": 3}), "prompt"));
    cases.push(case(json!({"prompt": ["a", 5]}), "prompt[1]"));
    cases.push(case(json!({"prompt": [[1, 2], []]}), "prompt[1]"));
    cases.push(case(json!({"prompt": ["ok", [1, -2]]}), "prompt[1]"));
    cases.push(case(json!({"prompt": vec!["p"; 65]}), "prompt"));
    cases.push(case(json!({"prompt": vec!["p"; 5], "n": 16}), "n"));
    cases.push(case(json!({"prompt": "x", "suffix": "y"}), "suffix"));
    cases.push(case(json!({"prompt": "x", "max_tokens": 0}), "max_tokens"));
    // Chat.
    for (messages, param) in [
        (json!(null), "messages"),
        (json!("hi"), "messages"),
        (json!([]), "messages"),
        (json!({}), "messages"),
        (json!([1]), "messages[0]"),
        (json!([{"content": "x"}]), "messages[0].role"),
        (json!([{"role": "wizard", "content": "x"}]), "messages[0].role"),
        (json!([{"role": 5, "content": "x"}]), "messages[0].role"),
        (json!([{"role": "user", "content": 5}]), "messages[0].content"),
        (json!([{"role": "user", "content": {"text": "x"}}]), "messages[0].content"),
        (json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]), "messages[0].content[0]"),
        (json!([{"role": "user", "content": "x"}, {"role": "user", "content": [{"type": "text"}]}]), "messages[1].content[0]"),
    ] {
        cases.push(chat_case(json!({"messages": messages}), param));
    }
    let msgs = json!([{"role": "user", "content": "hi"}]);
    cases.push(chat_case(json!({"messages": msgs, "logprobs": "yes"}), "logprobs"));
    cases.push(chat_case(json!({"messages": msgs, "top_logprobs": 21, "logprobs": true}), "top_logprobs"));
    cases.push(chat_case(json!({"messages": msgs, "max_tokens": 100000}), "max_tokens"));
    cases.push(chat_case(json!({"messages": [{"role": "user", "content": "x ".repeat(30_000)}]}), "prompt"));
    // Tokenizer endpoints.
    cases.push(Case { path: "/tokenize", body: json!({"content": 5}).to_string().into_bytes(), status: 400, param: Some("content".into()) });
    cases.push(Case { path: "/tokenize", body: json!({}).to_string().into_bytes(), status: 400, param: Some("content".into()) });
    cases.push(Case { path: "/detokenize", body: json!({"tokens": [-1]}).to_string().into_bytes(), status: 400, param: Some("tokens".into()) });
    cases.push(Case { path: "/detokenize", body: json!({"tokens": [1026]}).to_string().into_bytes(), status: 400, param: Some("tokens".into()) });
    cases.push(Case { path: "/detokenize", body: json!({"tokens": "1,2"}).to_string().into_bytes(), status: 400, param: Some("tokens".into()) });
    cases
}

/// Requests broken at the HTTP level: (name, raw bytes, the statuses allowed; 0 means
/// "closed without an answer").
fn http_cases() -> Vec<(&'static str, Vec<u8>, &'static [u16])> {
    let body = json!({"prompt": "x", "max_tokens": 1}).to_string();
    let with_headers = |headers: &str, body: &str| format!("POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{headers}\r\n{body}").into_bytes();
    let huge_header = format!("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n", "a".repeat(100_000));
    let many_headers = format!("GET /health HTTP/1.1\r\nHost: x\r\n{}\r\n", "X-A: b\r\n".repeat(500));
    vec![
        ("unknown route", b"GET /v2/secret HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), &[404]),
        ("path traversal", b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), &[404, 400]),
        ("wrong method", b"DELETE /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), &[405]),
        ("GET on a POST route", b"GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), &[405]),
        ("POST on a GET route", post_bytes("/metrics", b"{}"), &[405]),
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec(), &[400, 0]),
        ("binary noise", vec![0u8, 159, 146, 150, 255, 13, 10, 13, 10], &[400, 0]),
        ("bad HTTP version", b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n".to_vec(), &[400, 505, 0]),
        ("header without a colon", b"GET /health HTTP/1.1\r\nHost x\r\n\r\n".to_vec(), &[400, 0]),
        ("header with invalid bytes", b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: \x00\x01\r\n\r\n".to_vec(), &[400, 0]),
        ("conflicting Content-Length", with_headers(&format!("Content-Length: {}\r\nContent-Length: 3\r\n", body.len()), &body), &[400, 0]),
        ("two values in one Content-Length", with_headers(&format!("Content-Length: {0}, 3\r\n", body.len()), &body), &[400, 0]),
        ("negative Content-Length", with_headers("Content-Length: -1\r\n", &body), &[400, 0]),
        ("non-numeric Content-Length", with_headers("Content-Length: abc\r\n", &body), &[400, 0]),
        ("overflowing Content-Length", with_headers("Content-Length: 99999999999999999999999\r\n", &body), &[400, 413, 0]),
        ("Content-Length over the limit", with_headers("Content-Length: 1000000\r\n", &body), &[413]),
        ("Content-Length and Transfer-Encoding", with_headers(&format!("Content-Length: {}\r\nTransfer-Encoding: chunked\r\n", body.len()), &body), &[400, 0]),
        ("unknown Transfer-Encoding", with_headers("Transfer-Encoding: gzip\r\n", &body), &[400, 501, 0]),
        ("bad chunk size", with_headers("Transfer-Encoding: chunked\r\n", "zz\r\nabc\r\n0\r\n\r\n"), &[400, 0]),
        ("chunked body over the limit", with_headers("Transfer-Encoding: chunked\r\n", &format!("{:x}\r\n{}\r\n0\r\n\r\n", 70_000, "a".repeat(70_000))), &[413]),
        // The rest never comes: cut off by --body-timeout.
        ("truncated chunked body", with_headers("Transfer-Encoding: chunked\r\n", "100\r\nabc"), &[408]),
        ("truncated body", with_headers("Content-Length: 100\r\n", "{\"prompt\""), &[408]),
        ("huge header", huge_header.into_bytes(), &[431, 400, 0]),
        ("500 headers", many_headers.into_bytes(), &[431, 400, 0, 200]),
        ("duplicate Host", b"GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n".to_vec(), &[200, 400]),
        ("absolute-form target", b"GET http://evil.example/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(), &[200, 400, 404]),
        ("missing body", with_headers("Content-Length: 0\r\n", ""), &[400]),
    ]
}

#[test]
fn every_hostile_request_gets_its_4xx_or_its_timeout_and_the_server_keeps_serving() {
    let server = serve(FLAGS);
    let port = server.port;
    let cases = json_cases();
    let http = http_cases();
    let mut checked = 0;
    for (i, c) in cases.iter().enumerate() {
        let (status, body) = raw(port, &post_bytes(c.path, &c.body));
        let shown = String::from_utf8_lossy(&c.body[..c.body.len().min(200)]).into_owned();
        assert_eq!(status, c.status, "case {i} {} {shown}: {body}", c.path);
        let v: Value = serde_json::from_str(&body).unwrap_or_else(|_| panic!("case {i} {shown}: not JSON: {body}"));
        assert!(v["error"]["message"].is_string() && v["error"]["type"].is_string(), "case {i}: {body}");
        if let Some(param) = &c.param {
            assert_eq!(v["error"]["param"].as_str(), Some(param.as_str()), "case {i} {shown}: {body}");
        }
        checked += 1;
        if i % 25 == 0 {
            assert_eq!(get(port, "/health").unwrap().0, 200, "/health after case {i}");
        }
    }
    for (name, bytes, allowed) in &http {
        let (status, body) = raw(port, bytes);
        assert!(allowed.contains(&status), "{name}: got {status} {body}");
        if status >= 400 && !body.is_empty() && !body.starts_with('<') {
            // Answers that come from kiln (not hyper's own framing errors) are OpenAI-shaped.
            if let Ok(v) = serde_json::from_str::<Value>(&body) {
                assert!(v["error"]["message"].is_string(), "{name}: {body}");
            }
        }
        checked += 1;
        assert_eq!(get(port, "/health").unwrap().0, 200, "/health after {name}");
    }
    assert!(checked >= 150, "only {checked} hostile requests");

    // Keep-alive and the framing users' tools rely on still work.
    let chunked = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n";
    let body = json!({"prompt": "Hi", "max_tokens": 2, "seed": 1}).to_string();
    let (a, b) = body.split_at(5);
    let msg = format!("{chunked}{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n", a.len(), b.len());
    assert_eq!(raw(port, msg.as_bytes()).0, 200, "a chunked body");
    let mut s = connect(port);
    write!(s, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
    let mut first = [0u8; 25];
    s.read_exact(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first).starts_with("HTTP/1.1 100 Continue"), "{:?}", String::from_utf8_lossy(&first));
    s.write_all(body.as_bytes()).unwrap();
    assert_eq!(read_status(s).0, 200, "after 100-continue");
    let mut s = connect(port);
    for _ in 0..3 {
        write!(s, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "keep-alive");
    }

    let (status, v) = post(port, "/v1/completions", &completion("after the storm", 3, 4, false));
    assert_eq!(status, 200, "{v}");
    wait_idle(port, Duration::from_secs(10));
}

#[test]
fn slow_clients_are_cut_off_by_their_timeouts() {
    let server = serve(FLAGS);
    let port = server.port;
    // A slow body: half of it, then nothing — 408 after --body-timeout.
    let mut s = connect(port);
    let body = json!({"prompt": "x", "max_tokens": 1}).to_string();
    write!(s, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{}", body.len(), &body[..5]).unwrap();
    let t0 = Instant::now();
    let (status, text) = read_status(s);
    assert_eq!(status, 408, "{text}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(text.contains("\"error\""), "{text}");
    // A body dripping one byte at a time also meets the deadline.
    let mut s = connect(port);
    write!(s, "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len()).unwrap();
    let mut cut = false;
    for b in body.bytes() {
        if s.write_all(&[b]).is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let (status, _) = read_status(s);
    assert!(cut || status == 408, "a dripping body got {status}");
    // Slow headers: a request line and nothing more — closed after --header-timeout.
    let mut s = connect(port);
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n").unwrap();
    let t0 = Instant::now();
    let (status, _) = read_status(s);
    assert!(status == 0 || status == 408, "slow headers got {status}");
    assert!(t0.elapsed() < Duration::from_secs(5), "slow headers held {:?}", t0.elapsed());
    // An idle keep-alive connection is closed after --idle-timeout.
    let mut s = connect(port);
    write!(s, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 4096];
    assert!(s.read(&mut buf).unwrap() > 0);
    let t0 = Instant::now();
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the idle connection was closed");
    assert!(t0.elapsed() < Duration::from_secs(6), "idle for {:?}", t0.elapsed());
    assert!(metric(port, "kiln_connections_timed_out_total") >= 2.0);
    assert_eq!(post(port, "/v1/completions", &completion("still fine", 1, 2, false)).0, 200);
}

#[test]
fn a_thousand_idle_connections_do_not_block_health_and_are_closed() {
    // A header timeout long enough that all 1,000 are still open when counted.
    let mut flags: Vec<&str> = FLAGS.to_vec();
    let at = flags.iter().position(|f| *f == "--header-timeout").unwrap();
    flags[at + 1] = "8";
    let server = serve(&flags);
    let port = server.port;
    let idle: Vec<TcpStream> = (0..1000).map(|_| connect(port)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let (status, _) = get(port, "/health").unwrap();
    assert_eq!(status, 200);
    assert!(t0.elapsed() < Duration::from_secs(2), "/health took {:?} with 1,000 idle connections", t0.elapsed());
    let open = metric(port, "kiln_connections_open");
    assert!(open >= 1000.0, "{open} connections counted open");
    assert_eq!(post(port, "/v1/completions", &completion("busy night", 2, 3, false)).0, 200);
    // They sent nothing: each is closed by the header timeout.
    let t0 = Instant::now();
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 512];
        let mut n = s.read(&mut buf).unwrap_or(0);
        while n > 0 {
            n = s.read(&mut buf).unwrap_or(0);
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(20), "closing 1,000 idle connections took {:?}", t0.elapsed());
    let t0 = Instant::now();
    while metric(port, "kiln_connections_open") > 1.0 {
        assert!(t0.elapsed() < Duration::from_secs(5), "connections still open");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_reader_that_stalls_is_dropped_and_its_slots_freed() {
    let server = serve(FLAGS);
    let port = server.port;
    // Megabytes of events (16 choices × logprobs 20), never read.
    let body = json!({"prompt": "Stall", "max_tokens": 100, "n": 16, "logprobs": 20, "stream": true, "seed": 9});
    let stalled = request(port, "POST", "/v1/completions", &body.to_string()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // The server answers others meanwhile and, within the write timeout, drops the reader.
    assert_eq!(get(port, "/health").unwrap().0, 200);
    wait_idle(port, Duration::from_secs(60));
    let t0 = Instant::now();
    while metric(port, "kiln_connections_open") > 1.0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "the stalled connection is still open");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(stalled);
    let (status, v) = post(port, "/v1/completions", &completion("next please", 4, 3, false));
    assert_eq!(status, 200, "{v}");
}
