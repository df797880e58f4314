//! Beam search with a length penalty, following Hugging Face transformers' `generate(num_beams=N)`
//! (`early_stopping=False`), so its goldens apply:
//!
//! - each step, every running beam's log-softmax is added to its score; the best
//!   K = max(2, 1 + #eos) · N continuations over all beams are taken (per beam, the top K
//!   on the GPU with [`top_logprobs`]; only K (id, log-prob) pairs per beam are read back);
//! - a continuation that ends in an end-of-sequence id, or reaches `max_new_tokens`, and
//!   ranks among the first N becomes a finished hypothesis scored
//!   `sum_logprob / generated_len ^ length_penalty`; the best N finished are kept;
//! - the best N unfinished continuations run on; each gets its parent's KV cache slot
//!   (copied on the GPU into the same slot index of a second multi-slot cache), and all of
//!   them run their next id in ONE batched decode step (each weight read once per step);
//! - search stops when N hypotheses are finished and the best running beam, at its current
//!   length, can no longer beat the worst of them, or at `max_new_tokens`.

use kiln_kernels::topn::{top_logprobs, MAX_TOP};
use kiln_model::generate::check_prompt;
use kiln_model::{KvCache, Model};
use kiln_tensor::{DType, Device, Recorder, Tensor};

use crate::error::{param_error, Result};

/// Settings of [`beam_search`].
pub struct BeamOptions {
    /// Beams kept per step (HF's `num_beams`), ≥ 1; also the most hypotheses returned.
    pub beams: usize,
    /// Exponent of the generated length dividing a finished hypothesis' score (HF's
    /// `length_penalty`, default 1.0): > 0 favours longer outputs, < 0 shorter ones.
    pub length_penalty: f32,
    /// Most ids generated per hypothesis; 0 returns one empty hypothesis.
    pub max_new_tokens: usize,
    /// End-of-sequence ids: a continuation ending in one becomes a finished hypothesis.
    pub eos_ids: Vec<u32>,
}

/// A finished hypothesis.
#[derive(Clone, Debug, PartialEq)]
pub struct Hypothesis {
    /// Generated ids (ending with the end-of-sequence id when it finished on one).
    pub ids: Vec<u32>,
    /// Σ log p of the generated ids.
    pub sum_logprob: f64,
    /// `sum_logprob / ids.len() ^ length_penalty`: what the beams are ranked by.
    pub score: f64,
}

/// A running beam: its ids so far, score, and which cache slot holds its KV cache.
#[derive(Clone, Debug)]
struct Beam {
    ids: Vec<u32>,
    sum_logprob: f64,
    slot: usize,
}

/// A continuation: parent beam index, the next id, the new sum of log-probs.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    parent: usize,
    id: u32,
    sum_logprob: f64,
}

impl BeamOptions {
    /// Continuations kept per step: HF's max(2, 1 + #eos) · beams.
    fn keep(&self) -> usize {
        2usize.max(1 + self.eos_ids.len()) * self.beams
    }

    fn validate(&self, vocab: usize) -> Result<()> {
        if self.beams == 0 {
            return Err(param_error("beams", "must be >= 1, got 0"));
        }
        let keep = self.keep();
        if keep > MAX_TOP.min(vocab) {
            let most = MAX_TOP.min(vocab) / 2usize.max(1 + self.eos_ids.len());
            return Err(param_error(
                "beams",
                format!("{} beams need {keep} candidates per beam; at most {most} beams with this model", self.beams),
            ));
        }
        if !self.length_penalty.is_finite() {
            return Err(param_error("length_penalty", format!("must be a finite number, got {}", self.length_penalty)));
        }
        Ok(())
    }

    fn normalised(&self, sum_logprob: f64, len: usize) -> f64 {
        sum_logprob / (len as f64).powf(self.length_penalty as f64)
    }
}

/// The finished hypotheses, best first (at most `beams`).
pub fn beam_search(dev: &Device, model: &Model, prompt: &[u32], opts: &BeamOptions) -> Result<Vec<Hypothesis>> {
    let vocab = model.config().vocab_size;
    opts.validate(vocab)?;
    check_prompt(model.config(), prompt, opts.max_new_tokens)?;
    if opts.max_new_tokens == 0 {
        return Ok(vec![Hypothesis { ids: vec![], sum_logprob: 0.0, score: 0.0 }]);
    }
    let capacity = prompt.len() + opts.max_new_tokens;
    // Two caches of `beams` slots: children are copied from one into the other each step.
    let new_cache = || model.new_cache_with(dev, opts.beams, capacity, model.kv_dtype());
    let mut caches: [KvCache; 2] = [new_cache()?, new_cache()?];
    let mut current = 0;
    let keep = opts.keep();

    // Prefill into slot 0: the one running beam.
    let mut rec = Recorder::new(dev);
    let ids = Tensor::from_slice(dev, prompt, &[prompt.len()])?;
    let logits = model.forward_slot(&mut rec, &ids, &mut caches[current], 0, false)?;
    let mut running = vec![Beam { ids: vec![], sum_logprob: 0.0, slot: 0 }];
    let mut tops = record_top(&mut rec, &logits, keep)?;
    rec.submit()?;

    let mut finished: Vec<Hypothesis> = Vec::new();
    let mut improvement_possible = true;
    for step in 0..opts.max_new_tokens {
        // Every continuation of every beam, best first (ties: lower beam, then rank).
        let mut cands = Vec::with_capacity(running.len() * keep);
        let (all_ids, all_lps) = (tops.0.to_vec_u32()?, tops.1.to_vec_f32()?);
        for (b, (ids, lps)) in all_ids.chunks(keep).zip(all_lps.chunks(keep)).enumerate() {
            for (&id, &lp) in ids.iter().zip(lps) {
                cands.push(Candidate { parent: b, id, sum_logprob: running[b].sum_logprob + lp as f64 });
            }
        }
        cands.sort_by(|a, b| b.sum_logprob.total_cmp(&a.sum_logprob));
        cands.truncate(keep);
        let at_max = step + 1 == opts.max_new_tokens;
        let stops = |c: &Candidate| at_max || opts.eos_ids.contains(&c.id);

        // Finished hypotheses: only from the first `beams` ranks, while improvement is possible.
        if improvement_possible {
            for c in cands.iter().take(opts.beams).filter(|c| stops(c)) {
                let mut ids = running[c.parent].ids.clone();
                ids.push(c.id);
                let score = opts.normalised(c.sum_logprob, ids.len());
                finished.push(Hypothesis { ids, sum_logprob: c.sum_logprob, score });
            }
            // Stable: earlier hypotheses win ties.
            finished.sort_by(|a, b| b.score.total_cmp(&a.score));
            finished.truncate(opts.beams);
        }
        if at_max {
            break;
        }
        // The best unfinished continuations run on.
        let next: Vec<Candidate> = cands.iter().filter(|c| !stops(c)).take(opts.beams).copied().collect();
        if next.is_empty() {
            break;
        }
        let gen_len = step + 1;
        if finished.len() == opts.beams {
            let best_running = opts.normalised(next[0].sum_logprob, gen_len);
            let worst_finished = finished.last().map_or(f64::MIN, |h| h.score);
            improvement_possible = improvement_possible && best_running > worst_finished;
        }
        if !improvement_possible {
            break;
        }

        // Children take their parent's cache slot (into the other cache) and run their new
        // ids together in one batched step.
        let other = 1 - current;
        let mut rec = Recorder::new(dev);
        let [set0, set1] = &mut caches;
        let (src, dst) = if current == 0 { (&*set0, set1) } else { (&*set1, set0) };
        let mut new_running = Vec::with_capacity(next.len());
        for (slot, c) in next.iter().enumerate() {
            let parent = &running[c.parent];
            dst.copy_slot_from(&mut rec, src, parent.slot, slot)?;
            let mut ids = parent.ids.clone();
            ids.push(c.id);
            new_running.push(Beam { ids, sum_logprob: c.sum_logprob, slot });
        }
        let next_ids: Vec<u32> = next.iter().map(|c| c.id).collect();
        let slots: Vec<usize> = (0..next.len()).collect();
        let input = Tensor::from_slice(dev, &next_ids, &[next.len()])?;
        let logits = model.forward_batch(&mut rec, &input, dst, &slots)?; // [beams, vocab]
        tops = record_top(&mut rec, &logits, keep)?;
        rec.submit()?;
        running = new_running;
        current = other;
    }
    if finished.is_empty() {
        // Nothing finished (every step stopped early): the running beams are the result.
        finished = running
            .iter()
            .map(|b| Hypothesis { ids: b.ids.clone(), sum_logprob: b.sum_logprob, score: opts.normalised(b.sum_logprob, b.ids.len().max(1)) })
            .collect();
        finished.sort_by(|a, b| b.score.total_cmp(&a.score));
    }
    Ok(finished)
}

/// The `keep` best ids of each row of `logits` `[rows, vocab]` with their log-probs
/// (`[rows, keep]` each), recorded.
fn record_top(rec: &mut Recorder, logits: &Tensor, keep: usize) -> Result<(Tensor, Tensor)> {
    let dev = logits.device();
    let rows = logits.dim(0);
    let ids = Tensor::empty(dev, &[rows, keep], DType::U32)?;
    let lps = Tensor::empty(dev, &[rows, keep], DType::F32)?;
    top_logprobs(rec, logits, &ids, &lps)?;
    Ok((ids, lps))
}
