//! Failures stay with their request: `kiln serve --inject-fault SEED:TOKENS` (a hidden
//! test hook) fails the sequences sampled with SEED after TOKENS tokens (0: on admission)
//! through the path a sequence the engine fails alone takes. A non-streamed request
//! gets a 500 with OpenAI's error body; a streamed one gets its tokens, then an SSE error
//! event, then `[DONE]`; the requests beside it get exactly their solo answers; the
//! server keeps serving. And a client that disconnects mid-generation, streaming or not,
//! frees its slot at once.

mod serve_common;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use serve_common::*;

fn text_of(v: &Value) -> String {
    v["choices"][0]["text"].as_str().unwrap_or_else(|| panic!("no text: {v}")).to_string()
}

#[test]
fn a_failing_sequence_ends_alone_and_the_server_goes_on() {
    let server = serve(&["--slots", "4", "--inject-fault", "666:3", "--inject-fault", "667:0"]);
    let port = server.port;
    let solo: Vec<String> = (1..=4u64).map(|seed| text_of(&post(port, "/v1/completions", &completion(&format!("Neighbour {seed}"), seed, 12, false)).1)).collect();
    for round in 0..2 {
        let neighbours: Vec<_> = (1..=4u64)
            .map(|seed| {
                std::thread::spawn(move || {
                    let body = completion(&format!("Neighbour {seed}"), seed, 12, seed % 2 == 0);
                    if seed % 2 == 0 {
                        streamed_text(&stream_events(port, "/v1/completions", &body))
                    } else {
                        text_of(&post(port, "/v1/completions", &body).1)
                    }
                })
            })
            .collect();
        // Fails after 3 tokens, not streamed: a 500 with OpenAI's body.
        let (status, v) = post(port, "/v1/completions", &completion("Doomed", 666, 12, false));
        assert_eq!(status, 500, "round {round}: {v}");
        assert_eq!(v["error"]["type"], "server_error", "{v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("injected fault"), "{v}");
        // Fails on admission.
        let (status, v) = post(port, "/v1/completions", &completion("Refused", 667, 12, false));
        assert_eq!(status, 500, "round {round}: {v}");
        assert!(v["error"]["message"].as_str().unwrap().contains("injected fault"), "{v}");
        // Fails after 3 tokens, streamed: the 200 is out, so 3 tokens, an error event, [DONE].
        let events = stream_events(port, "/v1/completions", &completion("Doomed", 666, 12, true));
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
        let error: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
        assert_eq!(error["error"]["type"], "server_error", "{events:?}");
        assert!(error["error"]["message"].as_str().unwrap().contains("injected fault"), "{events:?}");
        let token_events = events[..events.len() - 2].iter().filter(|e| e.contains("\"text\"")).count();
        assert!(token_events <= 3, "at most the 3 tokens before the fault: {events:?}");
        // Streamed chat too.
        let chat = json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 12, "seed": 666, "stream": true});
        let events = stream_events(port, "/v1/chat/completions", &chat);
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
        assert!(events[events.len() - 2].contains("\"error\""), "{events:?}");
        for (i, h) in neighbours.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), solo[i], "round {round}: neighbour {} got its solo answer", i + 1);
        }
    }
    wait_idle(port, Duration::from_secs(10));
    assert_eq!(metric(port, "kiln_slots_busy"), 0.0);
    let (status, v) = post(port, "/v1/completions", &completion("after the faults", 1, 3, false));
    assert_eq!(status, 200, "{v}");
}

/// Generated tokens so far (`kiln_generated_tokens_total`).
fn generated(port: u16) -> f64 {
    metric(port, "kiln_generated_tokens_total")
}

/// Wait until a sequence holds the slot and has produced a few tokens.
fn wait_for_tokens(port: u16, before: f64) {
    let t0 = Instant::now();
    while generated(port) < before + 3.0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "no tokens came");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_disconnect_frees_the_slot_at_once_streaming_or_not() {
    let server = serve(&["--slots", "1"]);
    let port = server.port;
    // 120 tokens take ~0.5 s on lavapipe: long enough to leave in the middle.
    let long = |stream: bool| json!({"prompt": "a", "max_tokens": 120, "seed": 1, "stream": stream}).to_string();
    for stream in [false, true] {
        let before = generated(port);
        let s = request(port, "POST", "/v1/completions", &long(stream)).unwrap();
        if stream {
            let mut line = String::new();
            let mut reader = BufReader::new(s.try_clone().unwrap());
            while !line.starts_with("data:") {
                line.clear();
                reader.read_line(&mut line).unwrap();
            }
        }
        wait_for_tokens(port, before);
        let at_close = generated(port) - before;
        // The client closes: FIN (shutdown, so that no other handle on the socket keeps it open).
        let _ = s.shutdown(std::net::Shutdown::Both);
        drop(s);
        let idle = wait_idle(port, Duration::from_secs(10));
        let spent = generated(port) - before;
        // The server looks every 20 ms (~5 tokens here) and the slot frees at the next step.
        assert!(spent <= at_close + 40.0, "stream {stream}: {spent} tokens, {at_close} when the client left: {idle}");
        // The slot is free: the next request runs at once.
        let t0 = Instant::now();
        let (status, v) = post(port, "/v1/completions", &completion("next", 2, 2, false));
        assert_eq!(status, 200, "{v}");
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}

/// The one fatal failure: a lost device (`--inject-device-loss TOKENS`, a hidden test hook,
/// calls wgpu's `Device::destroy` once TOKENS tokens have gone out, which reports the device
/// lost as a driver reset would). Every request in flight is answered with an error that
/// says so — a 500 when nothing was sent yet, an SSE error event and `[DONE]` in a stream —
/// and the server exits non-zero naming the cause.
#[test]
fn a_lost_device_ends_every_request_with_the_reason_and_stops_the_server() {
    let mut server = serve(&["--slots", "2", "--inject-device-loss", "40"]);
    let port = server.port;
    let before = generated(port);
    assert_eq!(before, 0.0);
    // Non-streamed: 100 tokens, more than the 40 after which the device goes.
    let plain = std::thread::spawn(move || post(port, "/v1/completions", &completion("plain", 1, 100, false)));
    let t0 = Instant::now();
    while generated(port) < 1.0 {
        assert!(t0.elapsed() < Duration::from_secs(30), "no tokens came");
        std::thread::sleep(Duration::from_millis(1));
    }
    let events = stream_events(port, "/v1/completions", &completion("streamed", 2, 100, true));
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
    let error: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(error["error"]["type"], "server_error", "{events:?}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("the GPU device was lost") && message.contains("the server is stopping"), "{message}");
    let (status, v) = plain.join().unwrap();
    assert_eq!(status, 500, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("the GPU device was lost"), "{v}");
    // The server stops by itself, with an error status and the reason in its log.
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "the server kept running on a lost device: {}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "exit status {status}");
    // Its last lines may still be on their way through the pipe.
    let t0 = Instant::now();
    while !server.log().contains("kiln serve stopped: the GPU device was lost (Destroyed)") {
        assert!(t0.elapsed() < Duration::from_secs(10), "the log does not name the cause: {}", server.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}
