//! The GPU side of the server: one thread owns the device, the model and the
//! continuous-batching [`Engine`], and takes jobs from the HTTP handlers through a channel.
//!
//! Each turn of [`run`]: take new jobs; run at most one prompt-scoring job (`echo`) and
//! at most one logit-lens job (`/v1/lens`);
//! admit waiting generations into free slots (each prefilled alone); drop the sequences
//! whose client is gone; run ONE batched decode step; forward every new token to its
//! handler. A handler hears back through a bounded tokio channel that the loop never
//! blocks on: a client that disconnects (its receiver dropped) or stops reading (no
//! message taken for `stall_timeout` while some wait, or the buffer full) is dropped, and
//! the engine frees its slot at the end of the next step.
//!
//! Failures stay with their request: a refused admission or a failed sequence answers that
//! request with an error; a failed batched step ends the sequences of that batch, the
//! loop goes on. Only a lost device ends the loop (with an error naming it).
//!
//! Chunked prefill: admission ([`Scheduler::admit`]) prefills a short prompt at once; the
//! engine prefills a prompt longer than its chunk one chunk per [`Engine::step`],
//! interleaved with the decode steps of the others (sampler/src/engine.rs).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use kiln_model::Model;
use kiln_sampler::engine::{Engine, Event, FinishReason, Request};
use kiln_sampler::score::{prompt_logprobs, PromptLogprob};
use kiln_sampler::gpu::TokenChoice;
use kiln_sampler::SamplingParams;
use kiln_tensor::Device;
use tokio::sync::{mpsc, oneshot};

use super::error::ApiError;
use super::metrics::Metrics;

/// What a generation's handler receives, tagged with the choice index.
#[derive(Debug)]
pub enum Msg {
    Token(TokenChoice),
    Done(FinishReason),
    Failed(ApiError),
}

pub type MsgSender = mpsc::Sender<(usize, Msg)>;

/// A test hook (`--inject-fault SEED:TOKENS`): the sequences sampled with `seed` fail
/// after `tokens` tokens (0: on admission), through the same path as a sequence the
/// engine fails alone — so the tests can show that a failure stays with its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub seed: u64,
    pub tokens: usize,
}

impl Fault {
    /// Parse `SEED:TOKENS`.
    pub fn parse(s: &str) -> Result<Fault, String> {
        let (seed, tokens) = s.split_once(':').ok_or_else(|| format!("{s:?} is not SEED:TOKENS"))?;
        let seed = seed.trim().parse().map_err(|_| format!("{seed:?} is not a seed"))?;
        let tokens = tokens.trim().parse().map_err(|_| format!("{tokens:?} is not a token count"))?;
        Ok(Fault { seed, tokens })
    }

    fn error(&self) -> String {
        format!("injected fault (--inject-fault {}:{})", self.seed, self.tokens)
    }
}

/// One sequence to generate.
pub struct GenJob {
    pub prompt: Vec<u32>,
    pub params: SamplingParams,
    pub max_tokens: usize,
    pub eos_ids: Vec<u32>,
    /// The choice index its messages carry.
    pub index: usize,
    pub events: MsgSender,
    /// Set by the handler to drop the sequence (a stop string was reached).
    pub cancel: Arc<AtomicBool>,
    /// When the request was accepted (for time-to-first-token).
    pub accepted: Instant,
}

/// Log-probs of a prompt's tokens (`echo`).
pub struct ScoreJob {
    pub ids: Vec<u32>,
    pub top: usize,
    pub reply: oneshot::Sender<Result<Vec<PromptLogprob>, ApiError>>,
}

/// The logit lens of a prompt (`POST /v1/lens`).
pub struct LensJob {
    pub ids: Vec<u32>,
    pub top: usize,
    pub blocks: Vec<usize>,
    pub reply: oneshot::Sender<Result<kiln_sampler::lens::Lens, ApiError>>,
}

pub enum Job {
    Generate(GenJob),
    Score(ScoreJob),
    Lens(LensJob),
    /// No more jobs will come: finish what is queued and return.
    Stop,
}

/// A sequence in the engine, as the loop sees it.
struct Live {
    events: Receiver<Event>,
    tx: MsgSender,
    cancel: Arc<AtomicBool>,
    index: usize,
    accepted: Instant,
    last_token: Option<Instant>,
    /// Tokens passed on so far, and after how many an injected fault ends the sequence.
    tokens: usize,
    fail_after: Option<Fault>,
    /// Room in `tx` when last looked, and when its reader last took something.
    room: usize,
    progress: Instant,
}

pub struct Scheduler<'m> {
    engine: Engine<'m>,
    dev: Device,
    model: &'m Model,
    metrics: Arc<Metrics>,
    stall_timeout: Duration,
    faults: Vec<Fault>,
    /// Test hook (`--inject-device-loss TOKENS`): destroy the device once this many
    /// tokens have been passed on (`kiln_generated_tokens_total`), to exercise the
    /// lost-device path.
    lose_device_after: Option<u64>,
    live: Vec<Live>,
    waiting: VecDeque<GenJob>,
    scoring: VecDeque<ScoreJob>,
    lenses: VecDeque<LensJob>,
    stopping: bool,
}

impl<'m> Scheduler<'m> {
    pub fn new(engine: Engine<'m>, dev: &Device, model: &'m Model, metrics: Arc<Metrics>, stall_timeout: Duration, faults: Vec<Fault>) -> Self {
        metrics.slots_total.set(engine.slots() as i64);
        Scheduler {
            engine,
            dev: dev.clone(),
            model,
            metrics,
            stall_timeout,
            faults,
            lose_device_after: None,
            live: Vec::new(),
            waiting: VecDeque::new(),
            scoring: VecDeque::new(),
            lenses: VecDeque::new(),
            stopping: false,
        }
    }

    /// Destroy the device (wgpu's `Device::destroy`, which reports it lost) once `tokens`
    /// tokens have been passed on: a test of the one failure that stops the server.
    pub fn lose_device_after(mut self, tokens: Option<u64>) -> Self {
        self.lose_device_after = tokens;
        self
    }

    fn idle(&self) -> bool {
        self.engine.active() == 0 && self.waiting.is_empty() && self.scoring.is_empty() && self.lenses.is_empty()
    }

    fn take(&mut self, job: Job) {
        match job {
            Job::Generate(g) => self.waiting.push_back(g),
            Job::Score(s) => self.scoring.push_back(s),
            Job::Lens(l) => self.lenses.push_back(l),
            Job::Stop => self.stopping = true,
        }
    }

    /// Serve jobs until [`Job::Stop`] (or every sender is gone) and nothing is left; an
    /// error only when the device is lost.
    pub fn run(mut self, jobs: Receiver<Job>) -> Result<()> {
        loop {
            if self.idle() {
                if self.stopping {
                    return Ok(());
                }
                match jobs.recv_timeout(Duration::from_millis(50)) {
                    Ok(job) => self.take(job),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => self.stopping = true,
                }
            }
            loop {
                match jobs.try_recv() {
                    Ok(job) => self.take(job),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        self.stopping = true;
                        break;
                    }
                }
            }
            self.check_device()?;
            if let Some(job) = self.scoring.pop_front() {
                self.score(job);
            }
            if let Some(job) = self.lenses.pop_front() {
                if !job.reply.is_closed() {
                    let result = super::lens::compute(&self.dev, self.model, &job);
                    let _ = job.reply.send(result);
                }
            }
            self.admit();
            self.live.retain(|l| !l.tx.is_closed() && !l.cancel.load(Ordering::SeqCst));
            if self.engine.active() > 0 {
                if let Err(e) = self.engine.step() {
                    self.check_device()?;
                    eprintln!("kiln serve: a batched decode step failed; its sequences end with an error: {e}");
                }
            }
            self.forward();
            let generated = self.metrics.generated_tokens.get();
            if self.lose_device_after.is_some_and(|n| generated >= n) {
                eprintln!("kiln serve: --inject-device-loss: destroying the device after {generated} tokens");
                self.lose_device_after = None;
                self.dev.wgpu().destroy();
            }
            self.metrics.slots_busy.set(self.engine.active() as i64);
            self.metrics.queue_depth.set(self.waiting.len() as i64);
        }
    }

    fn check_device(&mut self) -> Result<()> {
        let Some(why) = self.dev.lost() else { return Ok(()) };
        let lost = ApiError::internal(format!("the GPU device was lost ({why}): the server is stopping"));
        for l in self.live.drain(..) {
            let _ = l.tx.try_send((l.index, Msg::Failed(lost.clone())));
        }
        for g in self.waiting.drain(..) {
            let _ = g.events.try_send((g.index, Msg::Failed(lost.clone())));
        }
        for s in self.scoring.drain(..) {
            let _ = s.reply.send(Err(lost.clone()));
        }
        for l in self.lenses.drain(..) {
            let _ = l.reply.send(Err(lost.clone()));
        }
        bail!("the GPU device was lost ({why})")
    }

    fn score(&mut self, job: ScoreJob) {
        if job.reply.is_closed() {
            return;
        }
        let result = prompt_logprobs(&self.dev, self.model, &job.ids, job.top)
            .map_err(|e| ApiError::internal(format!("scoring the prompt failed: {e:#}")));
        let _ = job.reply.send(result);
    }

    /// Take waiting requests into free slots, oldest first.
    fn admit(&mut self) {
        while self.engine.has_free_slot() {
            let Some(job) = self.waiting.pop_front() else { return };
            if job.events.is_closed() || job.cancel.load(Ordering::SeqCst) {
                continue; // the client left while it waited
            }
            let fault = self.faults.iter().find(|f| f.seed == job.params.seed).copied();
            let (tx, rx) = channel();
            let request = Request { prompt: job.prompt, params: job.params, max_tokens: job.max_tokens, eos_ids: job.eos_ids, events: tx };
            let now = Instant::now();
            let live = Live {
                events: rx,
                tx: job.events,
                cancel: job.cancel,
                index: job.index,
                accepted: job.accepted,
                last_token: None,
                tokens: 0,
                fail_after: fault.filter(|f| f.tokens > 0),
                room: 0,
                progress: now,
            };
            let admitted = match fault.filter(|f| f.tokens == 0) {
                Some(f) => Err(f.error()),
                None => self.engine.admit(request).map_err(|e| e.to_string()),
            };
            if let Err(e) = admitted {
                eprintln!("kiln serve: admitting a request failed: {e}");
                let _ = live.tx.try_send((live.index, Msg::Failed(ApiError::internal(format!("starting the sequence failed: {e}")))));
                continue;
            }
            self.live.push(live);
        }
    }

    /// Pass every sequence's new events on to its handler; drop the sequences whose
    /// handler is gone, full, or has not read for `stall_timeout`.
    fn forward(&mut self) {
        let now = Instant::now();
        let (metrics, stall) = (&self.metrics, self.stall_timeout);
        self.live.retain_mut(|l| {
            loop {
                let msg = match l.events.try_recv() {
                    Ok(Event::Token(t)) => {
                        metrics.generated_tokens.inc();
                        match l.last_token {
                            None => metrics.time_to_first_token.observe(now.duration_since(l.accepted).as_secs_f64()),
                            Some(t0) => metrics.time_per_output_token.observe(now.duration_since(t0).as_secs_f64()),
                        }
                        l.last_token = Some(now);
                        l.tokens += 1;
                        match l.fail_after {
                            // As the engine's Event::Error for this sequence alone would.
                            Some(f) if l.tokens > f.tokens => Msg::Failed(ApiError::internal(f.error())),
                            _ => Msg::Token(t),
                        }
                    }
                    Ok(Event::Done { reason, .. }) => Msg::Done(reason),
                    Ok(Event::Error(message)) => Msg::Failed(ApiError::internal(message)),
                    Ok(Event::Prefilled { .. }) => continue, // a long prompt's progress: nothing to send
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        Msg::Failed(ApiError::internal("the sequence was ended by a failed decode step"))
                    }
                };
                let last = !matches!(msg, Msg::Token(_));
                if l.tx.try_send((l.index, msg)).is_err() {
                    return false; // gone, or not reading: drop it (the engine frees its slot)
                }
                if last {
                    return false;
                }
            }
            // Stall detection: the reader took nothing for `stall` while messages wait.
            let room = l.tx.capacity();
            if room > l.room || room == l.tx.max_capacity() {
                l.progress = now;
            }
            l.room = room;
            now.duration_since(l.progress) < stall
        });
    }
}
