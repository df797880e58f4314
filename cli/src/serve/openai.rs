//! The OpenAI request bodies kiln accepts (`/v1/completions`, `/v1/chat/completions`),
//! read field by field from the JSON so that every bad value is a 400 that names its
//! parameter, and no number can overflow: integers are range-checked before any
//! arithmetic, floats must be finite in f32.
//!
//! Unknown fields are ignored (as OpenAI-compatible servers commonly do); a field that is
//! `null` counts as absent. Besides OpenAI's fields, `top_k`, `min_p` and
//! `repetition_penalty` are accepted as extensions.

use kiln_sampler::params::MAX_TOP_LOGPROBS;
use kiln_sampler::SamplingParams;
use serde_json::{Map, Value};

use super::error::ApiError;

/// The most choices per prompt (`n`).
pub const MAX_N: u64 = 16;
/// The most choices one request may ask for in all (prompts × n).
pub const MAX_CHOICES: usize = 64;
/// The most stop sequences, and the longest one in bytes.
pub const MAX_STOP: usize = 4;
pub const MAX_STOP_BYTES: usize = 1024;
/// The most `logit_bias` entries.
pub const MAX_LOGIT_BIAS: usize = 1024;

/// One prompt: text to tokenize, or token ids as given.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptInput {
    Text(String),
    Ids(Vec<u32>),
}

/// What both endpoints share: the sampling parameters (without the seed, which is set
/// per choice), the length, stop strings, number of choices and streaming.
#[derive(Debug, Clone)]
pub struct GenOptions {
    pub params: SamplingParams,
    /// `seed`, if given; choice i of a request uses `seed + i` (wrapping).
    pub seed: Option<u64>,
    /// `max_tokens` / `max_completion_tokens`, if given (checked against the slot later).
    pub max_tokens: Option<u64>,
    pub stop: Vec<String>,
    pub n: usize,
    pub stream: bool,
    pub include_usage: bool,
}

#[derive(Debug)]
pub struct CompletionRequest {
    pub prompts: Vec<PromptInput>,
    pub echo: bool,
    pub gen: GenOptions,
}

#[derive(Debug)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

#[derive(Debug)]
pub struct ChatRequest {
    pub messages: Vec<ChatMessage>,
    pub gen: GenOptions,
}

/// Parse a body into a JSON object (a 400 when it is not one).
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| ApiError::bad(format!("invalid request body: {e}")))?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(ApiError::bad(format!("invalid request body: it must be a JSON object, got {}", type_name(&other)))),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Typed, range-checked access to a request's fields; errors name the field.
pub struct Fields<'a>(pub &'a Map<String, Value>);

impl<'a> Fields<'a> {
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(ApiError::param(name, format!("invalid type: {name} must be a boolean, got {}", type_name(v)))),
        }
    }

    /// A whole number in `0..=max`.
    pub fn uint(&self, name: &str, max: u64) -> Result<Option<u64>, ApiError> {
        let Some(v) = self.get(name) else { return Ok(None) };
        uint_value(v, name, max).map(Some)
    }

    /// A finite number that fits an f32.
    pub fn float(&self, name: &str) -> Result<Option<f32>, ApiError> {
        let Some(v) = self.get(name) else { return Ok(None) };
        float_value(v, name).map(Some)
    }

    pub fn string(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(v) => Err(ApiError::param(name, format!("invalid type: {name} must be a string, got {}", type_name(v)))),
        }
    }

    /// An integer seed: any i64 or u64 (negative seeds wrap to u64).
    pub fn seed(&self) -> Result<Option<u64>, ApiError> {
        let Some(v) = self.get("seed") else { return Ok(None) };
        match v {
            Value::Number(n) => n
                .as_u64()
                .or_else(|| n.as_i64().map(|i| i as u64))
                .map(Some)
                .ok_or_else(|| ApiError::param("seed", format!("seed must be an integer in the 64-bit range, got {n}"))),
            v => Err(ApiError::param("seed", format!("invalid type: seed must be an integer, got {}", type_name(v)))),
        }
    }
}

fn uint_value(v: &Value, name: &str, max: u64) -> Result<u64, ApiError> {
    let n = match v {
        Value::Number(n) => n,
        v => return Err(ApiError::param(name, format!("invalid type: {name} must be an integer, got {}", type_name(v)))),
    };
    match n.as_u64() {
        Some(x) if x <= max => Ok(x),
        Some(x) => Err(ApiError::param(name, format!("{name} must be at most {max}, got {x}"))),
        None if n.as_i64().is_some() => Err(ApiError::param(name, format!("{name} must be >= 0, got {n}"))),
        None => Err(ApiError::param(name, format!("{name} must be a whole number in 0..={max}, got {n}"))),
    }
}

fn float_value(v: &Value, name: &str) -> Result<f32, ApiError> {
    let x = match v {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        v => return Err(ApiError::param(name, format!("invalid type: {name} must be a number, got {}", type_name(v)))),
    };
    let f = x as f32;
    if !f.is_finite() {
        return Err(ApiError::param(name, format!("{name} = {x} is out of range")));
    }
    Ok(f)
}

/// `prompt`: a string, an array of token ids, or an array of strings or of id arrays.
fn prompts(v: Option<&Value>) -> Result<Vec<PromptInput>, ApiError> {
    let p = "prompt";
    let ids = |items: &[Value], at: &str| -> Result<Vec<u32>, ApiError> {
        items.iter().map(|x| uint_value(x, at, u32::MAX as u64).map(|id| id as u32)).collect()
    };
    match v {
        None => Err(ApiError::param(p, "prompt is required")),
        Some(Value::String(s)) => Ok(vec![PromptInput::Text(s.clone())]),
        Some(Value::Array(items)) if items.is_empty() => Err(ApiError::param(p, "prompt must not be an empty array")),
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => Ok(vec![PromptInput::Ids(ids(items, p)?)]),
        Some(Value::Array(items)) => {
            if items.len() > MAX_CHOICES {
                return Err(ApiError::param(p, format!("at most {MAX_CHOICES} prompts per request, got {}", items.len())));
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(PromptInput::Text(s.clone())),
                    Value::Array(xs) if !xs.is_empty() => Ok(PromptInput::Ids(ids(xs, &format!("prompt[{i}]"))?)),
                    Value::Array(_) => Err(ApiError::param(format!("prompt[{i}]"), "a token-id prompt must not be empty")),
                    v => Err(ApiError::param(
                        format!("prompt[{i}]"),
                        format!("each prompt must be a string or an array of token ids, got {}", type_name(v)),
                    )),
                })
                .collect()
        }
        Some(v) => Err(ApiError::param(p, format!("prompt must be a string or an array, got {}", type_name(v)))),
    }
}

/// `stop`: a string or an array of at most 4 non-empty strings.
fn stop(f: &Fields) -> Result<Vec<String>, ApiError> {
    let list: Vec<String> = match f.get("stop") {
        None => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|x| match x {
                Value::String(s) => Ok(s.clone()),
                v => Err(ApiError::param("stop", format!("each stop sequence must be a string, got {}", type_name(v)))),
            })
            .collect::<Result<_, _>>()?,
        Some(v) => Err(ApiError::param("stop", format!("stop must be a string or an array of strings, got {}", type_name(v))))?,
    };
    if list.len() > MAX_STOP {
        return Err(ApiError::param("stop", format!("at most {MAX_STOP} stop sequences, got {}", list.len())));
    }
    for s in &list {
        if s.is_empty() {
            return Err(ApiError::param("stop", "a stop sequence must not be empty"));
        }
        if s.len() > MAX_STOP_BYTES {
            return Err(ApiError::param("stop", format!("a stop sequence may be at most {MAX_STOP_BYTES} bytes, got {}", s.len())));
        }
    }
    Ok(list)
}

/// `logit_bias`: `{"token id": bias}` with bias in [-100, 100] (OpenAI's range; -100
/// bans the id in practice).
fn logit_bias(f: &Fields) -> Result<Vec<(u32, f32)>, ApiError> {
    let p = "logit_bias";
    let map = match f.get(p) {
        None => return Ok(vec![]),
        Some(Value::Object(m)) => m,
        Some(v) => return Err(ApiError::param(p, format!("logit_bias must be an object of token id -> bias, got {}", type_name(v)))),
    };
    if map.len() > MAX_LOGIT_BIAS {
        return Err(ApiError::param(p, format!("at most {MAX_LOGIT_BIAS} logit_bias entries, got {}", map.len())));
    }
    let mut out = Vec::with_capacity(map.len());
    for (key, value) in map {
        let id: u32 = key.trim().parse().map_err(|_| ApiError::param(p, format!("logit_bias key {key:?} is not a token id")))?;
        let bias = float_value(value, p)?;
        if !(-100.0..=100.0).contains(&bias) {
            return Err(ApiError::param(p, format!("logit_bias for {id} must be in [-100, 100], got {bias}")));
        }
        out.push((id, bias));
    }
    out.sort_by_key(|&(id, _)| id); // a fixed order: the same request, the same bias row
    Ok(out)
}

/// The fields both endpoints share. `logprobs`: how many alternatives per token, if any.
fn gen_options(f: &Fields, logprobs: Option<usize>) -> Result<GenOptions, ApiError> {
    let d = SamplingParams::default();
    let n = f.uint("n", MAX_N)?.unwrap_or(1);
    if n == 0 {
        return Err(ApiError::param("n", "n must be >= 1"));
    }
    if let Some(best_of) = f.uint("best_of", MAX_N)? {
        if best_of != n {
            return Err(ApiError::param("best_of", "best_of other than n is not supported"));
        }
    }
    let max_tokens = match f.uint("max_completion_tokens", u32::MAX as u64)? {
        Some(m) => Some(m),
        None => f.uint("max_tokens", u32::MAX as u64)?,
    };
    let include_usage = match f.get("stream_options") {
        None => false,
        Some(Value::Object(o)) => Fields(o).bool("include_usage").map_err(|e| ApiError { param: Some("stream_options".into()), ..e })?.unwrap_or(false),
        Some(v) => return Err(ApiError::param("stream_options", format!("stream_options must be an object, got {}", type_name(v)))),
    };
    let params = SamplingParams {
        temperature: f.float("temperature")?.unwrap_or(d.temperature),
        top_k: f.uint("top_k", u32::MAX as u64)?.map(|k| k as usize),
        top_p: f.float("top_p")?.unwrap_or(d.top_p),
        min_p: f.float("min_p")?.unwrap_or(d.min_p),
        repetition_penalty: f.float("repetition_penalty")?.unwrap_or(d.repetition_penalty),
        frequency_penalty: f.float("frequency_penalty")?.unwrap_or(d.frequency_penalty),
        presence_penalty: f.float("presence_penalty")?.unwrap_or(d.presence_penalty),
        logit_bias: logit_bias(f)?,
        seed: 0,
        logprobs,
    };
    Ok(GenOptions {
        params,
        seed: f.seed()?,
        max_tokens,
        stop: stop(f)?,
        n: n as usize,
        stream: f.bool("stream")?.unwrap_or(false),
        include_usage,
    })
}

pub fn completion_request(body: &[u8]) -> Result<CompletionRequest, ApiError> {
    let map = parse_object(body)?;
    let f = Fields(&map);
    let prompts = prompts(f.get("prompt"))?;
    let logprobs = f.uint("logprobs", MAX_TOP_LOGPROBS as u64)?.map(|n| n as usize);
    let gen = gen_options(&f, logprobs)?;
    let echo = f.bool("echo")?.unwrap_or(false);
    if prompts.len().saturating_mul(gen.n) > MAX_CHOICES {
        return Err(ApiError::param("n", format!("{} prompts × n = {} is over {MAX_CHOICES} choices", prompts.len(), gen.n)));
    }
    if f.get("suffix").is_some() {
        return Err(ApiError::param("suffix", "suffix is not supported"));
    }
    Ok(CompletionRequest { prompts, echo, gen })
}

pub fn chat_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let map = parse_object(body)?;
    let f = Fields(&map);
    let messages = match f.get("messages") {
        None => return Err(ApiError::param("messages", "messages is required")),
        Some(Value::Array(items)) if items.is_empty() => return Err(ApiError::param("messages", "messages must not be empty")),
        Some(Value::Array(items)) => items.iter().enumerate().map(|(i, m)| message(i, m)).collect::<Result<Vec<_>, _>>()?,
        Some(v) => return Err(ApiError::param("messages", format!("messages must be an array, got {}", type_name(v)))),
    };
    let logprobs = match (f.bool("logprobs")?.unwrap_or(false), f.uint("top_logprobs", MAX_TOP_LOGPROBS as u64)?) {
        (true, n) => Some(n.unwrap_or(0) as usize),
        (false, Some(_)) => return Err(ApiError::param("top_logprobs", "top_logprobs needs logprobs: true")),
        (false, None) => None,
    };
    let gen = gen_options(&f, logprobs)?;
    Ok(ChatRequest { messages, gen })
}

fn message(i: usize, m: &Value) -> Result<ChatMessage, ApiError> {
    let at = format!("messages[{i}]");
    let Value::Object(obj) = m else {
        return Err(ApiError::param(at, format!("each message must be an object, got {}", type_name(m))));
    };
    let f = Fields(obj);
    let role = f.string("role").map_err(|e| ApiError { param: Some(format!("{at}.role")), ..e })?;
    let role = match role {
        Some(r @ ("system" | "developer" | "user" | "assistant" | "tool")) => r.to_string(),
        Some(r) => return Err(ApiError::param(format!("{at}.role"), format!("unknown role {r:?}"))),
        None => return Err(ApiError::param(format!("{at}.role"), "role is required")),
    };
    let content = match f.get("content") {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                let kind = part.get("type").and_then(Value::as_str);
                match (kind, part.get("text").and_then(Value::as_str)) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => {
                        return Err(ApiError::param(
                            format!("{at}.content[{j}]"),
                            "only {\"type\": \"text\", \"text\": ...} content parts are supported",
                        ))
                    }
                }
            }
            text
        }
        Some(v) => return Err(ApiError::param(format!("{at}.content"), format!("content must be a string or an array of parts, got {}", type_name(v)))),
    };
    Ok(ChatMessage { role, content })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> ApiError {
        completion_request(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn every_bad_number_names_its_parameter() {
        for (body, param) in [
            (r#"{"prompt":"x","max_tokens":-1}"#, "max_tokens"),
            (r#"{"prompt":"x","max_tokens":18446744073709551615}"#, "max_tokens"),
            (r#"{"prompt":"x","max_tokens":1.5}"#, "max_tokens"),
            (r#"{"prompt":"x","n":0}"#, "n"),
            (r#"{"prompt":"x","n":100000000000}"#, "n"),
            (r#"{"prompt":"x","logprobs":21}"#, "logprobs"),
            (r#"{"prompt":"x","temperature":1e300}"#, "temperature"),
            (r#"{"prompt":"x","seed":1e30}"#, "seed"),
            (r#"{"prompt":"x","seed":"1"}"#, "seed"),
            (r#"{"prompt":"x","logit_bias":{"a":1}}"#, "logit_bias"),
            (r#"{"prompt":"x","logit_bias":{"5":101}}"#, "logit_bias"),
            (r#"{"prompt":[1,-2]}"#, "prompt"),
            (r#"{"prompt":[[1],[]]}"#, "prompt[1]"),
            (r#"{"prompt":"x","stop":["a","b","c","d","e"]}"#, "stop"),
        ] {
            assert_eq!(err(body).param.as_deref(), Some(param), "{body}");
        }
    }

    #[test]
    fn prompts_of_every_shape() {
        let r = completion_request(br#"{"prompt":[[1,2],"ab"],"n":2,"seed":-1}"#).unwrap();
        assert_eq!(r.prompts, vec![PromptInput::Ids(vec![1, 2]), PromptInput::Text("ab".into())]);
        assert_eq!((r.gen.n, r.gen.seed), (2, Some(u64::MAX)));
        let r = completion_request(br#"{"prompt":[5,6],"max_tokens":null}"#).unwrap();
        assert_eq!((r.prompts, r.gen.max_tokens), (vec![PromptInput::Ids(vec![5, 6])], None));
    }
}
