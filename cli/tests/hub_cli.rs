//! `-m hf:OWNER/REPO[:FILE]` against a local server that answers like the Hugging Face
//! Hub's resolve URLs (`/{repo}/resolve/main/{file}`: ranged GETs, `ETag`, `X-Repo-Commit`,
//! `Content-Range`, 404 for absent files, 401 without the right bearer token), since the
//! real hub is not reachable here. `HF_ENDPOINT` points kiln at it, `HF_HOME` at a fresh
//! cache, `HF_TOKEN` carries the token. A model directory and a GGUF file downloaded this
//! way generate exactly what the same files give from disk; the second run downloads
//! nothing.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/models");
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
const TOKEN: &str = "hf_secret_for_tests";

/// The mock hub: files by URL path, the requests it answered (path, status), and the
/// repositories that need the bearer token.
struct Hub {
    port: u16,
    log: Arc<Mutex<Vec<(String, u16)>>>,
}

fn serve_hub(files: HashMap<String, Vec<u8>>, private: &'static [&'static str]) -> Hub {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log = Arc::new(Mutex::new(Vec::new()));
    let files = Arc::new(files);
    let log2 = log.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (files, log) = (files.clone(), log2.clone());
            std::thread::spawn(move || answer(stream, &files, private, &log));
        }
    });
    Hub { port, log }
}

fn answer(mut stream: TcpStream, files: &HashMap<String, Vec<u8>>, private: &[&str], log: &Mutex<Vec<(String, u16)>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    reader.read_line(&mut request_line).unwrap();
    let path = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    // /{owner}/{repo}/resolve/main/{file}
    let parts: Vec<&str> = path.trim_start_matches('/').splitn(5, '/').collect();
    let repo = parts.get(..2).map(|p| p.join("/")).unwrap_or_default();
    let mut reply = |status: u16, extra: String, body: &[u8]| {
        log.lock().unwrap().push((path.clone(), status));
        let reason = match status {
            206 => "Partial Content",
            401 => "Unauthorized",
            _ => "Not Found",
        };
        let head = format!("HTTP/1.1 {status} {reason}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n", body.len());
        let _ = stream.write_all(head.as_bytes());
        let _ = stream.write_all(body);
    };
    if private.contains(&repo.as_str()) && headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {TOKEN}")) {
        return reply(401, String::new(), b"Invalid credentials");
    }
    let Some(data) = (parts.len() == 5 && parts[2] == "resolve" && parts[3] == "main").then(|| files.get(&path)).flatten() else {
        return reply(404, "X-Error-Code: EntryNotFound\r\n".into(), b"Entry not found");
    };
    let (start, end) = match headers.get("range").and_then(|r| r.strip_prefix("bytes=")).and_then(|r| r.split_once('-')) {
        Some((a, b)) => (a.parse().unwrap_or(0), b.parse::<usize>().map_or(data.len(), |b| (b + 1).min(data.len()))),
        None => (0, data.len()),
    };
    let etag = format!("{:016x}{:08x}", fnv(data), data.len());
    let extra = format!(
        "ETag: \"{etag}\"\r\nX-Repo-Commit: {COMMIT}\r\nContent-Range: bytes {start}-{}/{}\r\n",
        end.max(1) - 1,
        data.len()
    );
    reply(206, extra, &data[start.min(end)..end]);
}

fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Every file of a fixture directory, under `/{repo}/resolve/main/`.
fn repo_files(repo: &str, dir: &Path, files: &mut HashMap<String, Vec<u8>>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().into_string().unwrap();
        files.insert(format!("/{repo}/resolve/main/{name}"), std::fs::read(entry.path()).unwrap());
    }
}

fn kiln(hub: &Hub, home: &Path, token: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kiln"));
    cmd.args(args).env("HF_ENDPOINT", format!("http://127.0.0.1:{}", hub.port)).env("HF_HOME", home).env_remove("HF_TOKEN");
    if let Some(t) = token {
        cmd.env("HF_TOKEN", t);
    }
    cmd.output().unwrap()
}

fn stdout_ok(out: &Output) -> String {
    assert!(out.status.success(), "kiln failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn generate_args(model: &str) -> Vec<&str> {
    vec!["generate", "-m", model, "--greedy", "--max-tokens", "8", "Hello world"]
}

#[test]
fn hub_names_download_once_and_run_like_the_local_files() {
    let mut files = HashMap::new();
    repo_files("test/qwen2-tiny", &Path::new(FIXTURES).join("qwen2-tiny-tied-f32"), &mut files);
    let gguf = std::fs::read(Path::new(FIXTURES).join("qwen3-tiny-f32.gguf")).unwrap();
    files.insert("/test/gguf/resolve/main/qwen3-tiny-f32.gguf".into(), gguf);
    repo_files("test/private", &Path::new(FIXTURES).join("gpt2-tiny-f32"), &mut files);
    let hub = serve_hub(files, &["test/private"]);
    let home = tempfile::tempdir().unwrap();

    // A model directory: the same text as from the fixture directory itself.
    let local = stdout_ok(&Command::new(env!("CARGO_BIN_EXE_kiln")).args(generate_args(&format!("{FIXTURES}/qwen2-tiny-tied-f32"))).output().unwrap());
    assert_eq!(stdout_ok(&kiln(&hub, home.path(), None, &generate_args("hf:test/qwen2-tiny"))), local);
    let weights = "/test/qwen2-tiny/resolve/main/model.safetensors";
    let fetched = |hub: &Hub| hub.log.lock().unwrap().iter().filter(|(p, s)| p == weights && *s == 206).count();
    assert!(fetched(&hub) >= 1, "{:?}", hub.log.lock().unwrap());
    // In the standard cache layout, and not downloaded again.
    assert!(home.path().join("hub/models--test--qwen2-tiny/snapshots").join(COMMIT).join("model.safetensors").is_file());
    let before = fetched(&hub);
    assert_eq!(stdout_ok(&kiln(&hub, home.path(), None, &generate_args("hf:test/qwen2-tiny"))), local);
    assert_eq!(fetched(&hub), before, "the cached weights were downloaded again");

    // One file of a repository (a GGUF).
    let local = stdout_ok(&Command::new(env!("CARGO_BIN_EXE_kiln")).args(generate_args(&format!("{FIXTURES}/qwen3-tiny-f32.gguf"))).output().unwrap());
    assert_eq!(stdout_ok(&kiln(&hub, home.path(), None, &generate_args("hf:test/gguf:qwen3-tiny-f32.gguf"))), local);

    // A gated repository: 401 without the token, named in the error; fine with HF_TOKEN.
    let out = kiln(&hub, home.path(), None, &generate_args("hf:test/private"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("hf:test/private") && err.contains("401"), "{err}");
    stdout_ok(&kiln(&hub, home.path(), Some(TOKEN), &generate_args("hf:test/private")));

    // Absent repositories and files, and malformed names, are clear errors.
    for (name, want) in [("hf:test/nope", "404"), ("hf:test/gguf:missing.gguf", "missing.gguf"), ("hf:no-owner", "hf:OWNER/REPO")] {
        let out = kiln(&hub, home.path(), None, &generate_args(name));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(name) && err.contains(want), "{name}: {err}");
    }
}
