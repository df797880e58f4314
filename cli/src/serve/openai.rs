//! The OpenAI request bodies kiln accepts (`/v1/completions`, `/v1/chat/completions`),
//! their translation into sampling parameters, and the error body.
//!
//! Known fields with a wrong type are a 400 with serde's message; unknown fields are
//! ignored (as OpenAI-compatible servers commonly do). Besides OpenAI's fields, `top_k`,
//! `min_p` and `repetition_penalty` are accepted as extensions.

use std::collections::HashMap;

use kiln_sampler::SamplingParams;
use serde::Deserialize;
use serde_json::{json, Value};

/// A 400-class error: (status, message, offending parameter).
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub param: Option<String>,
}

impl ApiError {
    pub fn bad(message: impl Into<String>, param: Option<&str>) -> ApiError {
        ApiError { status: 400, message: message.into(), param: param.map(str::to_string) }
    }
    pub fn body(&self) -> Value {
        let kind = match self.status {
            503 => "server_overloaded",
            404 => "not_found_error",
            500 => "server_error",
            _ => "invalid_request_error",
        };
        json!({"error": {"message": self.message, "type": kind, "param": self.param, "code": null}})
    }
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Texts(Vec<String>),
    Ids(Vec<u32>),
}

#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize, Debug, Default)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// The sampling fields both endpoints share.
#[derive(Deserialize, Debug, Default)]
pub struct Sampling {
    pub max_tokens: Option<usize>,
    pub max_completion_tokens: Option<usize>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub top_k: Option<usize>,
    pub min_p: Option<f32>,
    pub repetition_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub presence_penalty: Option<f32>,
    pub logit_bias: Option<HashMap<String, f32>>,
    pub seed: Option<u64>,
    pub stop: Option<Stop>,
    pub n: Option<usize>,
    #[serde(default)]
    pub stream: bool,
    pub stream_options: Option<StreamOptions>,
}

#[derive(Deserialize, Debug)]
pub struct CompletionRequest {
    pub prompt: Prompt,
    /// Completions API: the number of alternatives (0..=5) to report per token.
    pub logprobs: Option<usize>,
    #[serde(default)]
    pub echo: bool,
    #[serde(flatten)]
    pub sampling: Sampling,
}

#[derive(Deserialize, Debug)]
pub struct ChatMessage {
    pub role: String,
    pub content: Option<Content>,
}

/// Message content: a string, or parts of which the text parts are joined.
#[derive(Deserialize, Debug)]
#[serde(untagged)]
pub enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Deserialize, Debug)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
}

impl Content {
    pub fn text(&self) -> Result<String, ApiError> {
        match self {
            Content::Text(t) => Ok(t.clone()),
            Content::Parts(parts) => parts
                .iter()
                .map(|p| match (p.kind.as_str(), &p.text) {
                    ("text", Some(t)) => Ok(t.clone()),
                    (kind, _) => Err(ApiError::bad(format!("content part of type {kind:?} is not supported (text only)"), Some("messages"))),
                })
                .collect(),
        }
    }
}

#[derive(Deserialize, Debug)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    /// Chat API: report log-probs of the generated tokens.
    #[serde(default)]
    pub logprobs: bool,
    pub top_logprobs: Option<usize>,
    #[serde(flatten)]
    pub sampling: Sampling,
}

/// `POST /tokenize` (llama-server's shape).
#[derive(Deserialize, Debug)]
pub struct TokenizeRequest {
    pub content: String,
    /// Add the tokenizer's special tokens (a BOS) as the model's files ask.
    #[serde(default)]
    pub add_special: bool,
    /// Answer `{"id", "piece"}` objects instead of bare ids.
    #[serde(default)]
    pub with_pieces: bool,
}

/// `POST /detokenize` (llama-server's shape).
#[derive(Deserialize, Debug)]
pub struct DetokenizeRequest {
    pub tokens: Vec<u32>,
}

/// Parse a JSON body into `T`, turning serde's complaint into a 400.
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("invalid request body: {e}"), None))
}

/// What the server needs besides the prompt.
pub struct Generation {
    pub params: SamplingParams,
    pub max_tokens: usize,
    pub stop: Vec<String>,
    pub stream: bool,
    pub include_usage: bool,
}

impl Sampling {
    /// Translate to kiln's parameters; `logprobs` is how many alternatives, if any.
    /// `default_max` is the endpoint's default for max_tokens.
    pub fn generation(&self, logprobs: Option<usize>, default_max: usize) -> Result<Generation, ApiError> {
        if let Some(n) = self.n {
            if n != 1 {
                return Err(ApiError::bad(format!("n = {n} is not supported: kiln returns one choice per request"), Some("n")));
            }
        }
        let mut logit_bias = Vec::new();
        for (id, &bias) in self.logit_bias.iter().flatten() {
            let id: u32 = id.parse().map_err(|_| ApiError::bad(format!("logit_bias key {id:?} is not a token id"), Some("logit_bias")))?;
            if !(-100.0..=100.0).contains(&bias) {
                return Err(ApiError::bad(format!("logit_bias for {id} must be in [-100, 100], got {bias}"), Some("logit_bias")));
            }
            logit_bias.push((id, bias));
        }
        logit_bias.sort_by_key(|&(id, _)| id); // a fixed order: the same request, the same bias row
        let stop = match &self.stop {
            None => vec![],
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        if stop.len() > 4 {
            return Err(ApiError::bad(format!("at most 4 stop sequences, got {}", stop.len()), Some("stop")));
        }
        let d = SamplingParams::default();
        let params = SamplingParams {
            temperature: self.temperature.unwrap_or(d.temperature),
            top_k: self.top_k,
            top_p: self.top_p.unwrap_or(d.top_p),
            min_p: self.min_p.unwrap_or(d.min_p),
            repetition_penalty: self.repetition_penalty.unwrap_or(d.repetition_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(d.frequency_penalty),
            presence_penalty: self.presence_penalty.unwrap_or(d.presence_penalty),
            logit_bias,
            // Without a seed each request draws its own (OpenAI: not reproducible).
            seed: self.seed.unwrap_or_else(random_seed),
            logprobs,
        };
        Ok(Generation {
            params,
            max_tokens: self.max_completion_tokens.or(self.max_tokens).unwrap_or(default_max),
            stop,
            stream: self.stream,
            include_usage: self.stream_options.as_ref().is_some_and(|o| o.include_usage),
        })
    }
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
    h.finish()
}
