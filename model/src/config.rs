//! `config.json` and `generation_config.json` of a Hugging Face model directory, read into
//! one [`ModelConfig`] for every supported family (GPT-2, Qwen2, Llama, Qwen3, Gemma 3).
//!
//! Fields are read by hand from the JSON object (not by a serde struct) so that every
//! problem is reported as `config.json: field `x`: what is wrong`.

use std::path::{Path, PathBuf};

use kiln_tensor::DType;
use serde_json::{Map, Value};

use crate::error::{ModelError, Result};
pub use crate::gemma3::Gemma3Params;
use crate::gemma3::gemma3_params;

/// The model config's file name in a Hugging Face directory.
pub const CONFIG_FILE: &str = "config.json";
/// The generation defaults' file name in a Hugging Face directory.
pub const GENERATION_CONFIG_FILE: &str = "generation_config.json";

/// The model families kiln implements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// `GPT2LMHeadModel` / `model_type: gpt2`: learned positions, LayerNorm, GELU MLP,
    /// Conv1D weights stored `[in, out]`.
    Gpt2,
    /// `Qwen2ForCausalLM` / `qwen2`: RMSNorm, RoPE, GQA, SwiGLU, bias on q/k/v.
    Qwen2,
    /// `LlamaForCausalLM` / `llama`: Qwen2 without the q/k/v bias (unless `attention_bias`).
    Llama,
    /// `Qwen3ForCausalLM` / `qwen3`: Llama's layout plus an RMSNorm over each head of q and
    /// of k before RoPE (`q_norm`, `k_norm`), `head_dim` set apart from hidden / heads, no
    /// q/k/v bias (unless `attention_bias`).
    Qwen3,
    /// `Gemma3ForCausalLM` / `gemma3_text`: embeddings scaled by sqrt(hidden), RMSNorms
    /// with `(1 + w)` before and after attention and the MLP, q/k head norms, a GELU-tanh
    /// gated MLP, sliding-window (local) and global layers with their own RoPE bases.
    Gemma3,
}

impl Arch {
    /// The `model_type` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Gpt2 => "gpt2",
            Arch::Qwen2 => "qwen2",
            Arch::Llama => "llama",
            Arch::Qwen3 => "qwen3",
            Arch::Gemma3 => "gemma3_text",
        }
    }

    /// From an `architectures` entry (class name) or a `model_type`.
    pub fn from_hf_name(s: &str) -> Option<Arch> {
        match s {
            "GPT2LMHeadModel" | "GPT2Model" | "gpt2" => Some(Arch::Gpt2),
            "Qwen2ForCausalLM" | "Qwen2Model" | "qwen2" => Some(Arch::Qwen2),
            "LlamaForCausalLM" | "LlamaModel" | "llama" => Some(Arch::Llama),
            "Qwen3ForCausalLM" | "Qwen3Model" | "qwen3" => Some(Arch::Qwen3),
            "Gemma3ForCausalLM" | "Gemma3TextModel" | "gemma3_text" => Some(Arch::Gemma3),
            _ => None,
        }
    }

    /// Qwen2, Llama and Qwen3 share one forward pass.
    pub fn is_llama_like(self) -> bool {
        matches!(self, Arch::Qwen2 | Arch::Llama | Arch::Qwen3)
    }

    /// RMSNorm over each head of q and k before RoPE (Qwen3's `q_norm` / `k_norm`).
    pub fn has_qk_norm(self) -> bool {
        self == Arch::Qwen3
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One config for every family. Field names follow the Llama spelling; the GPT-2
/// spellings are noted on each field.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// The model family, from `architectures` / `model_type`.
    pub arch: Arch,
    /// `vocab_size`.
    pub vocab_size: usize,
    /// `hidden_size` (GPT-2: `n_embd`).
    pub hidden_size: usize,
    /// `num_hidden_layers` (GPT-2: `n_layer`).
    pub n_layers: usize,
    /// `num_attention_heads` (GPT-2: `n_head`).
    pub n_heads: usize,
    /// `num_key_value_heads`, default `n_heads` (GPT-2: always `n_heads`).
    pub n_kv_heads: usize,
    /// `head_dim`, default `hidden_size / n_heads`.
    pub head_dim: usize,
    /// `intermediate_size` (GPT-2: `n_inner`, default `4 * n_embd`).
    pub intermediate_size: usize,
    /// `max_position_embeddings` (GPT-2: `n_positions`, else `n_ctx`).
    pub max_position_embeddings: usize,
    /// `rms_norm_eps` (default 1e-6) or GPT-2's `layer_norm_epsilon` (default 1e-5).
    pub norm_eps: f64,
    /// `rope_theta` or `rope_parameters.rope_theta`, default 10000 (unused by GPT-2).
    pub rope_theta: f64,
    /// `rope_scaling` (or the non-default part of `rope_parameters`) as written, when its
    /// `rope_type` is not `default`; `None` for plain RoPE. The forward pass decides what
    /// it supports.
    pub rope_scaling: Option<Value>,
    /// `tie_word_embeddings`: default true for GPT-2, false for Llama and Qwen2.
    /// See [`crate::ModelDir::lm_head_tied`] for the rule that also looks at the weights.
    pub tie_word_embeddings: bool,
    /// Bias on the q/k/v projections: Qwen2 always; Llama `attention_bias` (default false);
    /// GPT-2 always (all its linear layers have a bias).
    pub qkv_bias: bool,
    /// Bias on the attention output projection: Llama `attention_bias`; Qwen2 never; GPT-2 always.
    pub o_bias: bool,
    /// Bias on the MLP projections: Llama `mlp_bias` (default false); Qwen2 never; GPT-2 always.
    pub mlp_bias: bool,
    /// `hidden_act` (Llama/Qwen2, default `silu`) or `activation_function` (GPT-2, default `gelu_new`).
    pub hidden_act: String,
    /// Qwen2 `sliding_window` when `use_sliding_window` is true; otherwise `None`.
    pub sliding_window: Option<usize>,
    /// Gemma 3's own fields (local/global layers, attention scale); `None` for the others.
    pub gemma3: Option<Gemma3Params>,
    /// `bos_token_id` (generation_config.json wins over config.json).
    pub bos_token_id: Option<u32>,
    /// End-of-sequence ids: generation_config.json's `eos_token_id` first, then the ids of
    /// config.json's that are not already listed. Each may be an int or a list.
    pub eos_token_ids: Vec<u32>,
    /// `pad_token_id`, if any.
    pub pad_token_id: Option<u32>,
    /// `torch_dtype` or `dtype` (`float32`, `float16`, `bfloat16`): the dtype the
    /// checkpoint was saved in. The weights carry their own dtypes; this is informational.
    pub dtype: Option<DType>,
    /// Where the config was read from.
    pub path: PathBuf,
}

/// The sampling defaults of `generation_config.json` (all optional). The eos/bos ids
/// are folded into [`ModelConfig`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerationConfig {
    /// `do_sample`: whether to sample (else greedy).
    pub do_sample: Option<bool>,
    /// `temperature`.
    pub temperature: Option<f64>,
    /// `top_k`.
    pub top_k: Option<usize>,
    /// `top_p`.
    pub top_p: Option<f64>,
    /// `min_p`.
    pub min_p: Option<f64>,
    /// `repetition_penalty`.
    pub repetition_penalty: Option<f64>,
    /// `max_new_tokens`.
    pub max_new_tokens: Option<usize>,
    /// `eos_token_id` (an int or a list); empty when absent.
    pub eos_token_ids: Vec<u32>,
    /// `bos_token_id`.
    pub bos_token_id: Option<u32>,
    /// `pad_token_id`.
    pub pad_token_id: Option<u32>,
    /// Where it was read from; `None` when the directory has no generation_config.json.
    pub path: Option<PathBuf>,
}

/// Read a JSON file whose top level must be an object.
pub(crate) fn read_json_object(path: &Path, what: &str) -> Result<Map<String, Value>> {
    if !path.exists() {
        return Err(ModelError::MissingFile { path: path.to_path_buf(), what: what.to_string() });
    }
    let text = std::fs::read_to_string(path).map_err(|e| ModelError::io(path, e))?;
    let value: Value =
        serde_json::from_str(&text).map_err(|source| ModelError::Json { path: path.to_path_buf(), source })?;
    match value {
        Value::Object(m) => Ok(m),
        other => Err(ModelError::config(path, "(top level)", format!("expected a JSON object, got {}", kind(&other)))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Typed access to the fields of one JSON object, with errors naming the file and field.
pub(crate) struct Fields<'a> {
    pub path: &'a Path,
    pub obj: &'a Map<String, Value>,
    /// Prefix for nested objects, e.g. `rope_parameters.`.
    pub prefix: String,
}

impl<'a> Fields<'a> {
    pub fn new(path: &'a Path, obj: &'a Map<String, Value>) -> Self {
        Fields { path, obj, prefix: String::new() }
    }

    pub(crate) fn err(&self, field: &str, detail: impl Into<String>) -> ModelError {
        ModelError::config(self.path, format!("{}{field}", self.prefix), detail)
    }

    /// The value of `field`, treating JSON null as absent.
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        match self.obj.get(field) {
            None | Some(Value::Null) => None,
            Some(v) => Some(v),
        }
    }

    pub fn nested(&self, field: &str) -> Result<Option<Fields<'a>>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Object(m)) => {
                Ok(Some(Fields { path: self.path, obj: m, prefix: format!("{}{field}.", self.prefix) }))
            }
            Some(v) => Err(self.err(field, format!("expected an object, got {}", kind(v)))),
        }
    }

    pub fn usize(&self, field: &str) -> Result<Option<usize>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) => usize::try_from(n).map(Some).map_err(|_| self.err(field, format!("{n} is too large"))),
                None => Err(self.err(field, format!("expected a non-negative integer, got {v}"))),
            },
        }
    }

    /// A required positive integer, under the first of `names` that is present.
    pub fn positive(&self, names: &[&str]) -> Result<usize> {
        for name in names {
            if let Some(n) = self.usize(name)? {
                if n == 0 {
                    return Err(self.err(name, "must be positive, got 0"));
                }
                return Ok(n);
            }
        }
        let field = names.join("` or `");
        Err(self.err(&field, "is missing"))
    }

    /// An optional positive integer.
    pub fn positive_opt(&self, name: &str) -> Result<Option<usize>> {
        match self.usize(name)? {
            Some(0) => Err(self.err(name, "must be positive, got 0")),
            other => Ok(other),
        }
    }

    pub fn f64(&self, field: &str) -> Result<Option<f64>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x.is_finite() => Ok(Some(x)),
                _ => Err(self.err(field, format!("expected a number, got {v}"))),
            },
        }
    }

    pub fn positive_f64(&self, field: &str) -> Result<Option<f64>> {
        match self.f64(field)? {
            Some(x) if x <= 0.0 => Err(self.err(field, format!("must be positive, got {x}"))),
            other => Ok(other),
        }
    }

    /// A positive number that the GPU uses as f32 (a RoPE base): past f32's range it
    /// would become infinite there, so it is refused here, naming the field.
    pub fn positive_f32(&self, field: &str) -> Result<Option<f64>> {
        match self.positive_f64(field)? {
            Some(x) if x > f64::from(f32::MAX) => Err(self.err(field, format!("{x} is past f32's range"))),
            other => Ok(other),
        }
    }

    pub fn bool(&self, field: &str) -> Result<Option<bool>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(v) => Err(self.err(field, format!("expected true or false, got {v}"))),
        }
    }

    pub fn str(&self, field: &str) -> Result<Option<&'a str>> {
        match self.get(field) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(v) => Err(self.err(field, format!("expected a string, got {v}"))),
        }
    }

    /// A token id: a non-negative integer that fits u32.
    pub fn token_id(&self, field: &str) -> Result<Option<u32>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => Ok(Some(self.as_token_id(field, v)?)),
        }
    }

    fn as_token_id(&self, field: &str, v: &Value) -> Result<u32> {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| self.err(field, format!("expected a token id (non-negative integer), got {v}")))
    }

    /// A token id or a list of them (`eos_token_id` is either).
    pub fn token_ids(&self, field: &str) -> Result<Vec<u32>> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(|v| self.as_token_id(field, v)).collect(),
            Some(v) => Ok(vec![self.as_token_id(field, v)?]),
        }
    }

    /// `torch_dtype` (transformers < 4.56) or `dtype` (newer).
    pub fn dtype(&self) -> Result<Option<DType>> {
        for field in ["torch_dtype", "dtype"] {
            if let Some(s) = self.str(field)? {
                return match parse_torch_dtype(s) {
                    Some(d) => Ok(Some(d)),
                    None => Err(self.err(field, format!("unknown dtype {s:?}; expected float32, float16 or bfloat16"))),
                };
            }
        }
        Ok(None)
    }
}

/// `float32` / `torch.float32` / `fp32` … to a kiln dtype.
pub fn parse_torch_dtype(s: &str) -> Option<DType> {
    let s = s.trim().strip_prefix("torch.").unwrap_or(s.trim());
    match s.to_ascii_lowercase().as_str() {
        "float32" | "float" | "fp32" | "f32" => Some(DType::F32),
        "float16" | "half" | "fp16" | "f16" => Some(DType::F16),
        "bfloat16" | "bf16" => Some(DType::BF16),
        _ => None,
    }
}

fn detect_arch(f: &Fields) -> Result<Arch> {
    let model_type = f.str("model_type")?;
    let mut listed = Vec::new();
    match f.get("architectures") {
        None => {}
        Some(Value::Array(items)) => {
            for item in items {
                match item.as_str() {
                    Some(s) => listed.push(s.to_string()),
                    None => return Err(f.err("architectures", format!("expected a list of strings, got {item}"))),
                }
            }
        }
        Some(v) => return Err(f.err("architectures", format!("expected a list of strings, got {v}"))),
    }
    if let Some(arch) = listed.iter().find_map(|s| Arch::from_hf_name(s)) {
        return Ok(arch);
    }
    if !listed.is_empty() {
        let mut value = format!("architectures = {listed:?}");
        if let Some(mt) = model_type {
            value.push_str(&format!(", model_type = {mt:?}"));
        }
        return Err(ModelError::UnknownArchitecture { path: f.path.to_path_buf(), value });
    }
    match model_type {
        Some(mt) => Arch::from_hf_name(mt).ok_or_else(|| ModelError::UnknownArchitecture {
            path: f.path.to_path_buf(),
            value: format!("model_type = {mt:?}"),
        }),
        None => Err(f.err("architectures` or `model_type", "is missing: cannot tell which model this is")),
    }
}

impl ModelConfig {
    /// Read `config.json` (required) and `generation_config.json` (optional) from `dir`.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<(ModelConfig, GenerationConfig)> {
        let dir = dir.as_ref();
        let generation = GenerationConfig::from_dir(dir)?;
        let config = ModelConfig::from_file(dir.join(CONFIG_FILE), Some(&generation))?;
        Ok((config, generation))
    }

    /// Read one config.json; `generation` (if given) contributes eos/bos/pad ids.
    pub fn from_file(path: impl AsRef<Path>, generation: Option<&GenerationConfig>) -> Result<ModelConfig> {
        let path = path.as_ref();
        let obj = read_json_object(path, "model config (config.json)")?;
        ModelConfig::from_json(path, &obj, generation)
    }

    /// Parse an already-read config object; `path` is only used in messages.
    pub fn from_json(
        path: &Path,
        obj: &Map<String, Value>,
        generation: Option<&GenerationConfig>,
    ) -> Result<ModelConfig> {
        let f = Fields::new(path, obj);
        let arch = detect_arch(&f)?;
        let vocab_size = f.positive(&["vocab_size"])?;
        let dtype = f.dtype()?;
        let mut cfg = match arch {
            Arch::Gpt2 => {
                for (field, unsupported_when) in [
                    ("scale_attn_by_inverse_layer_idx", true),
                    ("reorder_and_upcast_attn", true),
                    ("scale_attn_weights", false),
                ] {
                    if f.bool(field)? == Some(unsupported_when) {
                        return Err(f.err(field, format!("{unsupported_when} is not supported by kiln's GPT-2")));
                    }
                }
                let hidden = f.positive(&["n_embd", "hidden_size"])?;
                let n_heads = f.positive(&["n_head", "num_attention_heads"])?;
                if hidden % n_heads != 0 {
                    return Err(f.err(
                        "n_embd",
                        format!(
                            "{hidden} is not divisible by n_head = {n_heads} (hidden must equal n_heads * head_dim)"
                        ),
                    ));
                }
                let intermediate = match f.positive_opt("n_inner")? {
                    Some(n) => n,
                    None => hidden.checked_mul(4).ok_or_else(|| f.err("n_embd", "is too large"))?,
                };
                ModelConfig {
                    arch,
                    vocab_size,
                    hidden_size: hidden,
                    n_layers: f.positive(&["n_layer", "num_hidden_layers"])?,
                    n_heads,
                    n_kv_heads: n_heads,
                    head_dim: hidden / n_heads,
                    intermediate_size: intermediate,
                    max_position_embeddings: f.positive(&["n_positions", "n_ctx", "max_position_embeddings"])?,
                    norm_eps: f.positive_f64("layer_norm_epsilon")?.unwrap_or(1e-5),
                    rope_theta: 10000.0,
                    rope_scaling: None,
                    tie_word_embeddings: f.bool("tie_word_embeddings")?.unwrap_or(true),
                    qkv_bias: true,
                    o_bias: true,
                    mlp_bias: true,
                    hidden_act: f.str("activation_function")?.unwrap_or("gelu_new").to_string(),
                    sliding_window: None,
                    gemma3: None,
                    bos_token_id: f.token_id("bos_token_id")?,
                    eos_token_ids: f.token_ids("eos_token_id")?,
                    pad_token_id: f.token_id("pad_token_id")?,
                    dtype,
                    path: path.to_path_buf(),
                }
            }
            Arch::Qwen2 | Arch::Llama | Arch::Qwen3 | Arch::Gemma3 => {
                let hidden = f.positive(&["hidden_size"])?;
                let n_heads = f.positive(&["num_attention_heads"])?;
                let n_kv_heads = f.positive_opt("num_key_value_heads")?.unwrap_or(n_heads);
                if n_heads % n_kv_heads != 0 {
                    return Err(f.err(
                        "num_key_value_heads",
                        format!(
                            "num_attention_heads = {n_heads} is not a multiple of num_key_value_heads = {n_kv_heads}"
                        ),
                    ));
                }
                let head_dim = match f.positive_opt("head_dim")? {
                    Some(d) => d,
                    None => {
                        if hidden % n_heads != 0 {
                            return Err(f.err(
                                "hidden_size",
                                format!(
                                    "{hidden} is not divisible by num_attention_heads = {n_heads} and no `head_dim` is given"
                                ),
                            ));
                        }
                        hidden / n_heads
                    }
                };
                if head_dim % 2 != 0 {
                    return Err(f.err("head_dim", format!("{head_dim} must be even for rotary embeddings")));
                }
                let n_layers = f.positive(&["num_hidden_layers"])?;
                let (rope_theta, rope_scaling, gemma3) = if arch == Arch::Gemma3 {
                    let (theta, scaling, g) = gemma3_params(&f, n_layers)?;
                    (theta, scaling, Some(g))
                } else {
                    let (theta, scaling) = rope(&f)?;
                    (theta, scaling, None)
                };
                let attention_bias = f.bool("attention_bias")?;
                let (qkv_bias, o_bias, mlp_bias) = match arch {
                    // transformers' Qwen2Attention: bias=True on q/k/v, False on o_proj; MLP without bias.
                    Arch::Qwen2 => (true, false, false),
                    _ => {
                        let b = attention_bias.unwrap_or(false);
                        (b, b, f.bool("mlp_bias")?.unwrap_or(false))
                    }
                };
                let sliding_window = if arch == Arch::Gemma3 {
                    gemma3.as_ref().map(|g| g.sliding_window)
                } else if f.bool("use_sliding_window")?.unwrap_or(false) {
                    f.positive_opt("sliding_window")?
                } else {
                    None
                };
                ModelConfig {
                    arch,
                    vocab_size,
                    hidden_size: hidden,
                    n_layers,
                    n_heads,
                    n_kv_heads,
                    head_dim,
                    intermediate_size: f.positive(&["intermediate_size"])?,
                    max_position_embeddings: f.positive(&["max_position_embeddings"])?,
                    norm_eps: f.positive_f64("rms_norm_eps")?.unwrap_or(1e-6),
                    rope_theta,
                    rope_scaling,
                    tie_word_embeddings: f.bool("tie_word_embeddings")?.unwrap_or(arch == Arch::Gemma3),
                    qkv_bias,
                    o_bias,
                    mlp_bias,
                    hidden_act: match arch {
                        Arch::Gemma3 => f.str("hidden_activation")?.unwrap_or("gelu_pytorch_tanh").to_string(),
                        _ => f.str("hidden_act")?.unwrap_or("silu").to_string(),
                    },
                    sliding_window,
                    gemma3,
                    bos_token_id: f.token_id("bos_token_id")?,
                    eos_token_ids: f.token_ids("eos_token_id")?,
                    pad_token_id: f.token_id("pad_token_id")?,
                    dtype,
                    path: path.to_path_buf(),
                }
            }
        };
        cfg.check_widths()?;
        if let Some(g) = generation {
            let mut eos = g.eos_token_ids.clone();
            for id in &cfg.eos_token_ids {
                if !eos.contains(id) {
                    eos.push(*id);
                }
            }
            cfg.eos_token_ids = eos;
            cfg.bos_token_id = g.bos_token_id.or(cfg.bos_token_id);
            cfg.pad_token_id = g.pad_token_id.or(cfg.pad_token_id);
        }
        Ok(cfg)
    }

    /// The widths the layout derives from the config (`q_dim`, `kv_dim`, GPT-2's fused
    /// `3 * hidden`) must fit usize: huge numbers in a corrupt config are an error, not an
    /// arithmetic overflow.
    pub(crate) fn check_widths(&self) -> Result<()> {
        let (heads, kv_heads, hidden) = match self.arch {
            Arch::Gpt2 => ("n_head", "n_head", "n_embd"),
            _ => ("num_attention_heads", "num_key_value_heads", "hidden_size"),
        };
        let checks = [
            (heads, self.n_heads.checked_mul(self.head_dim), "times head_dim"),
            (kv_heads, self.n_kv_heads.checked_mul(self.head_dim), "times head_dim"),
            (hidden, self.hidden_size.checked_mul(3), "times 3"),
        ];
        for (field, product, what) in checks {
            if product.is_none() {
                return Err(ModelError::config(&self.path, field, format!("is too large ({what} overflows)")));
            }
        }
        Ok(())
    }

    /// Width of the concatenated q projection output (`n_heads * head_dim`).
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Width of one of the k / v projection outputs (`n_kv_heads * head_dim`).
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }
}

/// `rope_theta` (top level) or `rope_parameters.rope_theta` (transformers v5), and any
/// non-default scaling (`rope_scaling`, or `rope_parameters` with a `rope_type` other
/// than `default`).
fn rope(f: &Fields) -> Result<(f64, Option<Value>)> {
    let params = f.nested("rope_parameters")?;
    let mut theta = f.positive_f32("rope_theta")?;
    let mut scaling = None;
    if let Some(p) = &params {
        if let Some(t) = p.positive_f32("rope_theta")? {
            theta = Some(t);
        }
        let rope_type = p.str("rope_type")?.or(p.str("type")?).unwrap_or("default");
        if rope_type != "default" {
            scaling = Some(Value::Object(p.obj.clone()));
        }
    }
    if scaling.is_none() {
        if let Some(s) = f.nested("rope_scaling")? {
            let rope_type = s.str("rope_type")?.or(s.str("type")?).unwrap_or("default");
            if rope_type != "default" {
                scaling = Some(Value::Object(s.obj.clone()));
            }
        }
    }
    Ok((theta.unwrap_or(10000.0), scaling))
}

impl GenerationConfig {
    /// Read `generation_config.json` from `dir` if it is there; defaults otherwise.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<GenerationConfig> {
        let path = dir.as_ref().join(GENERATION_CONFIG_FILE);
        if !path.exists() {
            return Ok(GenerationConfig::default());
        }
        GenerationConfig::from_file(path)
    }

    /// Read a `generation_config.json` at `path`; absent fields are `None`.
    pub fn from_file(path: impl AsRef<Path>) -> Result<GenerationConfig> {
        let path = path.as_ref();
        let obj = read_json_object(path, "generation config")?;
        let f = Fields::new(path, &obj);
        Ok(GenerationConfig {
            do_sample: f.bool("do_sample")?,
            temperature: f.f64("temperature")?,
            top_k: f.usize("top_k")?,
            top_p: f.f64("top_p")?,
            min_p: f.f64("min_p")?,
            repetition_penalty: f.f64("repetition_penalty")?,
            max_new_tokens: f.usize("max_new_tokens")?,
            eos_token_ids: f.token_ids("eos_token_id")?,
            bos_token_id: f.token_id("bos_token_id")?,
            pad_token_id: f.token_id("pad_token_id")?,
            path: Some(path.to_path_buf()),
        })
    }
}
