//! `kiln serve` against a real HTTP client on loopback (a tiny checkpoint): completions
//! plain and streamed equal `kiln generate` for the same seed; 16 concurrent clients (some
//! streaming, some leaving early) each get their own complete answer; a client that
//! leaves frees its slot; a full queue is a 503; bad requests are 400s and the server
//! keeps serving; Ctrl-C finishes the request in flight and exits.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/models/qwen2-tiny-tied-f32");

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `kiln serve` on a port the OS picks (`--port 0`), read the port from its
/// "listening" line, and wait until it answers /health.
fn serve(extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["serve", "-m", MODEL, "--port", "0"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let port = loop {
        let line = lines.next().expect("kiln serve exited before listening").unwrap();
        if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
            break rest.split('/').next().unwrap().parse::<u16>().unwrap();
        }
    };
    // Keep draining the server's log so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let server = Server { child, port };
    let t0 = Instant::now();
    while get(port, "/health").is_err() {
        assert!(t0.elapsed() < Duration::from_secs(60), "the server did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

fn request(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len())?;
    Ok(s)
}

/// (status, body) of a complete response.
fn read_response(mut s: TcpStream) -> (u16, String) {
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap();
    let status = all.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = all.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    Ok(read_response(request(port, "GET", path, "")?))
}

fn post(port: u16, path: &str, body: &Value) -> (u16, Value) {
    let (status, text) = read_response(request(port, "POST", path, &body.to_string()).unwrap());
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The `data:` payloads of a streamed response, up to and including [DONE].
fn stream_events(port: u16, path: &str, body: &Value) -> Vec<String> {
    let s = request(port, "POST", path, &body.to_string()).unwrap();
    let reader = BufReader::new(s);
    reader.lines().map_while(Result::ok).filter_map(|l| l.strip_prefix("data: ").map(str::to_string)).collect()
}

fn streamed_text(events: &[String]) -> String {
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|v| v["choices"].get(0).and_then(|c| c["text"].as_str().or(c["delta"]["content"].as_str())).map(str::to_string))
        .collect()
}

fn generate_text(prompt: &str, seed: u64, max_tokens: usize) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["generate", "-m", MODEL, prompt, "--json", "--temperature", "0.9", "--top-k", "40"])
        .args(["--seed", &seed.to_string(), "--max-tokens", &max_tokens.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["text"].as_str().unwrap().to_string()
}

fn completion(prompt: &str, seed: u64, max_tokens: usize, stream: bool) -> Value {
    json!({"model": "tiny", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.9, "top_k": 40, "seed": seed, "stream": stream})
}

#[test]
fn completions_plain_and_streamed_equal_kiln_generate() {
    let server = serve(&[]);
    let want = generate_text("Once upon a time", 5, 12);
    let (status, v) = post(server.port, "/v1/completions", &completion("Once upon a time", 5, 12, false));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["text"].as_str().unwrap(), want);
    assert_eq!(v["usage"]["completion_tokens"], 12);
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let events = stream_events(server.port, "/v1/completions", &completion("Once upon a time", 5, 12, true));
    assert_eq!(streamed_text(&events), want);

    let (status, models) = get(server.port, "/v1/models").unwrap();
    assert_eq!(status, 200);
    assert!(models.contains("\"object\":\"list\""));
}

#[test]
fn sixteen_concurrent_clients_each_get_their_own_answer() {
    let server = serve(&["--slots", "4"]);
    let port = server.port;
    // Alone first: the answer each request gets by itself.
    let alone: Vec<String> = (0..16u64)
        .map(|i| post(port, "/v1/completions", &completion(&format!("Client {i} says"), i, 10, false)).1["choices"][0]["text"].as_str().unwrap().to_string())
        .collect();
    let handles: Vec<_> = (0..16u64)
        .map(|i| {
            std::thread::spawn(move || {
                let body = completion(&format!("Client {i} says"), i, 10, i % 2 == 0);
                match i % 4 {
                    // Leaves after the first event.
                    3 => {
                        let s = request(port, "POST", "/v1/completions", &json!({"prompt": "bye", "max_tokens": 100, "stream": true, "seed": i}).to_string()).unwrap();
                        let mut line = String::new();
                        BufReader::new(s).read_line(&mut line).unwrap();
                        None
                    }
                    0 | 2 => Some(streamed_text(&stream_events(port, "/v1/completions", &body))),
                    _ => Some(post(port, "/v1/completions", &body).1["choices"][0]["text"].as_str().unwrap().to_string()),
                }
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        if let Some(text) = h.join().unwrap() {
            assert_eq!(text, alone[i], "client {i}");
        }
    }
    // Everyone is gone: the slots empty out.
    let t0 = Instant::now();
    loop {
        let health: Value = serde_json::from_str(&get(port, "/health").unwrap().1).unwrap();
        if health["active"] == 0 {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "slots still busy: {health}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn chat_completions_plain_and_streamed() {
    let server = serve(&[]);
    let body = json!({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}], "max_tokens": 6, "seed": 1, "logprobs": true, "top_logprobs": 2});
    let (status, v) = post(server.port, "/v1/chat/completions", &body);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["role"], "assistant");
    let lps = v["choices"][0]["logprobs"]["content"].as_array().unwrap();
    assert_eq!(lps.len(), 6);
    assert_eq!(lps[0]["top_logprobs"].as_array().unwrap().len(), 2);
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let events = stream_events(server.port, "/v1/chat/completions", &streamed);
    assert_eq!(streamed_text(&events), v["choices"][0]["message"]["content"].as_str().unwrap());
}

#[test]
fn bad_requests_are_400s_and_the_server_keeps_serving() {
    let server = serve(&[]);
    let port = server.port;
    let cases: Vec<(&str, String, &str)> = vec![
        ("/v1/completions", "{not json".into(), "invalid request body"),
        ("/v1/completions", json!({"prompt": "x", "max_tokens": "ten"}).to_string(), "invalid type"),
        ("/v1/completions", json!({"prompt": "x", "temperature": -1}).to_string(), "temperature"),
        ("/v1/completions", json!({"prompt": "x", "top_p": 0}).to_string(), "top_p"),
        ("/v1/completions", json!({"prompt": "x", "logit_bias": {"999999": 1}}).to_string(), "logit_bias"),
        ("/v1/completions", json!({"prompt": "x ".repeat(200), "max_tokens": 16}).to_string(), "max_tokens"),
        // 2⁶⁴−1 once wrapped the length check round and stopped the whole server.
        ("/v1/completions", json!({"prompt": "x", "max_tokens": u64::MAX}).to_string(), "max_tokens"),
        ("/v1/chat/completions", json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": u64::MAX}).to_string(), "max_tokens"),
        ("/v1/completions", json!({"prompt": "x", "n": 2}).to_string(), "n = 2"),
        ("/v1/chat/completions", json!({"messages": []}).to_string(), "messages"),
        ("/v1/chat/completions", json!({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}).to_string(), "top_logprobs"),
    ];
    for (path, body, want) in &cases {
        let (status, text) = read_response(request(port, "POST", path, body).unwrap());
        assert_eq!(status, 400, "{body}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(v["error"]["message"].as_str().unwrap().contains(want), "{body}: {text}");
    }
    assert_eq!(get(port, "/nope").unwrap().0, 404);
    assert_eq!(read_response(request(port, "POST", "/health", "").unwrap()).0, 405);
    let (status, _) = post(port, "/v1/completions", &completion("still here", 1, 3, false));
    assert_eq!(status, 200);
}

/// Start a long streamed completion and read its first event, so it holds a slot; the
/// slot frees when the returned reader is dropped.
fn occupy_a_slot(port: u16) -> BufReader<TcpStream> {
    let long = json!({"prompt": "a", "max_tokens": 120, "stream": true, "seed": 1});
    let s = request(port, "POST", "/v1/completions", &long.to_string()).unwrap();
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    while !line.starts_with("data:") {
        line.clear();
        reader.read_line(&mut line).unwrap();
    }
    reader
}

#[test]
fn a_full_queue_is_a_503_and_a_leaving_client_frees_its_slot() {
    let server = serve(&["--slots", "1", "--queue", "1"]);
    let port = server.port;
    // Occupy the only slot with a long stream.
    let reader = occupy_a_slot(port);
    // One request waits in the queue; the next one is refused.
    let queued = std::thread::spawn(move || post(port, "/v1/completions", &json!({"prompt": "b", "max_tokens": 2, "seed": 2})));
    std::thread::sleep(Duration::from_millis(200));
    let (status, v) = post(port, "/v1/completions", &json!({"prompt": "c", "max_tokens": 2}));
    assert_eq!(status, 503, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("busy"));
    // The streaming client leaves: its slot frees and the queued request completes.
    drop(reader);
    let (status, v) = queued.join().unwrap();
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["usage"]["completion_tokens"], 2);
}

/// `--queue 0` takes a request while a slot is free and refuses one only when every slot
/// is busy (it used to refuse everything).
#[test]
fn queue_zero_serves_while_a_slot_is_free() {
    let server = serve(&["--slots", "1", "--queue", "0"]);
    let port = server.port;
    let (status, v) = post(port, "/v1/completions", &json!({"prompt": "a", "max_tokens": 2, "seed": 1}));
    assert_eq!(status, 200, "{v}");
    let reader = occupy_a_slot(port);
    let (status, v) = post(port, "/v1/completions", &json!({"prompt": "c", "max_tokens": 2}));
    assert_eq!(status, 503, "{v}");
    drop(reader);
    // The slot frees within a step or so of the stream's reader leaving.
    let mut status = 0;
    for _ in 0..50 {
        status = post(port, "/v1/completions", &json!({"prompt": "d", "max_tokens": 2, "seed": 4})).0;
        if status == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(status, 200, "the freed slot takes a new request");
}

#[test]
fn ctrl_c_finishes_the_request_in_flight_then_exits() {
    let mut server = serve(&[]);
    let port = server.port;
    let inflight = std::thread::spawn(move || stream_events(port, "/v1/completions", &json!({"prompt": "z", "max_tokens": 60, "stream": true, "seed": 3})));
    std::thread::sleep(Duration::from_millis(300));
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let events = inflight.join().unwrap();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "the request in flight completes");
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");
}

/// `/tokenize` and `/detokenize` (llama-server's shapes) round-trip a text, give pieces on
/// request, and refuse bad input with a 400 naming the field.
#[test]
fn tokenize_and_detokenize_round_trip() {
    let server = serve(&[]);
    let port = server.port;
    let text = "Hello, world! Café \u{1F680}";
    let (status, v) = post(port, "/tokenize", &json!({"content": text}));
    assert_eq!(status, 200, "{v}");
    let ids: Vec<u64> = v["tokens"].as_array().unwrap().iter().map(|t| t.as_u64().unwrap()).collect();
    assert!(ids.len() > 3, "{v}");
    let (status, back) = post(port, "/detokenize", &json!({"tokens": ids}));
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["content"], text);
    let (status, p) = post(port, "/tokenize", &json!({"content": "Hello world", "with_pieces": true}));
    assert_eq!(status, 200, "{p}");
    let pieces: String = p["tokens"].as_array().unwrap().iter().map(|t| t["piece"].as_str().unwrap().to_string()).collect();
    assert_eq!(pieces, "Hello world");
    assert!(p["tokens"][0]["id"].is_u64(), "{p}");
    let (status, e) = post(port, "/detokenize", &json!({"tokens": [u32::MAX]}));
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["param"], "tokens", "{e}");
    let (status, e) = post(port, "/tokenize", &json!({"text": "x"}));
    assert_eq!(status, 400, "{e}");
    assert!(e["error"]["message"].as_str().unwrap().contains("content"), "{e}");
    assert_eq!(get(port, "/tokenize").unwrap().0, 405);
}

/// `echo` with `logprobs` on /v1/completions — what lm-evaluation-harness's
/// `local-completions` sends to score a continuation (token-id prompt, `max_tokens` 0 or
/// 1): the prompt's tokens come back with their log-probs (the first null), equal to
/// `kiln score`'s, with alternatives and text offsets; `max_tokens` 1 adds one token.
#[test]
fn echo_returns_the_prompt_log_probs_kiln_score_computes() {
    let server = serve(&[]);
    let port = server.port;
    let text = "The capital of France is Paris.";
    let (_, t) = post(port, "/tokenize", &json!({"content": text}));
    let ids: Vec<u64> = t["tokens"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    let (status, v) = post(port, "/v1/completions", &json!({"prompt": ids, "max_tokens": 0, "echo": true, "logprobs": 2, "temperature": 0}));
    assert_eq!(status, 200, "{v}");
    let choice = &v["choices"][0];
    assert_eq!(choice["text"], text);
    let lp = &choice["logprobs"];
    let token_lps = lp["token_logprobs"].as_array().unwrap();
    assert_eq!(token_lps.len(), ids.len());
    assert!(token_lps[0].is_null() && lp["top_logprobs"][0].is_null(), "{lp}");
    assert_eq!(lp["text_offset"][0], 0);
    assert_eq!(v["usage"]["completion_tokens"], 0);
    // kiln score on the same text scores the same tokens (the first has no context).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("text.txt");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kiln")).args(["score", "-m", MODEL, "--json", "--text"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let score: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = score["token_logprobs"].as_array().unwrap();
    assert_eq!(want.len(), ids.len() - 1);
    for (i, (got, want)) in token_lps[1..].iter().zip(want).enumerate() {
        let (g, w) = (got.as_f64().unwrap(), want.as_f64().unwrap());
        assert!((g - w).abs() < 1e-4, "token {}: echo {g} vs kiln score {w}", i + 1);
        let top = lp["top_logprobs"][i + 1].as_object().unwrap();
        assert!(!top.is_empty() && top.len() <= 2, "{top:?}");
        let best = top.values().map(|x| x.as_f64().unwrap()).fold(f64::NEG_INFINITY, f64::max);
        assert!(best >= g - 1e-6, "token {}: the top alternative ({best}) is at least the token's ({g})", i + 1);
    }
    // max_tokens 1: the prompt, then one generated token.
    let (status, v) = post(port, "/v1/completions", &json!({"prompt": text, "max_tokens": 1, "echo": true, "logprobs": 1, "temperature": 0}));
    assert_eq!(status, 200, "{v}");
    let choice = &v["choices"][0];
    assert!(choice["text"].as_str().unwrap().starts_with(text), "{choice}");
    assert_eq!(choice["logprobs"]["tokens"].as_array().unwrap().len(), ids.len() + 1);
    assert_eq!(v["usage"]["completion_tokens"], 1);
    // Echo without logprobs: the text only.
    let (status, v) = post(port, "/v1/completions", &json!({"prompt": text, "max_tokens": 0, "echo": true}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["text"], text);
    assert!(v["choices"][0]["logprobs"].is_null());
    let (status, e) = post(port, "/v1/completions", &json!({"prompt": text, "echo": true, "stream": true}));
    assert_eq!(status, 400, "{e}");
    assert_eq!(e["error"]["param"], "echo");
}
