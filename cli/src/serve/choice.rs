//! One choice of a completion as its tokens arrive: incremental detokenization, stop
//! strings, log-prob entries, and the JSON pieces of the OpenAI answers built from them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kiln_model::tokenizer::StreamDecoder;
use kiln_model::Tokenizer;
use kiln_sampler::engine::FinishReason;
use kiln_sampler::gpu::TokenChoice;
use kiln_sampler::stop::StopStrings;
use serde_json::{json, Value};

use super::error::ApiError;
use kiln_sampler::score::PromptLogprob;

/// Which API the answer is shaped for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Endpoint {
    Completion,
    Chat,
}

impl Endpoint {
    pub fn object(self, streamed: bool) -> &'static str {
        match (self, streamed) {
            (Endpoint::Completion, _) => "text_completion",
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
        }
    }
}

/// What one token added to a choice.
pub struct Piece {
    /// Text that is safe to show now (held back while it could start a stop string).
    pub text: String,
    /// The token's chat-style log-prob entry, when log-probs were asked for.
    pub logprob: Option<Value>,
}

pub struct ChoiceState<'t> {
    tok: &'t Tokenizer,
    decoder: StreamDecoder<'t>,
    stops: StopStrings,
    want_logprobs: bool,
    /// Tells the scheduler to drop the sequence (a stop string was reached).
    pub cancel: Arc<AtomicBool>,
    pub completion_tokens: usize,
    pub finish: Option<&'static str>,
    /// Everything shown so far (non-streamed answers).
    pub text: String,
    /// Chat-style `{token, logprob, bytes, top_logprobs}` per generated token.
    pub logprobs: Vec<Value>,
}

impl<'t> ChoiceState<'t> {
    pub fn new(tok: &'t Tokenizer, stop: &[String], want_logprobs: bool, cancel: Arc<AtomicBool>) -> Result<Self, ApiError> {
        let stops = StopStrings::new(stop).map_err(|e| ApiError::param("stop", e.to_string()))?;
        Ok(ChoiceState {
            tok,
            decoder: tok.stream(true),
            stops,
            want_logprobs,
            cancel,
            completion_tokens: 0,
            finish: None,
            text: String::new(),
            logprobs: Vec::new(),
        })
    }

    pub fn finished(&self) -> bool {
        self.finish.is_some()
    }

    /// A generated token. After a stop string the choice is finished ("stop") and its
    /// sequence is cancelled.
    pub fn token(&mut self, t: &TokenChoice) -> Result<Piece, ApiError> {
        self.completion_tokens += 1;
        let text = self.decoder.push(t.id).map_err(|e| ApiError::internal(format!("detokenizing: {e}")))?;
        let (shown, stopped) = self.stops.push(&text);
        let logprob = self.want_logprobs.then(|| logprob_entry(self.tok, t.id, t.logprob.unwrap_or(f32::NAN), &t.top));
        if stopped {
            self.finish = Some("stop");
            self.cancel.store(true, Ordering::SeqCst);
        }
        Ok(Piece { text: shown, logprob })
    }

    /// The sequence ended: the text still held back.
    pub fn done(&mut self, reason: FinishReason) -> Result<String, ApiError> {
        self.finish = Some(match reason {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        });
        let tail = self.decoder.finish().map_err(|e| ApiError::internal(format!("detokenizing: {e}")))?;
        let (shown, stopped) = self.stops.push(&tail);
        if stopped {
            self.finish = Some("stop");
            return Ok(shown);
        }
        Ok(shown + &self.stops.finish())
    }
}

/// A token as text for log-prob entries (byte-level BPE tokens may hold part of a
/// character: shown lossily, their exact bytes are in `bytes`).
pub fn token_string(tok: &Tokenizer, id: u32) -> String {
    match tok.token_bytes(id) {
        Some(b) => String::from_utf8_lossy(&b).into_owned(),
        None => tok.token_text(id),
    }
}

/// Chat-style log-prob entry `{token, logprob, bytes, top_logprobs: [...]}`.
pub fn logprob_entry(tok: &Tokenizer, id: u32, logprob: f32, top: &[(u32, f32)]) -> Value {
    let entry = |id: u32, lp: f32| {
        let bytes = tok.token_bytes(id).unwrap_or_else(|| token_string(tok, id).into_bytes());
        json!({"token": token_string(tok, id), "logprob": lp, "bytes": bytes})
    };
    let mut e = entry(id, logprob);
    e["top_logprobs"] = top.iter().map(|&(id, lp)| entry(id, lp)).collect();
    e
}

/// The completions API's `{token: logprob}` map of an entry's alternatives.
pub fn completion_top(entry: &Value) -> Value {
    let alternatives = entry["top_logprobs"].as_array().into_iter().flatten();
    Value::Object(alternatives.map(|a| (a["token"].as_str().unwrap_or("").to_string(), a["logprob"].clone())).collect())
}

/// A prompt as echoed: its ids, its text, and each token's log-prob (the first has none).
pub struct Echo {
    pub ids: Vec<u32>,
    pub text: String,
    pub scores: Vec<PromptLogprob>,
}

/// The completions API's `logprobs` object over the echoed prompt (if any) then the
/// generated tokens: `tokens`, `token_logprobs` and `top_logprobs` (null for the first
/// prompt token, which has no context) and `text_offset` (the character offset of each
/// token in the choice's text).
pub fn completion_logprobs(tok: &Tokenizer, echo: Option<&Echo>, generated: &[Value]) -> Value {
    let mut tokens = Vec::new();
    let mut lps = Vec::new();
    let mut tops = Vec::new();
    if let Some(e) = echo {
        for (i, &id) in e.ids.iter().enumerate() {
            tokens.push(Value::String(token_string(tok, id)));
            match i.checked_sub(1).and_then(|j| e.scores.get(j)) {
                Some(s) => {
                    lps.push(json!(s.logprob));
                    tops.push(Value::Object(s.top.iter().map(|&(id, lp)| (token_string(tok, id), json!(lp))).collect()));
                }
                None => {
                    lps.push(Value::Null);
                    tops.push(Value::Null);
                }
            }
        }
    }
    for g in generated {
        tokens.push(g["token"].clone());
        lps.push(g["logprob"].clone());
        tops.push(completion_top(g));
    }
    let mut offset = 0usize;
    let text_offset: Vec<usize> = tokens
        .iter()
        .map(|t| {
            let at = offset;
            offset += t.as_str().map_or(0, |s| s.chars().count());
            at
        })
        .collect();
    json!({"tokens": tokens, "token_logprobs": lps, "top_logprobs": tops, "text_offset": text_offset})
}

/// One streamed chunk's choice: a text delta with its log-probs, or the finish reason.
/// `offset`: the characters of the choice's text sent before this delta (the echoed
/// prompt included), the completions API's `text_offset` of its token.
pub fn chunk_choice(endpoint: Endpoint, index: usize, text: Option<&str>, lp: Option<&Value>, finish: Option<&str>, offset: usize) -> Value {
    match endpoint {
        Endpoint::Completion => json!({
            "index": index,
            "text": text.unwrap_or(""),
            "logprobs": lp.map(|e| json!({"tokens": [e["token"]], "token_logprobs": [e["logprob"]], "top_logprobs": [completion_top(e)], "text_offset": [offset]})),
            "finish_reason": finish,
        }),
        Endpoint::Chat => {
            let delta = match text {
                Some(t) => json!({"content": t}),
                None => json!({}),
            };
            json!({"index": index, "delta": delta, "logprobs": lp.map(|e| json!({"content": [e]})), "finish_reason": finish})
        }
    }
}
