//! `kiln serve` against a real HTTP client on loopback (a tiny checkpoint): completions
//! plain and streamed equal `kiln generate` for the same seed; 16 concurrent clients (some
//! streaming, some leaving early) each get their own complete answer; a client that
//! leaves frees its slot; a full queue is a 503; bad requests are 400s naming the
//! parameter and the server keeps serving; Ctrl-C and SIGTERM finish the requests in
//! flight and exit 0; /tokenize, /detokenize; echo with the prompt's log-probs; n > 1 and
//! batched prompts; /metrics; the API key.

mod serve_common;

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use serve_common::*;

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
fn bad_requests_are_400s_naming_the_parameter_and_the_server_keeps_serving() {
    let server = serve(&[]);
    let port = server.port;
    // (path, body, what the message says, the parameter named)
    let cases: Vec<(&str, String, &str, Option<&str>)> = vec![
        ("/v1/completions", "{not json".into(), "invalid request body", None),
        ("/v1/completions", json!({"prompt": "x", "max_tokens": "ten"}).to_string(), "invalid type", Some("max_tokens")),
        ("/v1/completions", json!({"prompt": "x", "temperature": -1}).to_string(), "temperature", Some("temperature")),
        ("/v1/completions", json!({"prompt": "x", "top_p": 0}).to_string(), "top_p", Some("top_p")),
        ("/v1/completions", json!({"prompt": "x", "logit_bias": {"999999": 1}}).to_string(), "logit_bias", Some("logit_bias")),
        ("/v1/completions", json!({"prompt": "x ".repeat(200), "max_tokens": 16}).to_string(), "max_tokens", Some("prompt")),
        // 2⁶⁴−1 once wrapped the length check round and stopped the whole server.
        ("/v1/completions", json!({"prompt": "x", "max_tokens": u64::MAX}).to_string(), "max_tokens", Some("max_tokens")),
        ("/v1/completions", json!({"prompt": "x", "max_tokens": 4_000_000_000u64}).to_string(), "max_tokens", Some("max_tokens")),
        ("/v1/chat/completions", json!({"messages": [{"role": "user", "content": "x"}], "max_tokens": u64::MAX}).to_string(), "max_tokens", Some("max_tokens")),
        ("/v1/completions", json!({"prompt": "x", "n": 17}).to_string(), "n", Some("n")),
        ("/v1/completions", json!({"prompt": "x", "n": 0}).to_string(), "n", Some("n")),
        ("/v1/completions", json!({"prompt": "x", "seed": 1.5}).to_string(), "seed", Some("seed")),
        ("/v1/completions", json!({"prompt": "x", "logprobs": 21}).to_string(), "logprobs", Some("logprobs")),
        ("/v1/completions", json!({"prompt": "x", "frequency_penalty": 1e300}).to_string(), "frequency_penalty", Some("frequency_penalty")),
        ("/v1/completions", json!({"prompt": "x", "presence_penalty": "a"}).to_string(), "presence_penalty", Some("presence_penalty")),
        ("/v1/completions", json!({"prompt": "x", "logit_bias": {"5": 101}}).to_string(), "logit_bias", Some("logit_bias")),
        ("/v1/completions", json!({"prompt": "x", "logit_bias": {"x": 1}}).to_string(), "logit_bias", Some("logit_bias")),
        ("/v1/completions", json!({"prompt": [5, 99999]}).to_string(), "out of range", Some("prompt")),
        ("/v1/completions", json!({"prompt": ["ok", [1, -2]]}).to_string(), "prompt[1]", Some("prompt[1]")),
        ("/v1/chat/completions", json!({"messages": []}).to_string(), "messages", Some("messages")),
        ("/v1/chat/completions", json!({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2}).to_string(), "top_logprobs", Some("top_logprobs")),
    ];
    for (path, body, want, param) in &cases {
        let (status, text) = read_response(request(port, "POST", path, body).unwrap());
        assert_eq!(status, 400, "{body}: {text}");
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(v["error"]["message"].as_str().unwrap().contains(want), "{body}: {text}");
        assert_eq!(v["error"]["type"], "invalid_request_error", "{text}");
        assert_eq!(v["error"]["param"].as_str(), *param, "{body}: {text}");
        assert!(v["error"].as_object().unwrap().contains_key("code"), "OpenAI's shape: {text}");
    }
    let (status, body) = get(port, "/nope").unwrap();
    assert_eq!(status, 404);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["error"]["type"], "not_found_error", "{body}");
    let (status, body) = read_response(request(port, "POST", "/health", "").unwrap());
    assert_eq!(status, 405);
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"]["message"].is_string(), "{body}");
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

/// Ctrl-C and SIGTERM: the requests in flight (streamed and not) finish, every byte of
/// their answers is written, then the server exits 0.
#[test]
fn ctrl_c_and_sigterm_finish_the_requests_in_flight_then_exit() {
    for signal in ["INT", "TERM"] {
        let mut server = serve(&[]);
        let port = server.port;
        let streamed = std::thread::spawn(move || stream_events(port, "/v1/completions", &json!({"prompt": "z", "max_tokens": 60, "stream": true, "seed": 3})));
        let plain = std::thread::spawn(move || post(port, "/v1/completions", &json!({"prompt": "y", "max_tokens": 60, "seed": 4})));
        std::thread::sleep(Duration::from_millis(300));
        server.signal(signal);
        let events = streamed.join().unwrap();
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{signal}: the stream in flight completes");
        let (status, v) = plain.join().unwrap();
        assert_eq!(status, 200, "{signal}: {v}");
        assert_eq!(v["usage"]["completion_tokens"], 60);
        let status = server.child.wait().unwrap();
        assert!(status.success(), "{signal}: exit status {status:?}\n{}", server.log());
        assert!(server.log().contains("stopped"), "{}", server.log());
    }
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
    // Streamed echo: the first chunk is the prompt with its log-probs, then the tokens;
    // joined, the chunks are the plain answer (text, tokens, log-probs, text offsets).
    for max_tokens in [0, 4] {
        let body = json!({"prompt": text, "max_tokens": max_tokens, "echo": true, "logprobs": 2, "temperature": 0});
        let (status, plain) = post(port, "/v1/completions", &body);
        assert_eq!(status, 200, "{plain}");
        let mut streamed = body.clone();
        streamed["stream"] = json!(true);
        let events = stream_events(port, "/v1/completions", &streamed);
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
        let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
        let first = &chunks[0]["choices"][0];
        assert_eq!(first["text"], text, "{first}");
        assert_eq!(first["logprobs"]["tokens"].as_array().unwrap().len(), ids.len(), "{first}");
        let (mut joined, mut tokens, mut lps, mut offsets) = (String::new(), vec![], vec![], vec![]);
        for c in &chunks {
            let choice = &c["choices"][0];
            joined.push_str(choice["text"].as_str().unwrap());
            if let Some(lp) = choice["logprobs"].as_object() {
                tokens.extend(lp["tokens"].as_array().unwrap().iter().cloned());
                lps.extend(lp["token_logprobs"].as_array().unwrap().iter().cloned());
                offsets.extend(lp["text_offset"].as_array().unwrap().iter().cloned());
            }
        }
        let want = &plain["choices"][0];
        assert_eq!(joined, want["text"].as_str().unwrap(), "max_tokens {max_tokens}");
        assert_eq!(tokens, *want["logprobs"]["tokens"].as_array().unwrap(), "max_tokens {max_tokens}");
        assert_eq!(offsets, *want["logprobs"]["text_offset"].as_array().unwrap(), "max_tokens {max_tokens}");
        let want_lps = want["logprobs"]["token_logprobs"].as_array().unwrap();
        assert_eq!(lps.len(), want_lps.len());
        for (g, w) in lps.iter().zip(want_lps) {
            assert!(g.is_null() == w.is_null() && (g.as_f64().unwrap_or(0.0) - w.as_f64().unwrap_or(0.0)).abs() < 1e-5, "{g} vs {w}");
        }
        assert_eq!(chunks.last().unwrap()["choices"][0]["finish_reason"], "length", "{chunks:?}");
    }
}

/// `kiln score --context C --answer A --json`.
fn kiln_score(context: &str, answer: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_kiln")).args(["score", "-m", MODEL, "--context", context, "--answer", answer, "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ids_of(port: u16, text: &str) -> Vec<u64> {
    let (status, v) = post(port, "/tokenize", &json!({"content": text}));
    assert_eq!(status, 200, "{v}");
    v["tokens"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect()
}

/// The request lm-evaluation-harness' `local-completions` sends to score a
/// multiple-choice answer (token ids, echo, logprobs 1, max_tokens 1, temperature 0),
/// read as it reads it: the answer's log-likelihood is the sum of
/// `token_logprobs[ctxlen:-1]`.
#[test]
fn echo_logprobs_of_a_token_id_prompt_equal_kiln_score() {
    let server = serve(&[]);
    let port = server.port;
    for (context, answer) in [("The capital of France is", " Paris"), ("One, two, three,", " four five")] {
        let want = kiln_score(context, answer);
        let ctx = ids_of(port, context);
        let whole: Vec<u64> = want["ids"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
        assert_eq!(&whole[..ctx.len()], &ctx[..], "the context's ids start the scored ids");
        let body = json!({"model": "tiny", "prompt": [whole], "temperature": 0, "max_tokens": 1, "logprobs": 1, "seed": 1234, "echo": true});
        let (status, v) = post(port, "/v1/completions", &body);
        assert_eq!(status, 200, "{v}");
        let lp = &v["choices"][0]["logprobs"];
        let token_logprobs = lp["token_logprobs"].as_array().unwrap();
        assert_eq!(token_logprobs.len(), whole.len() + 1, "prompt tokens then the generated one");
        assert!(token_logprobs[0].is_null() && lp["top_logprobs"][0].is_null());
        let got: f64 = token_logprobs[ctx.len()..token_logprobs.len() - 1].iter().map(|x| x.as_f64().unwrap()).sum();
        let expected = want["answer_logprob"].as_f64().unwrap();
        assert!((got - expected).abs() < 1e-4, "{context:?} {answer:?}: served {got}, kiln score {expected}");
        // Every prompt position: its top-1 alternative, and the greedy check lm-eval makes.
        for (i, top) in lp["top_logprobs"].as_array().unwrap().iter().enumerate().skip(1) {
            let best = top.as_object().unwrap().values().map(|x| x.as_f64().unwrap()).fold(f64::NEG_INFINITY, f64::max);
            assert!(best >= token_logprobs[i].as_f64().unwrap() - 1e-6, "position {i}: {top}");
        }
        let text = v["choices"][0]["text"].as_str().unwrap();
        assert!(text.starts_with(&format!("{context}{answer}")), "echo starts with the prompt: {text:?}");
        assert_eq!(lp["text_offset"].as_array().unwrap().len(), whole.len() + 1);
    }
    // max_tokens 0: the prompt alone.
    let (status, v) = post(port, "/v1/completions", &json!({"prompt": "One, two", "max_tokens": 0, "echo": true, "logprobs": 0}));
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["usage"]["completion_tokens"], 0);
    assert_eq!(v["choices"][0]["text"], "One, two");
}

#[test]
fn n_choices_and_batched_prompts_are_independent_samples() {
    let server = serve(&["--slots", "3"]);
    let port = server.port;
    let solo = |prompt: &str, seed: u64| post(port, "/v1/completions", &completion(prompt, seed, 8, false)).1["choices"][0]["text"].as_str().unwrap().to_string();
    let mut body = completion("Hello there", 7, 8, false);
    body["n"] = json!(3);
    let (status, v) = post(port, "/v1/completions", &body);
    assert_eq!(status, 200, "{v}");
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3);
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i);
        assert_eq!(c["text"].as_str().unwrap(), solo("Hello there", 7 + i as u64), "choice {i} = seed + {i}");
    }
    assert_eq!(v["usage"]["completion_tokens"], 24);
    let mut batched = completion("", 3, 8, false);
    batched["prompt"] = json!(["First prompt", "Second prompt"]);
    let (status, v) = post(port, "/v1/completions", &batched);
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["choices"][0]["text"].as_str().unwrap(), solo("First prompt", 3));
    assert_eq!(v["choices"][1]["text"].as_str().unwrap(), solo("Second prompt", 3));
    // Streamed, the choices interleave; each one's text is its own.
    body["stream"] = json!(true);
    let events = stream_events(port, "/v1/completions", &body);
    for i in 0..3 {
        assert_eq!(streamed_text_of(&events, i), solo("Hello there", 7 + i as u64));
    }
}

#[test]
fn metrics_and_the_api_key() {
    let server = serve_with_env(&[], &[("KILN_API_KEY", "sesame")]);
    let port = server.port;
    let (status, v) = post(port, "/tokenize", &json!({"content": "Hello world"}));
    assert_eq!(status, 401, "{v}");
    assert_eq!(v["error"]["type"], "authentication_error");
    assert_eq!(get(port, "/health").unwrap().0, 200, "/health needs no key");
    let (status, v) = post_auth(port, "/tokenize", &json!({"content": "Hello world", "with_pieces": true}), "sesame");
    assert_eq!(status, 200, "{v}");
    let ids: Vec<Value> = v["tokens"].as_array().unwrap().iter().map(|t| t["id"].clone()).collect();
    let pieces: String = v["tokens"].as_array().unwrap().iter().map(|t| t["piece"].as_str().unwrap()).collect();
    assert_eq!(pieces, "Hello world");
    let (status, v) = post_auth(port, "/detokenize", &json!({"tokens": ids}), "sesame");
    assert_eq!((status, v["content"].as_str()), (200, Some("Hello world")));
    let (status, v) = post_auth(port, "/v1/completions", &completion("Hi", 1, 3, false), "sesame");
    assert_eq!(status, 200, "{v}");
    let (status, v) = post_auth(port, "/v1/completions", &completion("Hi", 1, 3, false), "wrong");
    assert_eq!(status, 401, "{v}");
    let auth = "Authorization: Bearer sesame";
    let (status, text) = read_response(request_with(port, "GET", "/metrics", &[auth], "").unwrap());
    assert_eq!(status, 200);
    for series in ["kiln_requests_total", "kiln_generated_tokens_total", "kiln_time_to_first_token_seconds_bucket", "kiln_time_per_output_token_seconds_bucket", "kiln_queue_depth", "kiln_slots_busy", "process_resident_memory_bytes"] {
        assert!(text.contains(series), "{series} missing from /metrics:\n{text}");
    }
    assert!(text.contains("kiln_requests_total{route=\"/v1/completions\",status=\"401\"} 1"), "{text}");
    assert!(text.contains("kiln_generated_tokens_total 3"), "{text}");
}

/// CORS is off unless `--cors-origin` names the origin (then preflights and answers carry
/// it, and a preflight needs no API key); `RUST_LOG=info` logs every request through
/// tracing.
#[test]
fn cors_only_for_the_named_origin_and_requests_logged_with_rust_log() {
    let preflight = ["Origin: http://app.test", "Access-Control-Request-Method: POST", "Access-Control-Request-Headers: content-type"];
    let plain = serve(&[]);
    let (_, head, _) = read_full(request_with(plain.port, "OPTIONS", "/v1/completions", &preflight, "").unwrap()).unwrap();
    assert!(!head.to_ascii_lowercase().contains("access-control-allow-origin"), "CORS is off by default: {head}");
    let (_, head, _) = read_full(request_with(plain.port, "GET", "/v1/models", &["Origin: http://app.test"], "").unwrap()).unwrap();
    assert!(!head.to_ascii_lowercase().contains("access-control-allow-origin"), "{head}");
    drop(plain);

    let server = serve_with_env(&["--cors-origin", "http://app.test", "--api-key", "sesame"], &[("RUST_LOG", "info")]);
    let port = server.port;
    let (status, head, _) = read_full(request_with(port, "OPTIONS", "/v1/completions", &preflight, "").unwrap()).unwrap();
    assert!(status < 300, "preflight: {head}");
    assert!(head.to_ascii_lowercase().contains("access-control-allow-origin: http://app.test"), "{head}");
    let auth = "Authorization: Bearer sesame";
    let (status, head, _) = read_full(request_with(port, "GET", "/v1/models", &["Origin: http://app.test", auth], "").unwrap()).unwrap();
    assert_eq!(status, 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("access-control-allow-origin: http://app.test"), "{head}");
    let (_, head, _) = read_full(request_with(port, "GET", "/v1/models", &["Origin: http://evil.test", auth], "").unwrap()).unwrap();
    assert!(!head.to_ascii_lowercase().contains("access-control-allow-origin"), "another origin is not allowed: {head}");
    let t0 = Instant::now();
    while !server.log().contains("finished processing request") {
        assert!(t0.elapsed() < Duration::from_secs(5), "no request log with RUST_LOG=info:\n{}", server.log());
        std::thread::sleep(Duration::from_millis(50));
    }
}
