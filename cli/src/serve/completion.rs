//! `/v1/completions` and `/v1/chat/completions`: turn a request into engine jobs (one per
//! prompt and choice), then collect their tokens into one JSON answer or stream them as
//! server-sent events.
//!
//! A request is accepted only when it fits (`--slots` + `--queue` sequences in the server
//! at once), else 503. Choice i of a prompt samples with `seed + i` (wrapping), so a
//! batched prompt gets the answer it would get alone. The request's sequences end when
//! its handler goes away: the non-streamed handler future is dropped when its client
//! disconnects, the streamed body when its client disconnects or stops reading; either
//! way the channel to the scheduler closes and the slots free within one step.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use kiln_model::gguf::chat::ChatMessage;
use kiln_sampler::engine::check_request;
use kiln_sampler::SamplerError;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use super::body::JsonBody;
use super::choice::{chunk_choice, completion_logprobs, ChoiceState, Echo, Endpoint};
use super::error::ApiError;
use super::openai::{self, GenOptions, PromptInput};
use super::scheduler::{GenJob, Job, Msg, ScoreJob};
use super::Shared;

/// Messages buffered per choice between the scheduler and a handler.
const BUFFER_PER_CHOICE: usize = 64;
/// Server-sent-event frames buffered for a streamed body.
const FRAME_BUFFER: usize = 16;

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}

/// Holds `n` of the server's places for sequences until dropped.
pub struct Admission {
    shared: Arc<Shared>,
    n: usize,
    accepted: Instant,
}

impl Admission {
    pub(super) fn take(shared: &Arc<Shared>, n: usize) -> Result<Admission, ApiError> {
        if shared.shutting_down.load(Ordering::SeqCst) {
            return Err(ApiError::unavailable("the server is shutting down"));
        }
        let before = shared.in_system.fetch_add(n, Ordering::SeqCst);
        if before.saturating_add(n) > shared.capacity {
            shared.in_system.fetch_sub(n, Ordering::SeqCst);
            return Err(ApiError::unavailable(format!(
                "all {} slots are busy and the queue of {} is full: retry later",
                shared.slots,
                shared.capacity - shared.slots
            )));
        }
        shared.metrics.requests_in_flight.inc();
        Ok(Admission { shared: shared.clone(), n, accepted: Instant::now() })
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.shared.in_system.fetch_sub(self.n, Ordering::SeqCst);
        self.shared.metrics.requests_in_flight.dec();
        self.shared.metrics.request_duration.observe(self.accepted.elapsed().as_secs_f64());
    }
}

/// A checked request: prompts (token ids), choices per prompt, and what to generate.
struct Plan {
    endpoint: Endpoint,
    prompts: Vec<Vec<u32>>,
    /// Echoed prompt text per prompt (completions with `echo`).
    echo_text: Option<Vec<String>>,
    gen: GenOptions,
    max_tokens: usize,
}

impl Plan {
    fn choices(&self) -> usize {
        self.prompts.len() * self.gen.n
    }
}

fn sampler_param(e: &SamplerError) -> String {
    match e {
        SamplerError::Param { name, .. } => name.clone(),
        SamplerError::Model(kiln_model::ModelError::Param { name, .. }) => name.clone(),
        SamplerError::Model(kiln_model::ModelError::Context { .. }) => "max_tokens".into(),
        _ => "prompt".into(),
    }
}

/// Check `max_tokens` and every prompt against a slot; `default_max` of None means "what
/// the slot has room for".
fn check(shared: &Shared, prompts: &[Vec<u32>], gen: &GenOptions, default_max: Option<u64>, echo: bool) -> Result<usize, ApiError> {
    let context = shared.context;
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let at = |i: usize| if prompts.len() == 1 { "prompt".to_string() } else { format!("prompt[{i}]") };
    for (i, p) in prompts.iter().enumerate() {
        if p.is_empty() {
            return Err(ApiError::param(at(i), "the prompt has no tokens"));
        }
        if p.len() >= context {
            return Err(ApiError::param(
                at(i),
                format!("the prompt has {} tokens: each slot holds {context} positions, the prompt and max_tokens together", p.len()),
            ));
        }
    }
    let max = match gen.max_tokens.or(default_max) {
        Some(m) => m,
        None => (context - longest) as u64,
    };
    if max == 0 && !echo {
        return Err(ApiError::param("max_tokens", "max_tokens must be >= 1 (0 only with echo)"));
    }
    if max > (context - longest) as u64 {
        return Err(ApiError::param(
            "max_tokens",
            format!(
                "the prompt has {longest} tokens and max_tokens is {max}: {} positions, but each slot holds {context}",
                longest as u64 + max
            ),
        ));
    }
    let max = max as usize; // <= context
    for (i, p) in prompts.iter().enumerate() {
        check_request(&shared.config, context, p, &gen.params, max.max(1)).map_err(|e| {
            let param = sampler_param(&e);
            ApiError::param(if param == "prompt" { at(i) } else { param }, e.to_string())
        })?;
    }
    Ok(max)
}

pub async fn completions(State(shared): State<Arc<Shared>>, JsonBody(body): JsonBody) -> Response {
    match completions_inner(shared, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn completions_inner(shared: Arc<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let req = openai::completion_request(&body)?;
    let mut prompts = Vec::with_capacity(req.prompts.len());
    let mut texts = Vec::with_capacity(req.prompts.len());
    for (i, p) in req.prompts.into_iter().enumerate() {
        let param = if i == 0 { "prompt".to_string() } else { format!("prompt[{i}]") };
        match p {
            PromptInput::Text(text) => {
                let ids = shared.encode_blocking(text.clone(), param).await?;
                prompts.push(ids);
                texts.push(text);
            }
            PromptInput::Ids(ids) => {
                kiln_kernels::embedding::check_ids(&ids, shared.config.vocab_size).map_err(|e| ApiError::param(param, e.to_string()))?;
                texts.push(shared.tokenizer.decode(&ids, false).map_err(|e| ApiError::bad(e.to_string()))?);
                prompts.push(ids);
            }
        }
    }
    let max_tokens = check(&shared, &prompts, &req.gen, Some(16), req.echo)?;
    let plan = Plan { endpoint: Endpoint::Completion, prompts, echo_text: req.echo.then_some(texts), gen: req.gen, max_tokens };
    run(shared, plan).await
}

pub async fn chat(State(shared): State<Arc<Shared>>, JsonBody(body): JsonBody) -> Response {
    match chat_inner(shared, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn chat_inner(shared: Arc<Shared>, body: Bytes) -> Result<Response, ApiError> {
    let req = openai::chat_request(&body)?;
    let Some(template) = shared.template.clone() else {
        return Err(ApiError::param("messages", "this model has no chat template: use /v1/completions"));
    };
    let messages: Vec<ChatMessage> = req.messages.into_iter().map(|m| ChatMessage::new(m.role, m.content)).collect();
    let s = shared.clone();
    let ids = tokio::task::spawn_blocking(move || kiln::chat_ids(&s.tokenizer, &template, s.bos, &s.eos_ids, &messages))
        .await
        .map_err(|e| ApiError::internal(format!("rendering the chat template: {e}")))?
        .map_err(|e| ApiError::param("messages", format!("rendering the chat template: {e:#}")))?
        .0;
    let prompts = vec![ids];
    // OpenAI's chat default is "up to the context": here, what the slot has room for.
    let max_tokens = check(&shared, &prompts, &req.gen, None, false)?;
    let plan = Plan { endpoint: Endpoint::Chat, prompts, echo_text: None, gen: req.gen, max_tokens };
    run(shared, plan).await
}

/// Everything a running request holds: its place, its channel, its choices' states.
struct Running {
    admission: Admission,
    rx: mpsc::Receiver<(usize, Msg)>,
    /// Per choice: set to drop its sequence early (a stop string was reached).
    cancels: Vec<Arc<AtomicBool>>,
    echoes: Option<Vec<Echo>>,
    id: String,
    created: u64,
    prompt_tokens: usize,
}

/// Score echoed prompts, queue the sequences, then answer.
async fn run(shared: Arc<Shared>, plan: Plan) -> Result<Response, ApiError> {
    let generating = plan.max_tokens > 0;
    let admission = Admission::take(&shared, plan.choices())?;
    let prompt_tokens: usize = plan.prompts.iter().map(Vec::len).sum::<usize>() * plan.gen.n;
    let echoes = match &plan.echo_text {
        None => None,
        Some(texts) => {
            let mut echoes = Vec::with_capacity(texts.len());
            for (ids, text) in plan.prompts.iter().zip(texts) {
                // Without `logprobs` the echo is the text alone: nothing to score.
                let scores = match plan.gen.params.logprobs {
                    Some(top) if ids.len() >= 2 => shared.score(ids.clone(), top).await?,
                    _ => vec![],
                };
                echoes.push(Echo { ids: ids.clone(), text: text.clone(), scores });
            }
            Some(echoes)
        }
    };
    let (tx, rx) = mpsc::channel(BUFFER_PER_CHOICE * plan.choices());
    let cancels: Vec<Arc<AtomicBool>> = (0..plan.choices()).map(|_| Arc::new(AtomicBool::new(false))).collect();
    for (p, prompt) in plan.prompts.iter().enumerate() {
        for i in 0..plan.gen.n {
            let seed = plan.gen.seed.map_or_else(random_seed, |s| s.wrapping_add(i as u64));
            let index = p * plan.gen.n + i;
            if generating {
                let job = GenJob {
                    prompt: prompt.clone(),
                    params: kiln_sampler::SamplingParams { seed, ..plan.gen.params.clone() },
                    max_tokens: plan.max_tokens,
                    eos_ids: shared.eos_ids.clone(),
                    index,
                    events: tx.clone(),
                    cancel: cancels[index].clone(),
                    accepted: admission.accepted,
                };
                shared.jobs.send(Job::Generate(job)).map_err(|_| ApiError::unavailable("the engine has stopped"))?;
            }
        }
    }
    drop(tx);
    shared.metrics.prompt_tokens.inc_by(prompt_tokens as u64);
    let id = format!("{}-{}", if plan.endpoint == Endpoint::Chat { "chatcmpl" } else { "cmpl" }, shared.ids.fetch_add(1, Ordering::SeqCst));
    let running = Running { admission, rx, cancels, echoes, id, created: now_secs(), prompt_tokens };
    if plan.gen.stream {
        Ok(stream(shared, plan, running))
    } else {
        collect(&shared, &plan, running).await
    }
}

fn choice_states<'t>(shared: &'t Shared, plan: &Plan, r: &Running) -> Result<Vec<ChoiceState<'t>>, ApiError> {
    let want = plan.gen.params.logprobs.is_some();
    r.cancels.iter().map(|c| ChoiceState::new(&shared.tokenizer, &plan.gen.stop, want, c.clone())).collect()
}

/// Wait for every choice, then answer with one JSON body.
async fn collect(shared: &Shared, plan: &Plan, mut r: Running) -> Result<Response, ApiError> {
    let mut states = choice_states(shared, plan, &r)?;
    let mut open = if plan.max_tokens > 0 { states.len() } else { 0 };
    while open > 0 {
        let Some((i, msg)) = r.rx.recv().await else {
            return Err(ApiError::internal("the request's sequences were dropped before finishing"));
        };
        let Some(state) = states.get_mut(i).filter(|s| !s.finished()) else { continue };
        match msg {
            Msg::Token(t) => {
                let piece = state.token(&t)?;
                state.text.push_str(&piece.text);
                state.logprobs.extend(piece.logprob);
            }
            Msg::Done(reason) => {
                let tail = state.done(reason)?;
                state.text.push_str(&tail);
            }
            Msg::Failed(e) => return Err(e),
        }
        if state.finished() {
            open -= 1;
        }
    }
    let n = plan.gen.n;
    let choices: Vec<Value> = states
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let finish = s.finish.unwrap_or("length");
            match plan.endpoint {
                Endpoint::Completion => {
                    let echo = r.echoes.as_ref().map(|e| &e[i / n]);
                    let text = echo.map_or(String::new(), |e| e.text.clone()) + &s.text;
                    let logprobs = plan.gen.params.logprobs.map(|_| completion_logprobs(&shared.tokenizer, echo, &s.logprobs));
                    json!({"index": i, "text": text, "logprobs": logprobs, "finish_reason": finish})
                }
                Endpoint::Chat => json!({
                    "index": i,
                    "message": {"role": "assistant", "content": s.text},
                    "logprobs": plan.gen.params.logprobs.map(|_| json!({"content": s.logprobs})),
                    "finish_reason": finish,
                }),
            }
        })
        .collect();
    let completion_tokens: usize = states.iter().map(|s| s.completion_tokens).sum();
    let body = json!({
        "id": r.id, "object": plan.endpoint.object(false), "created": r.created, "model": shared.model_id,
        "choices": choices,
        "usage": {"prompt_tokens": r.prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": r.prompt_tokens + completion_tokens},
    });
    drop(r.admission);
    Ok(axum::Json(body).into_response())
}

fn sse(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

/// Answer with server-sent events: a task turns the scheduler's messages into frames.
fn stream(shared: Arc<Shared>, plan: Plan, r: Running) -> Response {
    let (frames, frame_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(FRAME_BUFFER);
    tokio::spawn(async move {
        let failure = match stream_events(&shared, &plan, r, &frames).await {
            Ok(()) => None,
            Err(Some(e)) => Some(e),
            Err(None) => return, // the client is gone
        };
        if let Some(e) = failure {
            // After the 200 has gone out an error can only be an event: the error, then [DONE].
            let _ = frames.send(Ok(sse(&e.body().to_string()))).await;
            let _ = frames.send(Ok(sse("[DONE]"))).await;
        }
    });
    let body = Body::from_stream(futures_util::stream::unfold(frame_rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) }));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no")
        .body(body)
        .unwrap_or_else(|_| ApiError::internal("building the response").into_response())
}

/// The events of a streamed answer. `Err(None)`: the client left; `Err(Some(e))`: a
/// failure to report as the final event.
async fn stream_events(
    shared: &Shared,
    plan: &Plan,
    mut r: Running,
    frames: &mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> Result<(), Option<ApiError>> {
    let chunk = |choices: Vec<Value>| {
        sse(&json!({"id": r.id, "object": plan.endpoint.object(true), "created": r.created, "model": shared.model_id, "choices": choices}).to_string())
    };
    let send = |b: Bytes| async move { frames.send(Ok(b)).await.map_err(|_| None) };
    let n = plan.gen.n;
    let mut states = choice_states(shared, plan, &r).map_err(Some)?;
    // Per choice, the characters of its text sent so far (for `text_offset`): the echoed
    // prompt, which goes first.
    let mut sent: Vec<usize> = (0..states.len()).map(|i| r.echoes.as_ref().map_or(0, |e| e[i / n].text.chars().count())).collect();
    for i in 0..states.len() {
        match (plan.endpoint, &r.echoes) {
            (Endpoint::Chat, _) => {
                let c = json!({"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": null, "finish_reason": null});
                send(chunk(vec![c])).await?;
            }
            (Endpoint::Completion, Some(echoes)) => {
                let e = &echoes[i / n];
                let lp = plan.gen.params.logprobs.map(|_| completion_logprobs(&shared.tokenizer, Some(e), &[]));
                send(chunk(vec![json!({"index": i, "text": e.text, "logprobs": lp, "finish_reason": null})])).await?;
            }
            (Endpoint::Completion, None) => {}
        }
    }
    let mut open = if plan.max_tokens > 0 { states.len() } else { 0 };
    if open == 0 {
        for (i, &at) in sent.iter().enumerate() {
            send(chunk(vec![chunk_choice(plan.endpoint, i, None, None, Some("length"), at)])).await?;
        }
    }
    while open > 0 {
        let Some((i, msg)) = r.rx.recv().await else {
            return Err(Some(ApiError::internal("the request's sequences were dropped before finishing (the client stopped reading)")));
        };
        let Some(state) = states.get_mut(i).filter(|s| !s.finished()) else { continue };
        match msg {
            Msg::Token(t) => {
                let piece = state.token(&t).map_err(Some)?;
                if !piece.text.is_empty() || piece.logprob.is_some() {
                    send(chunk(vec![chunk_choice(plan.endpoint, i, Some(&piece.text), piece.logprob.as_ref(), None, sent[i])])).await?;
                    sent[i] += piece.text.chars().count();
                }
            }
            Msg::Done(reason) => {
                let tail = state.done(reason).map_err(Some)?;
                if !tail.is_empty() {
                    send(chunk(vec![chunk_choice(plan.endpoint, i, Some(&tail), None, None, sent[i])])).await?;
                    sent[i] += tail.chars().count();
                }
            }
            Msg::Failed(e) => return Err(Some(e)),
        }
        if let Some(finish) = state.finish {
            send(chunk(vec![chunk_choice(plan.endpoint, i, None, None, Some(finish), sent[i])])).await?;
            open -= 1;
        }
    }
    if plan.gen.include_usage {
        let completion_tokens: usize = states.iter().map(|s| s.completion_tokens).sum();
        let usage = json!({"prompt_tokens": r.prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": r.prompt_tokens + completion_tokens});
        let v = json!({"id": r.id, "object": plan.endpoint.object(true), "created": r.created, "model": shared.model_id, "choices": [], "usage": usage});
        send(sse(&v.to_string())).await?;
    }
    send(sse("[DONE]")).await?;
    drop(r.admission);
    Ok(())
}

impl Shared {
    /// Tokenize on the blocking pool (a long text must not hold up the connections).
    pub(super) async fn encode_blocking(self: &Arc<Self>, text: String, param: String) -> Result<Vec<u32>, ApiError> {
        let s = self.clone();
        tokio::task::spawn_blocking(move || s.tokenizer.encode_with_special(&text, true))
            .await
            .map_err(|e| ApiError::internal(format!("tokenizing: {e}")))?
            .map_err(|e| ApiError::param(param, e.to_string()))
    }

    /// The log-probs of a prompt's tokens, computed on the GPU thread.
    async fn score(&self, ids: Vec<u32>, top: usize) -> Result<Vec<kiln_sampler::score::PromptLogprob>, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job::Score(ScoreJob { ids, top, reply })).map_err(|_| ApiError::unavailable("the engine has stopped"))?;
        answer.await.map_err(|_| ApiError::unavailable("the engine has stopped"))?
    }
}
