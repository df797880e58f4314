//! [`Sampler`]: one sequence's sampling on the GPU. It owns the buffers the sampling
//! kernels keep between steps (history of seen ids, logit bias, RNG counter), records a
//! step after the forward pass in the same command buffer, and reads back only the
//! chosen id (4 bytes) — plus the log-probs when they were asked for.

use kiln_kernels::sample::{step, SampleBuffers, SampleRow, StepPlan, HISTORY_PROMPT_BIT};
use kiln_kernels::topn::top_logprobs;
use kiln_tensor::{DType, Device, Recorder, Tensor};

use crate::params::SamplingParams;
use crate::Result;

/// The token a step chose, with its log-probs when asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenChoice {
    pub id: u32,
    /// log p(id) under the model's full distribution (softmax of the raw logits).
    pub logprob: Option<f32>,
    /// The `logprobs` most likely ids under the same distribution, best first.
    pub top: Vec<(u32, f32)>,
}

pub struct Sampler {
    buffers: SampleBuffers,
    plan: StepPlan,
    /// (ids `[1, N]`, logprobs `[1, N]`) when N alternatives were asked for.
    top: Option<(Tensor, Tensor)>,
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
        Ok(Sampler { buffers, plan, top })
    }

    /// Record one step on `logits` f32 `[1, vocab]` (after the forward pass, same recorder).
    pub fn record(&self, rec: &mut Recorder, logits: &Tensor) -> Result<()> {
        step(rec, logits, &self.buffers, self.plan)?;
        if let Some((ids, lps)) = &self.top {
            top_logprobs(rec, logits, ids, lps)?;
        }
        Ok(())
    }

    /// The chosen id `[1]` u32 on the GPU: the next step's input, with no round trip.
    pub fn token(&self) -> &Tensor {
        &self.buffers.token
    }

    /// Read the submitted step's choice back.
    pub fn read(&self) -> Result<TokenChoice> {
        let id = self.buffers.token.to_vec_u32()?[0];
        let logprob = if self.plan.logprob { Some(self.buffers.logprob.to_vec_f32()?[0]) } else { None };
        let top = match &self.top {
            Some((ids, lps)) => ids.to_vec_u32()?.into_iter().zip(lps.to_vec_f32()?).collect(),
            None => Vec::new(),
        };
        Ok(TokenChoice { id, logprob, top })
    }

    /// Bytes [`Sampler::read`] copies from the GPU per step.
    pub fn readback_bytes(&self) -> u64 {
        let mut bytes = self.buffers.token.byte_len();
        if self.plan.logprob {
            bytes += self.buffers.logprob.byte_len();
        }
        if let Some((ids, lps)) = &self.top {
            bytes += ids.byte_len() + lps.byte_len();
        }
        bytes
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
