//! Text generation: prefill the prompt through the matmul path, then decode one token
//! at a time through the matvec path, reusing the KV cache.
//!
//! Greedy decoding picks the next id with the GPU argmax kernel and reads back 4 bytes.
//! Temperature sampling currently reads the last logits row back and samples on the CPU
//! (seeded, exact); GPU sampling belongs to the `sampler` crate.

use std::time::{Duration, Instant};

use kiln_kernels::argmax;
use kiln_tensor::{DType, Device, Recorder, Tensor, TraceEntry};

use crate::model::Model;
use crate::{ModelError, Result};

#[derive(Clone, Copy, Debug)]
pub enum Sampling {
    Greedy,
    Temperature { temperature: f32, seed: u64 },
}

impl Sampling {
    pub fn temperature(temperature: f32, seed: u64) -> Result<Sampling> {
        if !temperature.is_finite() || temperature < 0.0 {
            return Err(ModelError::Param {
                name: "temperature".into(),
                detail: format!("must be a finite number >= 0, got {temperature}"),
            });
        }
        Ok(if temperature == 0.0 { Sampling::Greedy } else { Sampling::Temperature { temperature, seed } })
    }
}

#[derive(Clone, Debug, Default)]
pub struct GenerateStats {
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill: Duration,
    pub decode: Duration,
    /// Bytes of the KV cache on the GPU.
    pub kv_cache_bytes: u64,
    /// Every dispatch of the first decode step, when a trace was asked for.
    pub trace: Option<Vec<TraceEntry>>,
}

impl GenerateStats {
    pub fn prefill_tok_s(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill.as_secs_f64().max(1e-9)
    }
    /// Decode rate over the tokens after the first (the first comes from the prefill).
    pub fn decode_tok_s(&self) -> f64 {
        self.generated_tokens.saturating_sub(1) as f64 / self.decode.as_secs_f64().max(1e-9)
    }
}

pub struct GenerateOptions {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    /// Stop after emitting one of these ids.
    pub eos_ids: Vec<u32>,
    /// Record a trace of the first decode step.
    pub trace: bool,
}

/// Check a prompt against the vocabulary and the context length before any GPU work.
pub fn check_prompt(model: &Model, prompt: &[u32], max_new_tokens: usize) -> Result<()> {
    let c = model.config();
    if prompt.is_empty() {
        return Err(ModelError::Param { name: "prompt".into(), detail: "the prompt has no tokens".into() });
    }
    kiln_kernels::embedding::check_ids(prompt, c.vocab_size)?;
    let need = prompt.len() + max_new_tokens;
    if need > c.max_position_embeddings {
        return Err(ModelError::Context {
            detail: format!(
                "the prompt has {} tokens and {max_new_tokens} new tokens were asked for: {need} positions, \
                 but the model's context is {} positions",
                prompt.len(),
                c.max_position_embeddings
            ),
        });
    }
    Ok(())
}

/// Generate up to `opts.max_new_tokens` ids after `prompt`, calling `on_token` with each
/// as soon as it is known (for streaming). Returns the generated ids and statistics.
pub fn generate(
    dev: &Device,
    model: &Model,
    prompt: &[u32],
    opts: &GenerateOptions,
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<(Vec<u32>, GenerateStats)> {
    check_prompt(model, prompt, opts.max_new_tokens)?;
    let mut cache = model.new_cache(dev, prompt.len() + opts.max_new_tokens)?;
    let mut stats = GenerateStats { prompt_tokens: prompt.len(), kv_cache_bytes: cache.bytes(), ..Default::default() };
    let mut rng = crate::sample::Rng::new(match opts.sampling {
        Sampling::Temperature { seed, .. } => seed,
        Sampling::Greedy => 0,
    });
    let mut out = Vec::new();
    if opts.max_new_tokens == 0 {
        return Ok((out, stats));
    }

    let t0 = Instant::now();
    let ids = Tensor::from_slice(dev, prompt, &[prompt.len()])?;
    let mut rec = Recorder::new(dev);
    let logits = model.forward(&mut rec, &ids, &mut cache, false)?;
    let mut next = pick(dev, rec, &logits, opts.sampling, &mut rng)?.0;
    stats.prefill = t0.elapsed();

    let t1 = Instant::now();
    loop {
        out.push(next);
        on_token(next)?;
        if opts.eos_ids.contains(&next) || out.len() == opts.max_new_tokens {
            break;
        }
        let ids = Tensor::from_slice(dev, &[next], &[1])?;
        let mut rec = Recorder::new(dev);
        if opts.trace && stats.trace.is_none() {
            rec = rec.with_trace();
        }
        let logits = model.forward(&mut rec, &ids, &mut cache, false)?;
        let (id, trace) = pick(dev, rec, &logits, opts.sampling, &mut rng)?;
        if opts.trace && stats.trace.is_none() {
            stats.trace = Some(trace);
        }
        next = id;
    }
    stats.decode = t1.elapsed();
    stats.generated_tokens = out.len();
    Ok((out, stats))
}

/// Choose the next id from logits `[1, vocab]`; submits `rec` (which holds the forward
/// pass) and returns its trace.
fn pick(dev: &Device, mut rec: Recorder, logits: &Tensor, sampling: Sampling, rng: &mut crate::sample::Rng) -> Result<(u32, Vec<TraceEntry>)> {
    match sampling {
        Sampling::Greedy => {
            let id = Tensor::empty(dev, &[1], DType::U32)?;
            argmax::argmax(&mut rec, logits, &id)?;
            let trace = rec.submit()?.trace;
            Ok((id.to_vec_u32()?[0], trace))
        }
        Sampling::Temperature { temperature, .. } => {
            let trace = rec.submit()?.trace;
            let row = logits.to_vec_f32()?;
            Ok((crate::sample::sample_with_temperature(&row, temperature, rng), trace))
        }
    }
}
