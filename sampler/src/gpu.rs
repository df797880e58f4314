//! [`Sampler`]: one sequence's sampling on the GPU. It owns the buffers the sampling
//! kernels keep between steps (history of seen ids, logit bias, RNG counter), records a
//! step after the forward pass in the same command buffer, and reads back only the
//! chosen id (4 bytes) — plus the log-probs when they were asked for.

use kiln_kernels::sample::{step, SampleBuffers, SampleRow, StepPlan, HISTORY_PROMPT_BIT};
use kiln_kernels::topn::top_logprobs;
use kiln_tensor::{DType, Device, Readback, Recorder, Tensor};

use crate::params::SamplingParams;
use crate::Result;

/// The token a step chose, with its log-probs when asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenChoice {
    /// The chosen token id.
    pub id: u32,
    /// log p(id) under the model's full distribution (softmax of the raw logits).
    pub logprob: Option<f32>,
    /// The `logprobs` most likely ids under the same distribution, best first.
    pub top: Vec<(u32, f32)>,
}

/// One sequence's sampling buffers on the GPU and the host-readable copy of each step's
/// choice.
pub struct Sampler {
    buffers: SampleBuffers,
    plan: StepPlan,
    /// (ids `[1, N]`, logprobs `[1, N]`) when N alternatives were asked for.
    top: Option<(Tensor, Tensor)>,
    /// Host-readable copy of the id (and log-probs), filled in the step's own submission.
    readback: Readback,
}

impl Sampler {
    /// Validate `params` against the vocabulary and upload the per-sequence state: the
    /// prompt's ids (for the repetition penalty) and the dense logit-bias row.
    pub fn new(dev: &Device, params: &SamplingParams, vocab: usize, prompt: &[u32]) -> Result<Sampler> {
        params.validate(vocab)?;
        let row = sample_row(params);
        let history = params.has_penalties().then(|| prompt_history(prompt, vocab));
        let bias = (!params.logit_bias.is_empty()).then(|| bias_row(&params.logit_bias, vocab));
        let buffers = SampleBuffers::new(dev, &[row], vocab, history.as_deref(), bias.as_deref())?;
        let plan = StepPlan::for_rows(&[row], params.logprobs.is_some());
        let top = match params.logprobs {
            Some(n) if n > 0 => Some((Tensor::empty(dev, &[1, n], DType::U32)?, Tensor::empty(dev, &[1, n], DType::F32)?)),
            _ => None,
        };
        let n = params.logprobs.unwrap_or(0) as u64;
        let readback = Readback::new(dev, 8 + 8 * n);
        Ok(Sampler { buffers, plan, top, readback })
    }

    /// Record one step on `logits` f32 `[1, vocab]` (after the forward pass, same recorder).
    pub fn record(&self, rec: &mut Recorder, logits: &Tensor) -> Result<()> {
        step(rec, logits, &self.buffers, self.plan)?;
        rec.copy_to_readback(&self.buffers.token, &self.readback, 0)?;
        if self.plan.logprob {
            rec.copy_to_readback(&self.buffers.logprob, &self.readback, 4)?;
        }
        if let Some((ids, lps)) = &self.top {
            top_logprobs(rec, logits, ids, lps)?;
            rec.copy_to_readback(ids, &self.readback, 8)?;
            rec.copy_to_readback(lps, &self.readback, 8 + ids.byte_len())?;
        }
        Ok(())
    }

    /// The chosen id `[1]` u32 on the GPU: the next step's input, with no round trip.
    pub fn token(&self) -> &Tensor {
        &self.buffers.token
    }

    /// Read the submitted step's choice back: one mapping of [`Sampler::readback_bytes`].
    pub fn read(&self) -> Result<TokenChoice> {
        let bytes = self.readback.read(self.readback_bytes())?;
        let word = |i: usize| [bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]];
        let id = u32::from_le_bytes(word(0));
        let logprob = self.plan.logprob.then(|| f32::from_le_bytes(word(1)));
        let n = self.top.as_ref().map_or(0, |(ids, _)| ids.numel());
        let top = (0..n).map(|j| (u32::from_le_bytes(word(2 + j)), f32::from_le_bytes(word(2 + n + j)))).collect();
        Ok(TokenChoice { id, logprob, top })
    }

    /// Bytes [`Sampler::read`] copies from the GPU per step: the id; with log-probs, its
    /// log-prob and N (id, log-prob) pairs.
    pub fn readback_bytes(&self) -> u64 {
        match (&self.top, self.plan.logprob) {
            (Some((ids, lps)), _) => 8 + ids.byte_len() + lps.byte_len(),
            (None, true) => 8,
            (None, false) => 4,
        }
    }
}

/// The kernel-side parameters of a sequence.
pub fn sample_row(p: &SamplingParams) -> SampleRow {
    SampleRow {
        temperature: p.temperature,
        top_k: p.top_k.map_or(0, |k| k.min(u32::MAX as usize) as u32),
        top_p: p.top_p,
        min_p: p.min_p,
        repetition_penalty: p.repetition_penalty,
        frequency_penalty: p.frequency_penalty,
        presence_penalty: p.presence_penalty,
        has_bias: (!p.logit_bias.is_empty()) as u32,
        ..SampleRow::greedy()
    }
    .with_seed(p.seed)
}

/// The history row of a new sequence: the prompt's ids marked as seen.
pub fn prompt_history(prompt: &[u32], vocab: usize) -> Vec<u32> {
    let mut h = vec![0u32; vocab];
    for &id in prompt {
        if let Some(slot) = h.get_mut(id as usize) {
            *slot = HISTORY_PROMPT_BIT;
        }
    }
    h
}

/// The dense bias row: biases of the same id add up; a ban (−inf) wins.
pub fn bias_row(bias: &[(u32, f32)], vocab: usize) -> Vec<f32> {
    let mut row = vec![0.0f32; vocab];
    for &(id, b) in bias {
        row[id as usize] += b;
    }
    row
}
