//! Helpers for the `kiln serve` tests: start the binary on a port the OS picks, and talk
//! to it with plain sockets (so a test controls every byte a client sends).
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/models/qwen2-tiny-tied-f32");

pub struct Server {
    pub child: Child,
    pub port: u16,
    /// Everything the server wrote to stderr so far.
    pub log: Arc<Mutex<String>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
    /// Send a signal (`INT`, `TERM`) to the server.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args([&format!("-{name}"), &pid]).status().unwrap().success());
    }
}

/// Start `kiln serve -m MODEL --port 0 EXTRA...`, read the port from its "listening"
/// line, and wait until /health answers.
pub fn serve(extra: &[&str]) -> Server {
    serve_with_env(extra, &[])
}

pub fn serve_with_env(extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["serve", "-m", MODEL, "--port", "0"])
        .args(extra)
        .env_remove("KILN_API_KEY")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let log = Arc::new(Mutex::new(String::new()));
    let port = loop {
        let Some(line) = lines.next() else {
            let _ = child.wait();
            panic!("kiln serve exited before listening: {}", log.lock().unwrap());
        };
        let line = line.unwrap();
        log.lock().unwrap().push_str(&format!("{line}\n"));
        if let Some(rest) = line.split("http://127.0.0.1:").nth(1) {
            break rest.split('/').next().unwrap().parse::<u16>().unwrap();
        }
    };
    // Keep draining the server's log so it never blocks on a full pipe.
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    let server = Server { child, port, log };
    let t0 = Instant::now();
    while get(port, "/health").is_err() {
        assert!(t0.elapsed() < Duration::from_secs(60), "the server did not come up");
        std::thread::sleep(Duration::from_millis(100));
    }
    server
}

pub fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s
}

/// Send one request with `Connection: close` and the given extra header lines.
pub fn request_with(port: u16, method: &str, path: &str, headers: &[&str], body: &str) -> std::io::Result<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n", body.len());
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body.as_bytes())?;
    Ok(s)
}

pub fn request(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<TcpStream> {
    request_with(port, method, path, &[], body)
}

/// (status, headers, body) of a complete response read to the end of the connection;
/// chunked bodies are joined.
pub fn read_full(mut s: TcpStream) -> std::io::Result<(u16, String, String)> {
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let all = String::from_utf8_lossy(&raw).into_owned();
    let Some((head, body)) = all.split_once("\r\n\r\n") else {
        return Err(std::io::Error::other(format!("no complete response: {all:?}")));
    };
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_string() };
    Ok((status, head.to_string(), body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

pub fn read_response(s: TcpStream) -> (u16, String) {
    let (status, _, body) = read_full(s).unwrap();
    (status, body)
}

pub fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let (status, _, body) = read_full(request(port, "GET", path, "")?)?;
    Ok((status, body))
}

pub fn post(port: u16, path: &str, body: &Value) -> (u16, Value) {
    let (status, text) = read_response(request(port, "POST", path, &body.to_string()).unwrap());
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

pub fn post_auth(port: u16, path: &str, body: &Value, key: &str) -> (u16, Value) {
    let auth = format!("Authorization: Bearer {key}");
    let (status, text) = read_response(request_with(port, "POST", path, &[&auth], &body.to_string()).unwrap());
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// The `data:` payloads of a streamed response, up to and including [DONE].
pub fn stream_events(port: u16, path: &str, body: &Value) -> Vec<String> {
    let (_, _, text) = read_full(request(port, "POST", path, &body.to_string()).unwrap()).unwrap();
    text.lines().filter_map(|l| l.strip_prefix("data: ").map(str::to_string)).collect()
}

/// The text of choice `index` in streamed events (completions or chat).
pub fn streamed_text_of(events: &[String], index: usize) -> String {
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .flat_map(|v| v["choices"].as_array().cloned().unwrap_or_default())
        .filter(|c| c["index"] == index)
        .filter_map(|c| c["text"].as_str().or(c["delta"]["content"].as_str()).map(str::to_string))
        .collect()
}

pub fn streamed_text(events: &[String]) -> String {
    streamed_text_of(events, 0)
}

pub fn completion(prompt: &str, seed: u64, max_tokens: usize, stream: bool) -> Value {
    json!({"model": "tiny", "prompt": prompt, "max_tokens": max_tokens, "temperature": 0.9, "top_k": 40, "seed": seed, "stream": stream})
}

pub fn health(port: u16) -> Value {
    serde_json::from_str(&get(port, "/health").unwrap().1).unwrap()
}

/// Wait until no slot is busy and nothing waits or runs.
pub fn wait_idle(port: u16, within: Duration) -> Value {
    let t0 = Instant::now();
    loop {
        let h = health(port);
        if h["slots_busy"] == 0 && h["queue_depth"] == 0 && h["requests_in_flight"] == 0 {
            return h;
        }
        assert!(t0.elapsed() < within, "the server did not go idle: {h}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The value of an unlabelled series (or the sum over a labelled one) in /metrics.
pub fn metric(port: u16, name: &str) -> f64 {
    let (_, text) = get(port, "/metrics").unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// The text `kiln generate` gives for the prompt with the settings of [`completion`].
pub fn generate_text(prompt: &str, seed: u64, max_tokens: usize) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln"))
        .args(["generate", "-m", MODEL, prompt, "--json", "--temperature", "0.9", "--top-k", "40"])
        .args(["--seed", &seed.to_string(), "--max-tokens", &max_tokens.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["text"].as_str().unwrap().to_string()
}
