//! [`BatchSampler`]: the sampling of every sequence the serving engine runs, as one set of
//! buffers with a row per slot (parameters, RNG step, history of seen ids, logit bias).
//! A batched decode step samples all its sequences with ONE set of sampling dispatches
//! over the batch's logits `[B, vocab]` — row b as the sequence in slot `slots[b]`, each
//! with its own parameters, seed and penalties (`kiln_kernels::sample::step_slots`) — and
//! reads back the B ids (with any log-probs) in one mapping. Nothing is copied per
//! sequence.

use kiln_kernels::sample::{step_slots, SampleBuffers, SampleRow, StepPlan};
use kiln_kernels::topn::top_logprobs;
use kiln_tensor::{DType, Device, Readback, Recorder, Tensor};

use crate::error::param_error;
use crate::gpu::{bias_row, prompt_history, sample_row, TokenChoice};
use crate::params::{SamplingParams, MAX_TOP_LOGPROBS};
use crate::Result;

/// What the host keeps of a slot's sequence.
#[derive(Clone, Copy)]
struct SlotParams {
    row: SampleRow,
    /// `logprobs` as asked: None, or Some(N alternatives).
    logprobs: Option<usize>,
}

/// The sampling state of every engine slot on the GPU (one row per slot), sampled for a
/// whole batch in one set of dispatches.
pub struct BatchSampler {
    buffers: SampleBuffers,
    slots: Vec<Option<SlotParams>>,
    /// u32 `[slots]`: the batch's row → slot map, written when the batch changes.
    map: Tensor,
    map_host: Vec<u32>,
    readback: Readback,
    /// The last recorded step: (its slots, alternatives per row).
    last: Option<(Vec<u32>, usize)>,
}

impl BatchSampler {
    /// Buffers for `slots` sequences over a vocabulary of `vocab` (history and bias rows
    /// for every slot), allocated once.
    pub fn new(dev: &Device, slots: usize, vocab: usize) -> Result<BatchSampler> {
        let rows = vec![SampleRow::greedy(); slots];
        let zeros = vec![0f32; slots * vocab];
        let buffers = SampleBuffers::new(dev, &rows, vocab, None, Some(&zeros))?;
        // Per row: id, log-prob, then up to MAX_TOP_LOGPROBS (id, log-prob) pairs.
        let readback = Readback::new(dev, (slots * (2 + 2 * MAX_TOP_LOGPROBS) * 4) as u64);
        Ok(BatchSampler {
            buffers,
            slots: vec![None; slots],
            map: Tensor::zeros(dev, &[slots], DType::U32)?,
            map_host: Vec::new(),
            readback,
            last: None,
        })
    }

    /// Start sampling a new sequence in `slot`: its parameters and seed, and its prompt
    /// (for the repetition penalty).
    pub fn admit(&mut self, slot: usize, params: &SamplingParams, prompt: &[u32]) -> Result<()> {
        let vocab = self.buffers.n;
        params.validate(vocab)?;
        if slot >= self.slots.len() {
            return Err(param_error("slot", format!("slot {slot} of {}", self.slots.len())));
        }
        let row = sample_row(params);
        let history = params.has_penalties().then(|| prompt_history(prompt, vocab));
        let bias = (!params.logit_bias.is_empty()).then(|| bias_row(&params.logit_bias, vocab));
        self.buffers.set_row(slot, &row, history.as_deref(), bias.as_deref())?;
        self.slots[slot] = Some(SlotParams { row, logprobs: params.logprobs });
        Ok(())
    }

    /// The sequence in `slot` is done.
    pub fn release(&mut self, slot: usize) {
        if let Some(s) = self.slots.get_mut(slot) {
            *s = None;
        }
    }

    /// The ids the last step chose `[B]` u32, in batch order, on the GPU: the next step's
    /// input when the batch is the same.
    pub fn tokens(&self, batch: usize) -> Result<Tensor> {
        Ok(self.buffers.token.narrow_rows(0, batch)?)
    }

    /// Record one step over `logits` `[B, vocab]`, row b sampled as slot `slots[b]`, and the
    /// copy of the B results into the readback buffer (same submission).
    pub fn record(&mut self, rec: &mut Recorder, logits: &Tensor, slots: &[usize]) -> Result<()> {
        let mut rows = Vec::with_capacity(slots.len());
        for &s in slots {
            let p = self.slots.get(s).copied().flatten().ok_or_else(|| param_error("slots", format!("slot {s} holds no sequence")))?;
            rows.push(p);
        }
        let map: Vec<u32> = slots.iter().map(|&s| s as u32).collect();
        if map != self.map_host {
            self.map.write_at(0, &map)?;
            self.map_host = map.clone();
        }
        let any_logprob = rows.iter().any(|p| p.logprobs.is_some());
        let host_rows: Vec<SampleRow> = rows.iter().map(|p| p.row).collect();
        let plan = StepPlan::for_rows(&host_rows, any_logprob);
        step_slots(rec, logits, &self.buffers, plan, &self.map, &map)?;
        let b = slots.len();
        rec.copy_to_readback(&self.buffers.token.narrow_rows(0, b)?, &self.readback, 0)?;
        if any_logprob {
            rec.copy_to_readback(&self.buffers.logprob.narrow_rows(0, b)?, &self.readback, 4 * b as u64)?;
        }
        let top = rows.iter().filter_map(|p| p.logprobs).max().unwrap_or(0);
        if top > 0 {
            let dev = rec.device().clone();
            let ids = Tensor::empty(&dev, &[b, top], DType::U32)?;
            let lps = Tensor::empty(&dev, &[b, top], DType::F32)?;
            top_logprobs(rec, logits, &ids, &lps)?;
            rec.copy_to_readback(&ids, &self.readback, 8 * b as u64)?;
            rec.copy_to_readback(&lps, &self.readback, (8 * b + 4 * b * top) as u64)?;
        }
        self.last = Some((self.map_host.clone(), top));
        // The RNG step advances on the GPU; the host copy only feeds the step plan.
        Ok(())
    }

    /// The choices of the submitted step, in batch order: one mapping of the readback.
    pub fn read(&self) -> Result<Vec<TokenChoice>> {
        let (map, top) = self.last.as_ref().ok_or_else(|| param_error("read", "no step was recorded"))?;
        let b = map.len();
        let any_logprob = map.iter().any(|&s| self.slots[s as usize].is_some_and(|p| p.logprobs.is_some()));
        let words = b * if *top > 0 { 2 + 2 * top } else if any_logprob { 2 } else { 1 };
        let bytes = self.readback.read(4 * words as u64)?;
        let word = |i: usize| [bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]];
        let mut out = Vec::with_capacity(b);
        for (r, &s) in map.iter().enumerate() {
            let asked = self.slots[s as usize].and_then(|p| p.logprobs);
            let id = u32::from_le_bytes(word(r));
            let logprob = asked.map(|_| f32::from_le_bytes(word(b + r)));
            let n = asked.unwrap_or(0);
            let top_ids = 2 * b + r * top;
            let top_lps = 2 * b + b * top + r * top;
            let alternatives =
                (0..n).map(|j| (u32::from_le_bytes(word(top_ids + j)), f32::from_le_bytes(word(top_lps + j)))).collect();
            out.push(TokenChoice { id, logprob, top: alternatives });
        }
        Ok(out)
    }
}
