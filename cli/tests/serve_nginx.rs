//! Scale-out behind a balancer the user runs: two `kiln serve` processes on loopback
//! behind nginx with the configuration docs/serving.md gives (written from the same
//! template). Requests reach both; streams pass through; after one server is killed,
//! every request still succeeds on the other.
//!
//! Needs Debian's `nginx` package (scripts/test.sh installs it). Without nginx the test
//! says so and passes, unless KILN_REQUIRE_NGINX=1 (set by scripts/test.sh).

mod serve_common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use serve_common::*;

/// The balancer configuration of docs/serving.md, with the test's ports and folder.
fn nginx_conf(dir: &Path, listen: u16, upstreams: &[u16]) -> String {
    let servers: String = upstreams.iter().map(|p| format!("        server 127.0.0.1:{p} max_fails=1 fail_timeout=10s;\n")).collect();
    let d = dir.display();
    format!(
        r#"worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream kiln {{
        least_conn;
{servers}        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{listen};
        client_max_body_size 8m;
        client_body_buffer_size 8m;
        location / {{
            proxy_pass http://kiln;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffering off;
            proxy_read_timeout 600s;
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 2;
        }}
    }}
}}
"#
    )
}

fn nginx_binary() -> Option<PathBuf> {
    let on_path = Command::new("sh").args(["-c", "command -v nginx"]).output().ok().filter(|o| o.status.success());
    if let Some(o) = on_path {
        return Some(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    }
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx"].iter().map(PathBuf::from).find(|p| p.exists())
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free loopback port (bound and released; nginx binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn completions_on(port: u16) -> f64 {
    let (_, text) = get(port, "/metrics").unwrap();
    text.lines()
        .filter(|l| l.starts_with("kiln_requests_total{route=\"/v1/completions\",status=\"200\"}"))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

#[test]
fn two_servers_behind_nginx_share_the_load_and_survive_one_dying() {
    let Some(nginx) = nginx_binary() else {
        assert!(std::env::var("KILN_REQUIRE_NGINX").as_deref() != Ok("1"), "KILN_REQUIRE_NGINX=1 but nginx is not installed");
        eprintln!("SKIPPED: nginx is not installed (Debian: apt-get install nginx); the balancer test did not run");
        return;
    };
    let mut a = serve(&["--slots", "2"]);
    let b = serve(&["--slots", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, nginx_conf(dir.path(), port, &[a.port, b.port])).unwrap();
    let child = Command::new(&nginx)
        .args(["-p", dir.path().to_str().unwrap(), "-c", conf.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _nginx = Nginx(child);
    let t0 = Instant::now();
    while !get(port, "/health").is_ok_and(|r| r.0 == 200) {
        let log = std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
        assert!(t0.elapsed() < Duration::from_secs(20), "nginx did not come up: {log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let want = post(a.port, "/v1/completions", &completion("Balanced", 5, 6, false)).1["choices"][0]["text"].clone();
    let (before_a, before_b) = (completions_on(a.port), completions_on(b.port));
    for _ in 0..8 {
        let (status, v) = post(port, "/v1/completions", &completion("Balanced", 5, 6, false));
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["choices"][0]["text"], want, "the same answer from either server");
    }
    let (on_a, on_b) = (completions_on(a.port) - before_a, completions_on(b.port) - before_b);
    assert!(on_a >= 1.0 && on_b >= 1.0, "requests reached only one server: {on_a} on A, {on_b} on B");
    assert_eq!(on_a + on_b, 8.0);
    // Streams pass through unbuffered, whole.
    let events = stream_events(port, "/v1/completions", &completion("Balanced", 5, 6, true));
    assert_eq!(streamed_text(&events), want.as_str().unwrap());

    // One server dies: nginx retries on the other; no request fails.
    let _ = a.child.kill();
    let _ = a.child.wait();
    for i in 0..8 {
        let (status, v) = post(port, "/v1/completions", &json!({"prompt": "Still there?", "max_tokens": 3, "seed": i}));
        assert_eq!(status, 200, "request {i} after one server died: {v}");
    }
    let events = stream_events(port, "/v1/chat/completions", &json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "stream": true}));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    drop(b);
}
