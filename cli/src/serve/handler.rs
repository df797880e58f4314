//! One HTTP connection: route it, turn an OpenAI request into an engine [`Request`], and
//! write the answer — a JSON body, or server-sent events as tokens arrive.

use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{channel, Receiver, TrySendError};
use std::time::{SystemTime, UNIX_EPOCH};

use kiln_model::gguf::chat::ChatMessage;
use kiln_sampler::engine::{Event, FinishReason, Request};
use kiln_sampler::gpu::TokenChoice;
use kiln_sampler::score::prompt_logprobs;
use kiln_sampler::stop::StopStrings;
use serde_json::{json, Value};

use super::http::{self, HttpRequest};
use super::openai::{parse, ApiError, ChatRequest, CompletionRequest, DetokenizeRequest, Generation, Prompt, TokenizeRequest};
use super::Shared;

pub fn handle(mut stream: TcpStream, shared: &Shared) {
    let req = match http::read_request(&stream) {
        Ok(r) => r,
        Err((status, message)) => {
            let _ = http::write_json(&mut stream, status, &ApiError { status, message, param: None }.body());
            return;
        }
    };
    if let Err(e) = route(&mut stream, shared, &req) {
        let _ = http::write_json(&mut stream, e.status, &e.body());
    }
}

fn route(stream: &mut TcpStream, shared: &Shared, req: &HttpRequest) -> Result<(), ApiError> {
    let not_allowed = || ApiError { status: 405, message: format!("{} is not allowed on {}", req.method, req.path), param: None };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/health") => reply(stream, json!({
            "status": if shared.shutting_down.load(Ordering::SeqCst) { "shutting_down" } else { "ok" },
            "slots": shared.slots,
            "active": shared.active.load(Ordering::SeqCst),
            "context_per_slot": shared.context,
        })),
        ("GET", "/v1/models") => reply(stream, json!({
            "object": "list",
            "data": [{"id": shared.model_id, "object": "model", "created": now(), "owned_by": "kiln"}],
        })),
        ("POST", "/v1/completions") => completions(stream, shared, &req.body),
        ("POST", "/v1/chat/completions") => chat(stream, shared, &req.body),
        ("POST", "/tokenize") => reply(stream, tokenize(shared, &req.body)?),
        ("POST", "/detokenize") => reply(stream, detokenize(shared, &req.body)?),
        (_, "/health" | "/v1/models" | "/v1/completions" | "/v1/chat/completions" | "/tokenize" | "/detokenize") => {
            Err(not_allowed())
        }
        _ => Err(ApiError { status: 404, message: format!("no route {} {}", req.method, req.path), param: None }),
    }
}

/// `{"tokens": [id, ...]}`, or `[{"id", "piece"}, ...]` with `with_pieces` (a piece is
/// the token's decoded text).
fn tokenize(shared: &Shared, body: &[u8]) -> Result<Value, ApiError> {
    let req: TokenizeRequest = parse(body)?;
    let ids = shared
        .tokenizer
        .encode_with_special(&req.content, req.add_special)
        .map_err(|e| ApiError::bad(e.to_string(), Some("content")))?;
    if !req.with_pieces {
        return Ok(json!({ "tokens": ids }));
    }
    let mut pieces = Vec::with_capacity(ids.len());
    for &id in &ids {
        let piece = shared.tokenizer.decode(&[id], false).map_err(|e| ApiError::bad(e.to_string(), Some("content")))?;
        pieces.push(json!({ "id": id, "piece": piece }));
    }
    Ok(json!({ "tokens": pieces }))
}

/// `{"content": text}` of the ids; an id outside the vocabulary is a 400.
fn detokenize(shared: &Shared, body: &[u8]) -> Result<Value, ApiError> {
    let req: DetokenizeRequest = parse(body)?;
    let content = shared.tokenizer.decode(&req.tokens, false).map_err(|e| ApiError::bad(e.to_string(), Some("tokens")))?;
    Ok(json!({ "content": content }))
}

fn reply(stream: &mut TcpStream, body: Value) -> Result<(), ApiError> {
    let _ = http::write_json(stream, 200, &body);
    Ok(())
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn completions(stream: &mut TcpStream, shared: &Shared, body: &[u8]) -> Result<(), ApiError> {
    let req: CompletionRequest = parse(body)?;
    let ids = match req.prompt {
        Prompt::Text(text) => shared.encode(&text)?,
        Prompt::Texts(texts) if texts.len() == 1 => shared.encode(&texts[0])?,
        Prompt::Texts(texts) => return Err(ApiError::bad(format!("{} prompts given: kiln takes one per request", texts.len()), Some("prompt"))),
        Prompt::Ids(ids) => ids,
    };
    let gen = req.sampling.generation(req.logprobs, 16)?;
    if !req.echo {
        return run(stream, shared, ids, gen, Endpoint::Completion, None);
    }
    if gen.stream {
        return Err(ApiError::bad("echo with stream is not supported", Some("echo")));
    }
    let echo = echo_prompt(shared, &ids, req.logprobs)?;
    if gen.max_tokens > 0 {
        return run(stream, shared, ids, gen, Endpoint::Completion, Some(echo));
    }
    // max_tokens 0: the prompt scored, nothing generated (what evaluation harnesses send).
    let out = Output { shared, endpoint: Endpoint::Completion, id: format!("cmpl-{}", shared.next_id()), created: now(), text: echo.0, logprobs: echo.1 };
    let choice = json!({"index": 0, "text": out.text, "logprobs": out.completion_logprobs(&gen), "finish_reason": "length"});
    let usage = json!({"prompt_tokens": ids.len(), "completion_tokens": 0, "total_tokens": ids.len()});
    reply(stream, json!({"id": out.id, "object": "text_completion", "created": out.created, "model": shared.model_id, "choices": [choice], "usage": usage}))
}

/// `echo`: the prompt's text and, with `logprobs` N, its tokens' entries — the first
/// with a null log-prob and alternatives (nothing comes before it), then each token's
/// log-prob given the ones before it and the N most likely tokens at its position.
fn echo_prompt(shared: &Shared, ids: &[u32], logprobs: Option<usize>) -> Result<(String, Vec<Value>), ApiError> {
    let text = shared.tokenizer.decode(ids, false).map_err(|e| ApiError::bad(e.to_string(), Some("prompt")))?;
    let Some(n) = logprobs else { return Ok((text, Vec::new())) };
    let mut entries = Vec::with_capacity(ids.len());
    if let Some(&first) = ids.first() {
        let bytes = shared.tokenizer.token_bytes(first).unwrap_or_default();
        entries.push(json!({"token": String::from_utf8_lossy(&bytes), "logprob": null, "bytes": bytes, "top_logprobs": null}));
    }
    if ids.len() >= 2 {
        let scored = prompt_logprobs(&shared.dev, &shared.model, ids, n).map_err(|e| {
            let param = if let kiln_sampler::SamplerError::Param { name, .. } = &e { name.clone() } else { "prompt".into() };
            ApiError { status: 400, message: e.to_string(), param: Some(param) }
        })?;
        for (&id, p) in ids[1..].iter().zip(scored) {
            entries.push(logprob_entry(shared, &TokenChoice { id, logprob: Some(p.logprob), top: p.top }));
        }
    }
    Ok((text, entries))
}

fn chat(stream: &mut TcpStream, shared: &Shared, body: &[u8]) -> Result<(), ApiError> {
    let req: ChatRequest = parse(body)?;
    if req.messages.is_empty() {
        return Err(ApiError::bad("messages must not be empty", Some("messages")));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        let content = match &m.content {
            Some(c) => c.text()?,
            None => String::new(),
        };
        messages.push(ChatMessage::new(m.role.clone(), content));
    }
    let Some(template) = shared.template.as_deref() else {
        return Err(ApiError::bad("this model has no chat template: use /v1/completions", Some("messages")));
    };
    let (ids, _) = kiln::chat_ids(&shared.tokenizer, template, shared.bos, &shared.eos_ids, &messages)
        .map_err(|e| ApiError::bad(format!("rendering the chat template: {e:#}"), Some("messages")))?;
    let logprobs = match (req.logprobs, req.top_logprobs) {
        (true, n) => Some(n.unwrap_or(0)),
        (false, Some(_)) => return Err(ApiError::bad("top_logprobs needs logprobs: true", Some("top_logprobs"))),
        (false, None) => None,
    };
    // OpenAI's chat default is "up to the context": here, what the slot has room for.
    let default_max = shared.context.saturating_sub(ids.len()).max(1);
    let gen = req.sampling.generation(logprobs, default_max)?;
    run(stream, shared, ids, gen, Endpoint::Chat, None)
}

#[derive(Clone, Copy, PartialEq)]
enum Endpoint {
    Completion,
    Chat,
}

/// Queue the request, then stream or collect its tokens; `echo` (text, log-prob entries)
/// goes before them.
fn run(
    stream: &mut TcpStream,
    shared: &Shared,
    prompt: Vec<u32>,
    gen: Generation,
    endpoint: Endpoint,
    echo: Option<(String, Vec<Value>)>,
) -> Result<(), ApiError> {
    shared.validate(&prompt, &gen)?;
    let mut stops = StopStrings::new(&gen.stop).map_err(|e| ApiError::bad(e.to_string(), Some("stop")))?;
    let (tx, rx) = channel();
    let prompt_tokens = prompt.len();
    let request = Request { prompt, params: gen.params.clone(), max_tokens: gen.max_tokens, eos_ids: shared.eos_ids.clone(), events: tx };
    if shared.shutting_down.load(Ordering::SeqCst) {
        return Err(ApiError { status: 503, message: "the server is shutting down".into(), param: None });
    }
    // Admission: sequences in slots plus requests waiting stay within slots + queue (with
    // --queue 0, a request is taken only while a slot is free).
    let busy = || ApiError {
        status: 503,
        message: format!("all {} slots are busy and the queue of {} is full: retry later", shared.slots, shared.queue_len),
        param: None,
    };
    let waiting = shared.waiting.fetch_add(1, Ordering::SeqCst);
    if waiting + shared.active.load(Ordering::SeqCst) >= shared.slots + shared.queue_len {
        shared.waiting.fetch_sub(1, Ordering::SeqCst);
        return Err(busy());
    }
    match shared.queue.try_send(request) {
        Ok(()) => {}
        Err(e) => {
            shared.waiting.fetch_sub(1, Ordering::SeqCst);
            return Err(match e {
                TrySendError::Full(_) => busy(),
                TrySendError::Disconnected(_) => ApiError { status: 503, message: "the engine has stopped".into(), param: None },
            });
        }
    }

    let id = format!("{}-{}", if endpoint == Endpoint::Chat { "chatcmpl" } else { "cmpl" }, shared.next_id());
    let (text, logprobs) = echo.unwrap_or_default();
    let mut out = Output { shared, endpoint, id, created: now(), text, logprobs };
    if !gen.stream {
        return respond(stream, &mut out, &gen, rx, &mut stops, prompt_tokens);
    }
    http::start_events(stream).map_err(|_| ApiError::bad("client gone", None))?;
    if let Err(e) = respond(stream, &mut out, &gen, rx, &mut stops, prompt_tokens) {
        // The 200 and its headers are sent: the error goes as a last event, then [DONE].
        let _ = http::write_event(stream, &e.body().to_string());
        let _ = http::write_event(stream, "[DONE]");
    }
    Ok(())
}

/// An engine-side failure of one request (its sampling or decoding), as a 500.
fn server_error(message: impl Into<String>) -> ApiError {
    ApiError { status: 500, message: message.into(), param: None }
}

/// Collect or stream the request's tokens as the engine sends them, then the finish.
fn respond(
    stream: &mut TcpStream,
    out: &mut Output,
    gen: &Generation,
    rx: Receiver<Event>,
    stops: &mut StopStrings,
    prompt_tokens: usize,
) -> Result<(), ApiError> {
    let shared = out.shared;
    let mut decoder = shared.tokenizer.stream(true);
    if gen.stream && out.endpoint == Endpoint::Chat && out.event(stream, Some(""), None, None).is_err() {
        return Ok(());
    }
    let mut completion_tokens = 0;
    let mut finish = None;
    let mut stopped_by_string = false;
    for event in rx.iter() {
        match event {
            Event::Token(t) => {
                completion_tokens += 1;
                let piece = decoder.push(t.id).map_err(|e| server_error(e.to_string()))?;
                let (shown, stopped) = stops.push(&piece);
                let lp = gen.params.logprobs.is_some().then(|| out.logprob_entry(&t));
                if gen.stream {
                    if (!shown.is_empty() || lp.is_some()) && out.event(stream, Some(&shown), lp.as_ref(), None).is_err() {
                        return Ok(()); // the client left: dropping `rx` frees the slot
                    }
                } else {
                    out.text.push_str(&shown);
                    out.logprobs.extend(lp);
                }
                if stopped {
                    stopped_by_string = true;
                    break;
                }
            }
            Event::Done { reason, .. } => {
                finish = Some(reason);
                break;
            }
            Event::Error(message) => return Err(server_error(message)),
        }
    }
    drop(rx);
    if stopped_by_string {
        finish = Some(FinishReason::Stop);
    } else {
        // The engine drops a request's channel only after Done or Error (or when it fails
        // or stops): without Done the request did not finish.
        if finish.is_none() {
            return Err(server_error("the engine stopped before finishing this request"));
        }
        let tail = decoder.finish().map_err(|e| server_error(e.to_string()))?;
        let (shown, _) = stops.push(&tail);
        let rest = shown + &stops.finish();
        if gen.stream {
            if !rest.is_empty() && out.event(stream, Some(&rest), None, None).is_err() {
                return Ok(());
            }
        } else {
            out.text.push_str(&rest);
        }
    }
    let reason = match finish {
        Some(FinishReason::Stop) => "stop",
        _ => "length",
    };
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
    if gen.stream {
        let _ = out.event(stream, None, None, Some(reason));
        if gen.include_usage {
            let _ = http::write_event(stream, &json!({"id": out.id, "object": out.chunk_object(), "created": out.created, "model": shared.model_id, "choices": [], "usage": usage}).to_string());
        }
        let _ = http::write_event(stream, "[DONE]");
        return Ok(());
    }
    let choice = match out.endpoint {
        Endpoint::Completion => json!({"index": 0, "text": out.text, "logprobs": out.completion_logprobs(gen), "finish_reason": reason}),
        Endpoint::Chat => json!({
            "index": 0,
            "message": {"role": "assistant", "content": out.text},
            "logprobs": gen.params.logprobs.map(|_| json!({"content": out.logprobs})),
            "finish_reason": reason,
        }),
    };
    let object = if out.endpoint == Endpoint::Chat { "chat.completion" } else { "text_completion" };
    reply(stream, json!({"id": out.id, "object": object, "created": out.created, "model": shared.model_id, "choices": [choice], "usage": usage}))
}

/// A chat-style `{token, logprob, bytes, top_logprobs}` entry of one token.
fn logprob_entry(shared: &Shared, t: &TokenChoice) -> Value {
    let tok = &shared.tokenizer;
    let entry = |id: u32, lp: f32| {
        let bytes = tok.token_bytes(id).unwrap_or_default();
        json!({"token": String::from_utf8_lossy(&bytes), "logprob": lp, "bytes": bytes})
    };
    let mut e = entry(t.id, t.logprob.unwrap_or(f32::NAN));
    e["top_logprobs"] = t.top.iter().map(|&(id, lp)| entry(id, lp)).collect();
    e
}

/// The completions API's `{token: logprob}` map of a chat-style entry's alternatives
/// (null for an echoed first prompt token, which has none).
fn completion_top(entry: &Value) -> Value {
    if entry["top_logprobs"].is_null() {
        return Value::Null;
    }
    let alternatives = entry["top_logprobs"].as_array().into_iter().flatten();
    Value::Object(alternatives.map(|a| (a["token"].as_str().unwrap_or("").to_string(), a["logprob"].clone())).collect())
}

/// The response being built.
struct Output<'a> {
    shared: &'a Shared,
    endpoint: Endpoint,
    id: String,
    created: u64,
    text: String,
    /// Per token, chat-style `{token, logprob, bytes, top_logprobs}`.
    logprobs: Vec<Value>,
}

impl Output<'_> {
    fn chunk_object(&self) -> &'static str {
        if self.endpoint == Endpoint::Chat { "chat.completion.chunk" } else { "text_completion" }
    }

    fn logprob_entry(&self, t: &TokenChoice) -> Value {
        logprob_entry(self.shared, t)
    }

    /// The completions API's logprobs object from the chat-style entries.
    fn completion_logprobs(&self, gen: &Generation) -> Value {
        if gen.params.logprobs.is_none() {
            return Value::Null;
        }
        let mut offset = 0;
        let mut text_offset = Vec::new();
        for e in &self.logprobs {
            text_offset.push(offset);
            offset += e["token"].as_str().map_or(0, str::len);
        }
        json!({
            "tokens": self.logprobs.iter().map(|e| e["token"].clone()).collect::<Vec<_>>(),
            "token_logprobs": self.logprobs.iter().map(|e| e["logprob"].clone()).collect::<Vec<_>>(),
            "top_logprobs": self.logprobs.iter().map(completion_top).collect::<Vec<_>>(),
            "text_offset": text_offset,
        })
    }

    /// One streamed chunk: a text delta, this token's log-probs, or the finish reason.
    fn event(&self, stream: &mut TcpStream, text: Option<&str>, lp: Option<&Value>, finish: Option<&str>) -> std::io::Result<()> {
        let choice = match self.endpoint {
            Endpoint::Completion => json!({
                "index": 0,
                "text": text.unwrap_or(""),
                "logprobs": lp.map(|e| json!({"tokens": [e["token"]], "token_logprobs": [e["logprob"]],
                    "top_logprobs": [completion_top(e)]})),
                "finish_reason": finish,
            }),
            Endpoint::Chat => {
                // The first chunk carries the role; later ones the content delta.
                let delta = match text {
                    Some("") if lp.is_none() => json!({"role": "assistant", "content": ""}),
                    Some(t) => json!({"content": t}),
                    None => json!({}),
                };
                json!({"index": 0, "delta": delta, "logprobs": lp.map(|e| json!({"content": [e]})), "finish_reason": finish})
            }
        };
        let chunk = json!({"id": self.id, "object": self.chunk_object(), "created": self.created, "model": self.shared.model_id, "choices": [choice]});
        http::write_event(stream, &chunk.to_string())
    }
}
