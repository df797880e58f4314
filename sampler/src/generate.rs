//! Text generation: prefill the prompt (matmul path), then decode one token at a time
//! (matvec path) over the KV cache. Each step records the forward pass and the sampling
//! kernels into one command buffer; the chosen id stays on the GPU as the next step's
//! input, and only it (4 bytes) is read back, plus the log-probs when asked for.

use std::time::{Duration, Instant};

use kiln_model::generate::check_prompt;
use kiln_model::Model;
use kiln_tensor::{Device, Recorder, Tensor, TraceEntry};

use crate::gpu::{Sampler, TokenChoice};
use crate::params::SamplingParams;
use crate::Result;

/// Counts, times and sizes of one [`generate`] call.
#[derive(Clone, Debug, Default)]
pub struct GenerateStats {
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Wall time of the prefill, the first token's sampling and readback included.
    pub prefill: Duration,
    /// Wall time from the first token to the end: the decode steps and the `on_token` calls.
    pub decode: Duration,
    /// Bytes of the KV cache on the GPU.
    pub kv_cache_bytes: u64,
    /// Bytes read back from the GPU per step.
    pub readback_bytes_per_step: u64,
    /// Every dispatch of the first decode step, when a trace was asked for.
    pub trace: Option<Vec<TraceEntry>>,
    /// GPU nanoseconds of each traced dispatch, where the adapter has timestamp queries.
    pub trace_gpu_ns: Option<Vec<f64>>,
}

impl GenerateStats {
    /// Prompt tokens per second of [`GenerateStats::prefill`].
    pub fn prefill_tok_s(&self) -> f64 {
        self.prompt_tokens as f64 / self.prefill.as_secs_f64().max(1e-9)
    }
    /// Decode rate over the tokens after the first (the first comes from the prefill).
    pub fn decode_tok_s(&self) -> f64 {
        self.generated_tokens.saturating_sub(1) as f64 / self.decode.as_secs_f64().max(1e-9)
    }
}

/// Settings of [`generate`].
pub struct GenerateOptions {
    /// Most tokens to generate; 0 returns no tokens without running the model (the prompt
    /// is still checked).
    pub max_new_tokens: usize,
    /// How each token is sampled.
    pub sampling: SamplingParams,
    /// Stop after emitting one of these ids.
    pub eos_ids: Vec<u32>,
    /// Record a trace (and GPU timestamps) of the first decode step.
    pub trace: bool,
}

impl GenerateOptions {
    /// Greedy decoding of up to `max_new_tokens` tokens, stopping at `eos_ids`, no trace.
    pub fn greedy(max_new_tokens: usize, eos_ids: Vec<u32>) -> GenerateOptions {
        GenerateOptions { max_new_tokens, sampling: SamplingParams::greedy(), eos_ids, trace: false }
    }
}

/// Whether generation goes on after a token (the caller may stop it, e.g. at a stop string).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Generate the next token.
    Continue,
    /// Stop after this token.
    Stop,
}

/// Generate up to `opts.max_new_tokens` tokens after `prompt`, calling `on_token` with
/// each as soon as it is known (for streaming). Returns the tokens and statistics.
pub fn generate(
    dev: &Device,
    model: &Model,
    prompt: &[u32],
    opts: &GenerateOptions,
    mut on_token: impl FnMut(&TokenChoice) -> Result<Flow>,
) -> Result<(Vec<TokenChoice>, GenerateStats)> {
    check_prompt(model.config(), prompt, opts.max_new_tokens)?;
    let sampler = Sampler::new(dev, &opts.sampling, model.config().vocab_size, prompt)?;
    let mut cache = model.new_cache(dev, prompt.len() + opts.max_new_tokens)?;
    let mut stats = GenerateStats {
        prompt_tokens: prompt.len(),
        kv_cache_bytes: cache.bytes(),
        readback_bytes_per_step: sampler.readback_bytes(),
        ..Default::default()
    };
    let mut out = Vec::new();
    if opts.max_new_tokens == 0 {
        return Ok((out, stats));
    }

    let t0 = Instant::now();
    let ids = Tensor::from_slice(dev, prompt, &[prompt.len()])?;
    let mut rec = Recorder::new(dev);
    let logits = model.forward(&mut rec, &ids, &mut cache, false)?;
    sampler.record(&mut rec, &logits)?;
    rec.submit()?;
    let mut next = sampler.read()?;
    stats.prefill = t0.elapsed();

    let t1 = Instant::now();
    loop {
        let flow = on_token(&next)?;
        let id = next.id;
        out.push(next);
        if flow == Flow::Stop || opts.eos_ids.contains(&id) || out.len() == opts.max_new_tokens {
            break;
        }
        let mut rec = Recorder::new(dev);
        let tracing = opts.trace && stats.trace.is_none();
        if tracing {
            // One timestamp pair per dispatch (4096 queries at most).
            rec = rec.with_trace().with_timing(2048);
        }
        // The sampler's token buffer is this step's input: no upload.
        let logits = model.forward(&mut rec, sampler.token(), &mut cache, false)?;
        sampler.record(&mut rec, &logits)?;
        let done = rec.submit()?;
        if tracing {
            stats.trace = Some(done.trace);
            stats.trace_gpu_ns = done.gpu_ns;
        }
        next = sampler.read()?;
    }
    stats.decode = t1.elapsed();
    stats.generated_tokens = out.len();
    Ok((out, stats))
}
