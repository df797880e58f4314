//! Load with faults: 64 concurrent clients (half streaming), a quarter of them
//! disconnecting at random points (before the answer, mid-stream). Every client that
//! finishes gets exactly the answer it gets alone (same seed): none is lost or mixed up.
//! Afterwards the slots, the queue and the connections are idle again, and a second round
//! does not grow the server's memory.

mod serve_common;

use std::io::{BufRead, BufReader};
use std::time::Duration;

use serde_json::json;
use serve_common::*;

const CLIENTS: u64 = 64;

/// A small deterministic generator (the faults are the same on every run).
fn lcg(state: &mut u64) -> u64 {
    *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *state >> 33
}

fn prompt(i: u64) -> String {
    format!("Client {i} asks about")
}

/// One round: returns how many clients finished (and were checked) and how many left.
fn round(port: u16, alone: &[String], seed: u64) -> (usize, usize) {
    let mut rng = seed;
    let plans: Vec<(bool, Option<u64>)> = (0..CLIENTS)
        .map(|_| {
            let stream = lcg(&mut rng).is_multiple_of(2);
            let leave = lcg(&mut rng).is_multiple_of(4).then(|| lcg(&mut rng) % 6);
            (stream, leave)
        })
        .collect();
    let handles: Vec<_> = plans
        .into_iter()
        .enumerate()
        .map(|(i, (stream, leave))| {
            let want = alone[i].clone();
            std::thread::spawn(move || {
                let i = i as u64;
                let body = completion(&prompt(i), i, 12, stream);
                match leave {
                    Some(after) => {
                        let s = request(port, "POST", "/v1/completions", &body.to_string()).unwrap();
                        if after == 0 {
                            drop(s); // gone before the answer
                        } else {
                            let mut reader = BufReader::new(s);
                            let mut line = String::new();
                            for _ in 0..after * 2 {
                                line.clear();
                                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                    break;
                                }
                            }
                        }
                        false
                    }
                    None if stream => {
                        assert_eq!(streamed_text(&stream_events(port, "/v1/completions", &body)), want, "client {i} (streamed)");
                        true
                    }
                    None => {
                        let (status, v) = post(port, "/v1/completions", &body);
                        assert_eq!(status, 200, "client {i}: {v}");
                        assert_eq!(v["choices"][0]["text"].as_str().unwrap(), want, "client {i}");
                        assert_eq!(v["usage"]["completion_tokens"], 12);
                        true
                    }
                }
            })
        })
        .collect();
    let finished = handles.into_iter().map(|h| h.join().unwrap()).filter(|&f| f).count();
    (finished, CLIENTS as usize - finished)
}

#[test]
fn sixty_four_clients_with_disconnects_each_get_their_solo_answer() {
    let server = serve(&["--slots", "8", "--queue", "64"]);
    let port = server.port;
    let alone: Vec<String> = (0..CLIENTS)
        .map(|i| {
            let (status, v) = post(port, "/v1/completions", &completion(&prompt(i), i, 12, false));
            assert_eq!(status, 200, "{v}");
            v["choices"][0]["text"].as_str().unwrap().to_string()
        })
        .collect();
    let (finished, left) = round(port, &alone, 1);
    eprintln!("round 1: {finished} finished, {left} left early");
    assert!(left >= 8 && finished >= 32, "the fault plan: {finished} finished, {left} left");
    wait_idle(port, Duration::from_secs(30));
    let rss_after_first = metric(port, "process_resident_memory_bytes");
    let (finished, left) = round(port, &alone, 2);
    eprintln!("round 2: {finished} finished, {left} left early");
    let h = wait_idle(port, Duration::from_secs(30));
    assert_eq!(h["slots_busy"], 0);
    let t0 = std::time::Instant::now();
    while metric(port, "kiln_connections_open") > 1.0 {
        assert!(t0.elapsed() < Duration::from_secs(10), "connections still open after the clients left");
        std::thread::sleep(Duration::from_millis(50));
    }
    let rss_after_second = metric(port, "process_resident_memory_bytes");
    eprintln!("resident memory: {:.1} MiB after round 1, {:.1} MiB after round 2", rss_after_first / 1048576.0, rss_after_second / 1048576.0);
    assert!(rss_after_second < rss_after_first + 32.0 * 1048576.0, "memory grew by {:.1} MiB in a round", (rss_after_second - rss_after_first) / 1048576.0);
    let (status, _) = post(port, "/v1/completions", &json!({"prompt": "done", "max_tokens": 2}));
    assert_eq!(status, 200);
}
