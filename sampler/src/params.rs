//! Sampling parameters, validated against the vocabulary before any GPU work.
//!
//! The order they apply in, per step (the same as Hugging Face's logits processors then
//! warpers):
//! 1. repetition penalty (HF semantics: over ids seen in the prompt or the output, a
//!    logit x becomes x / r when x > 0 and x · r otherwise);
//! 2. frequency and presence penalties (OpenAI semantics, over output ids only:
//!    `x − f · count − p · [count > 0]`);
//! 3. logit bias (added; a ban is −inf);
//! 4. temperature (x / T; T = 0 means greedy: steps 5-8 are skipped);
//! 5. top-k (keep the ids whose logit is ≥ the k-th largest: ties at the boundary stay);
//! 6. top-p (keep the smallest set of top ids whose probability, renormalised over what
//!    top-k kept, reaches p);
//! 7. min-p (keep ids with probability ≥ min_p × the top probability);
//! 8. a draw from softmax over what is kept, with a counter-based RNG keyed by
//!    (seed, step): the same seed gives the same tokens on every run and device.

use crate::error::{param_error, Result};

/// The most alternatives `logprobs` may ask for per token (as OpenAI's `top_logprobs`).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// How to choose each token; `Default` is plain sampling at temperature 1 with every filter
/// and penalty off, seed 0.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingParams {
    /// 0 is greedy; otherwise softmax(logits / temperature).
    pub temperature: f32,
    /// Keep only the k most likely ids (`None`: off).
    pub top_k: Option<usize>,
    /// Nucleus sampling threshold in (0, 1]; 1 is off.
    pub top_p: f32,
    /// Minimum probability relative to the top token, in [0, 1]; 0 is off.
    pub min_p: f32,
    /// Hugging Face repetition penalty, > 0; 1 is off.
    pub repetition_penalty: f32,
    /// OpenAI frequency penalty in [-2, 2]; 0 is off.
    pub frequency_penalty: f32,
    /// OpenAI presence penalty in [-2, 2]; 0 is off.
    pub presence_penalty: f32,
    /// (token id, bias) pairs added to the logits; `f32::NEG_INFINITY` bans the id.
    pub logit_bias: Vec<(u32, f32)>,
    /// Seed of the counter-based RNG.
    pub seed: u64,
    /// `Some(n)`: report each generated token's log-prob and its top `n` alternatives.
    pub logprobs: Option<usize>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        SamplingParams {
            temperature: 1.0,
            top_k: None,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            frequency_penalty: 0.0,
            presence_penalty: 0.0,
            logit_bias: Vec::new(),
            seed: 0,
            logprobs: None,
        }
    }
}

impl SamplingParams {
    /// Greedy decoding with no penalties.
    pub fn greedy() -> SamplingParams {
        SamplingParams { temperature: 0.0, ..Default::default() }
    }

    /// True when the temperature is 0.
    pub fn is_greedy(&self) -> bool {
        self.temperature == 0.0
    }

    /// Whether any step before the draw changes the logits.
    pub fn has_penalties(&self) -> bool {
        self.repetition_penalty != 1.0 || self.frequency_penalty != 0.0 || self.presence_penalty != 0.0
    }

    /// Check every parameter; the error names the parameter and its allowed range.
    pub fn validate(&self, vocab_size: usize) -> Result<()> {
        let t = self.temperature;
        if !t.is_finite() || t < 0.0 {
            return Err(param_error("temperature", format!("must be a finite number >= 0 (0 is greedy), got {t}")));
        }
        if let Some(k) = self.top_k {
            if k == 0 {
                return Err(param_error("top_k", "must be >= 1 (leave it unset to turn top-k off), got 0"));
            }
        }
        let p = self.top_p;
        if !(p > 0.0 && p <= 1.0) {
            return Err(param_error("top_p", format!("must be in (0, 1] (1 turns it off), got {p}")));
        }
        let m = self.min_p;
        if !(0.0..=1.0).contains(&m) {
            return Err(param_error("min_p", format!("must be in [0, 1] (0 turns it off), got {m}")));
        }
        let r = self.repetition_penalty;
        if !r.is_finite() || r <= 0.0 {
            return Err(param_error("repetition_penalty", format!("must be a finite number > 0 (1 turns it off), got {r}")));
        }
        for (name, v) in [("frequency_penalty", self.frequency_penalty), ("presence_penalty", self.presence_penalty)] {
            if !(-2.0..=2.0).contains(&v) {
                return Err(param_error(name, format!("must be in [-2, 2] (0 turns it off), got {v}")));
            }
        }
        for &(id, bias) in &self.logit_bias {
            if id as usize >= vocab_size {
                return Err(param_error(
                    "logit_bias",
                    format!("token id {id} is outside the vocabulary (ids are 0..{})", vocab_size.saturating_sub(1)),
                ));
            }
            if bias.is_nan() || bias == f32::INFINITY {
                return Err(param_error("logit_bias", format!("bias for id {id} must be a number or -inf (a ban), got {bias}")));
            }
        }
        if let Some(n) = self.logprobs {
            if n > MAX_TOP_LOGPROBS {
                return Err(param_error("logprobs", format!("at most {MAX_TOP_LOGPROBS} alternatives per token, got {n}")));
            }
            if n > vocab_size {
                return Err(param_error("logprobs", format!("{n} alternatives asked for but the vocabulary has {vocab_size} ids")));
            }
        }
        Ok(())
    }
}
