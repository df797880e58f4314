//! The serving engine: continuous batching over a fixed set of slots.
//!
//! One KV cache with a slot per engine slot is allocated once. A request is admitted into
//! a free slot: its prompt is prefilled alone into that slot and its first token sampled. A
//! prompt longer than [`PREFILL_CHUNK`] is prefilled one chunk per [`Engine::step`] instead,
//! between the decode steps of the other sequences, so that a long prompt joining does not
//! stop the running streams for its whole prefill. Every [`Engine::step`] then runs
//! ONE batched decode step for all decoding sequences (the model's `forward_batch`: each
//! weight read once for all of them) and samples every sequence's next token with one
//! [`BatchSampler`] pass over the batch's logits (each row with its own seed, penalties
//! and history) in the same submission, reading back 4 bytes per sequence in one
//! mapping. The next step's input ids are the sampler's own output when the batch is
//! unchanged, else the host's copies of the last tokens. Tokens go out through each request's channel as they are made;
//! a finished sequence (end of sequence, length) or one whose receiver is gone (the client
//! disconnected) leaves its slot at once, and new requests join between steps.

use std::sync::mpsc::Sender;

use kiln_model::generate::check_prompt;
use kiln_model::{KvCache, Model, ModelConfig, PREFILL_CHUNK};
use kiln_tensor::{DType, Device, Recorder, Tensor};

use crate::batch_sampler::BatchSampler;
use crate::error::{param_error, Result};
use crate::gpu::TokenChoice;
use crate::params::SamplingParams;

/// Why a sequence ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    /// An end-of-sequence id was generated (OpenAI's "stop").
    Stop,
    /// `max_tokens` were generated (OpenAI's "length").
    Length,
}

/// What a request's channel receives.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A generated token, sent as soon as it is chosen (an end-of-sequence id too).
    Token(TokenChoice),
    /// The sequence ended; the last event sent for it.
    Done {
        /// Why it ended.
        reason: FinishReason,
        /// Tokens of the prompt.
        prompt_tokens: usize,
        /// Tokens generated, counting an end-of-sequence id that ended it.
        completion_tokens: usize,
    },
    /// The request failed (refused on admission, or its decode step failed); holds the
    /// message. Nothing more is sent for it.
    Error(String),
    /// A chunk of a long prompt was prefilled: `done` of `total` positions are in the
    /// cache (sent after every chunk but the last; the first token follows the last).
    Prefilled {
        /// Prompt positions in the cache so far.
        done: usize,
        /// Positions of the whole prompt.
        total: usize,
    },
}

/// One generation request for [`Engine::admit`].
pub struct Request {
    /// The prompt's token ids.
    pub prompt: Vec<u32>,
    /// How its tokens are sampled.
    pub params: SamplingParams,
    /// Most tokens to generate, ≥ 1.
    pub max_tokens: usize,
    /// Ids that end the sequence with [`FinishReason::Stop`] once generated.
    pub eos_ids: Vec<u32>,
    /// Where the request's tokens and its end are sent.
    pub events: Sender<Event>,
}

/// A sequence in a slot.
struct Active {
    /// The last token chosen (the next step's input).
    last: u32,
    events: Sender<Event>,
    prompt_tokens: usize,
    generated: usize,
    max_tokens: usize,
    eos_ids: Vec<u32>,
}

/// A long prompt being prefilled one chunk per step.
struct Prefilling {
    req: Request,
    /// Prompt positions already in the cache.
    done: usize,
}

/// Everything that would make a slot of `context` positions refuse a request: a
/// `max_tokens` of 0, a prompt plus `max_tokens` over the slot, invalid sampling
/// parameters, an empty prompt or ids outside the vocabulary. The server runs it on its
/// connection threads, before queueing; the engine again on admission.
pub fn check_request(config: &ModelConfig, context: usize, prompt: &[u32], params: &SamplingParams, max_tokens: usize) -> Result<()> {
    if max_tokens == 0 {
        return Err(param_error("max_tokens", "must be >= 1"));
    }
    // A hostile max_tokens (up to 2⁶⁴−1) must not wrap the sum round.
    if max_tokens > context.saturating_sub(prompt.len()) {
        return Err(param_error(
            "max_tokens",
            format!(
                "the prompt has {} tokens and max_tokens is {max_tokens}, but each slot holds {context} positions \
                 (at most {} new tokens for this prompt)",
                prompt.len(),
                context.saturating_sub(prompt.len()),
            ),
        ));
    }
    params.validate(config.vocab_size)?;
    check_prompt(config, prompt, max_tokens)?;
    Ok(())
}

/// The continuous-batching engine over one model: a fixed number of slots sharing one
/// multi-slot KV cache and one [`BatchSampler`].
pub struct Engine<'m> {
    dev: Device,
    model: &'m Model,
    cache: KvCache,
    active: Vec<Option<Active>>,
    /// Slots whose long prompt is still being prefilled (never also in `active`).
    prefilling: Vec<Option<Prefilling>>,
    /// Positions a long prompt is prefilled per step.
    prefill_chunk: usize,
    context: usize,
    sampler: BatchSampler,
    /// u32 `[slots]`: a step's input ids when the batch changed since the last step.
    ids: Tensor,
    /// The slots of the last step, in batch order.
    last_batch: Vec<usize>,
}

impl<'m> Engine<'m> {
    /// `slots` sequences at once, each with room for `context` positions (prompt + output).
    pub fn new(dev: &Device, model: &'m Model, slots: usize, context: usize) -> Result<Engine<'m>> {
        if slots == 0 {
            return Err(param_error("slots", "must be >= 1, got 0"));
        }
        let cache = model.new_cache_with(dev, slots, context, model.kv_dtype())?;
        let sampler = BatchSampler::new(dev, slots, model.config().vocab_size)?;
        Ok(Engine {
            dev: dev.clone(),
            model,
            cache,
            active: (0..slots).map(|_| None).collect(),
            prefilling: (0..slots).map(|_| None).collect(),
            prefill_chunk: PREFILL_CHUNK,
            context,
            sampler,
            ids: Tensor::zeros(dev, &[slots], DType::U32)?,
            last_batch: Vec::new(),
        })
    }

    /// Number of slots (sequences that can run at once).
    pub fn slots(&self) -> usize {
        self.cache.slots()
    }

    /// The device the engine runs on (e.g. to ask whether it was lost).
    pub fn device(&self) -> &Device {
        &self.dev
    }

    /// Positions each slot holds (prompt + generated tokens).
    pub fn context(&self) -> usize {
        self.context
    }

    /// Number of slots holding a sequence (decoding, or prefilling a long prompt).
    pub fn active(&self) -> usize {
        (0..self.active.len()).filter(|&i| !self.is_free(i)).count()
    }

    /// Whether [`Engine::admit`] would find a free slot.
    pub fn has_free_slot(&self) -> bool {
        (0..self.active.len()).any(|i| self.is_free(i))
    }

    fn is_free(&self, slot: usize) -> bool {
        self.active[slot].is_none() && self.prefilling[slot].is_none()
    }

    /// Prefill prompts longer than `chunk` positions `chunk` at a time, one chunk per step
    /// (default [`PREFILL_CHUNK`]); `chunk` ≥ 1.
    pub fn set_prefill_chunk(&mut self, chunk: usize) -> Result<()> {
        if chunk == 0 {
            return Err(param_error("prefill_chunk", "must be >= 1, got 0"));
        }
        self.prefill_chunk = chunk;
        Ok(())
    }

    /// Check a request before it is queued: see [`check_request`].
    pub fn validate(&self, prompt: &[u32], params: &SamplingParams, max_tokens: usize) -> Result<()> {
        check_request(self.model.config(), self.context, prompt, params, max_tokens)
    }

    /// Take a request into a free slot: prefill its prompt and send its first token. A
    /// prompt longer than the prefill chunk is only checked and placed here; the following
    /// steps prefill it a chunk at a time and send its first token after the last chunk.
    /// Errors (also sent to the request's channel) leave the engine as it was.
    pub fn admit(&mut self, req: Request) -> Result<()> {
        let Some(slot) = (0..self.active.len()).find(|&i| self.is_free(i)) else {
            let e = param_error("slots", "no free slot");
            let _ = req.events.send(Event::Error(e.to_string()));
            return Err(e);
        };
        let events = req.events.clone();
        let short = req.prompt.len() <= self.prefill_chunk;
        let result = self.place(slot, req).and_then(|()| if short { self.prefill_next_chunk(slot) } else { Ok(()) });
        if let Err(e) = &result {
            // This request alone fails: its client is told, its slot stays free.
            let _ = events.send(Event::Error(e.to_string()));
            self.free(slot);
        }
        result
    }

    fn free(&mut self, slot: usize) {
        self.active[slot] = None;
        self.prefilling[slot] = None;
        self.sampler.release(slot);
        self.last_batch.clear();
    }

    /// Check a prompt and reserve `slot` for it; [`Engine::admit`] prefills a short one at
    /// once, [`Engine::step`] a long one chunk by chunk.
    fn place(&mut self, slot: usize, req: Request) -> Result<()> {
        self.validate(&req.prompt, &req.params, req.max_tokens)?;
        self.sampler.admit(slot, &req.params, &req.prompt)?;
        self.cache.reset_slot(slot)?;
        self.prefilling[slot] = Some(Prefilling { req, done: 0 });
        Ok(())
    }

    /// The next chunk of the long prompt in `slot`; after its last chunk the first token
    /// is sampled and sent, and the sequence decodes from the next step on.
    fn prefill_next_chunk(&mut self, slot: usize) -> Result<()> {
        let p = self.prefilling[slot].as_mut().expect("prefilling");
        let (start, len) = (p.done, p.req.prompt.len());
        let end = (start + self.prefill_chunk).min(len);
        let ids = Tensor::from_slice(&self.dev, &p.req.prompt[start..end], &[end - start])?;
        let mut rec = Recorder::new(&self.dev);
        let logits = self.model.forward_slot(&mut rec, &ids, &mut self.cache, slot, false)?;
        if end < len {
            rec.submit()?;
            let p = self.prefilling[slot].as_mut().expect("prefilling");
            p.done = end;
            if p.req.events.send(Event::Prefilled { done: end, total: len }).is_err() {
                self.free(slot); // the receiver is gone: stop here and free the slot
            }
            return Ok(());
        }
        self.sampler.record(&mut rec, &logits, &[slot])?;
        rec.submit()?;
        self.last_batch.clear(); // the sampler's tokens now hold this one sequence's
        let choice = self.sampler.read()?.remove(0);
        let req = self.prefilling[slot].take().expect("prefilling").req;
        self.start_decoding(slot, req, choice);
        Ok(())
    }

    /// `slot`'s sequence has its first token: send it, and decode from the next step on.
    fn start_decoding(&mut self, slot: usize, req: Request, choice: TokenChoice) {
        let active = Active {
            last: choice.id,
            events: req.events,
            prompt_tokens: req.prompt.len(),
            generated: 0,
            max_tokens: req.max_tokens,
            eos_ids: req.eos_ids,
        };
        self.active[slot] = deliver(active, choice);
        if self.active[slot].is_none() {
            self.sampler.release(slot);
        }
    }

    /// One chunk of the first long prompt still prefilling (if any), then one batched
    /// decode step for every decoding sequence. Returns how many sequences advanced (the
    /// prefilling one counts). A failed chunk ends that request alone. On a decode error
    /// the sequences of this batch end with an error event and free their slots (one
    /// batched step cannot tell whose input failed); queued requests still run.
    pub fn step(&mut self) -> Result<usize> {
        let mut ran = 0;
        if let Some(slot) = self.prefilling.iter().position(Option::is_some) {
            match self.prefill_next_chunk(slot) {
                Ok(()) => ran += 1,
                Err(e) => {
                    if let Some(p) = &self.prefilling[slot] {
                        let _ = p.req.events.send(Event::Error(format!("prefill failed: {e}")));
                    }
                    self.free(slot);
                }
            }
        }
        Ok(ran + self.decode_step()?)
    }

    /// One batched decode step for every decoding sequence. Returns how many ran.
    fn decode_step(&mut self) -> Result<usize> {
        let slots: Vec<usize> = (0..self.active.len()).filter(|&i| self.active[i].is_some()).collect();
        if slots.is_empty() {
            return Ok(0);
        }
        let result = self.step_batch(&slots);
        if let Err(e) = &result {
            for &s in &slots {
                if let Some(a) = self.active[s].take() {
                    let _ = a.events.send(Event::Error(format!("decode step failed: {e}")));
                }
                self.sampler.release(s);
            }
            self.last_batch.clear();
        }
        result
    }

    /// [`Engine::step`]'s work for the active `slots`.
    fn step_batch(&mut self, slots: &[usize]) -> Result<usize> {
        let b = slots.len();
        // The input ids: the sampler's last output when it sampled exactly this batch,
        // else the host's copies of each sequence's last token (4 bytes each).
        let ids = if slots == self.last_batch.as_slice() {
            self.sampler.tokens(b)?
        } else {
            let last: Vec<u32> = slots.iter().map(|&s| self.active[s].as_ref().expect("active").last).collect();
            self.ids.write_at(0, &last)?;
            self.ids.narrow_rows(0, b)?
        };
        let mut rec = Recorder::new(&self.dev);
        let logits = self.model.forward_batch(&mut rec, &ids, &mut self.cache, slots)?; // [B, vocab]
        self.sampler.record(&mut rec, &logits, slots)?;
        rec.submit()?;
        let choices = self.sampler.read()?;
        for (&s, choice) in slots.iter().zip(choices) {
            let a = self.active[s].take().expect("active");
            self.active[s] = deliver(a, choice);
            if self.active[s].is_none() {
                self.sampler.release(s);
            }
        }
        self.last_batch = slots.to_vec();
        Ok(b)
    }
}

/// Send a sequence's new token; the sequence stays if it goes on.
fn deliver(mut a: Active, token: TokenChoice) -> Option<Active> {
    let id = token.id;
    a.last = id;
    a.generated += 1;
    if a.events.send(Event::Token(token)).is_err() {
        return None; // the receiver is gone: free the slot now
    }
    let reason = if a.eos_ids.contains(&id) {
        Some(FinishReason::Stop)
    } else if a.generated >= a.max_tokens {
        Some(FinishReason::Length)
    } else {
        None
    };
    match reason {
        Some(reason) => {
            let _ = a.events.send(Event::Done { reason, prompt_tokens: a.prompt_tokens, completion_tokens: a.generated });
            None
        }
        None => Some(a),
    }
}
