//! `kiln serve`: an OpenAI-compatible HTTP server over the continuous-batching engine.
//!
//! Threads: one accepts connections (a thread per connection parses the request, queues it
//! and writes the answer); the main thread owns the GPU and runs the engine — admitting
//! queued requests into free slots between batched decode steps. The queue between them
//! is bounded: when it is full a request gets a 503 at once. Ctrl-C stops accepting,
//! finishes what was accepted, and exits (a second Ctrl-C exits at once).

mod handler;
mod http;
mod openai;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use kiln_model::{Model, ModelConfig, ModelError, Tokenizer};
use kiln_tensor::Device;
use kiln_sampler::engine::{check_request, Engine, Request};
use kiln_sampler::SamplerError;

use crate::model_args::{load_parts, KvCacheArg};
use crate::DeviceArgs;
use openai::{ApiError, Generation};

#[derive(Args)]
pub struct ServeArgs {
    /// A Hugging Face model directory or a GGUF file.
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Sequences decoded together (each has its own slot of one KV cache).
    #[arg(long, default_value_t = 4)]
    slots: usize,
    /// Positions per slot (prompt + completion); at most the model's context.
    #[arg(long, default_value_t = 2048)]
    context: usize,
    /// Requests that may wait for a slot; beyond that, 503 (0: only as many requests as
    /// there are free slots are taken).
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// The model id reported by /v1/models (default: the file or directory name).
    #[arg(long)]
    name: Option<String>,
    /// How the KV cache stores keys and values (see `kiln generate --help`).
    #[arg(long = "kv-cache", value_enum, default_value_t = KvCacheArg::F16)]
    kv_cache: KvCacheArg,
}

/// What every connection thread reads.
pub struct Shared {
    /// The GPU and the model, for work outside the engine's batch (`echo`'s prompt
    /// log-probs); the engine thread decodes with the same model.
    dev: Device,
    model: Arc<Model>,
    tokenizer: Tokenizer,
    template: Option<String>,
    bos: Option<u32>,
    eos_ids: Vec<u32>,
    model_id: String,
    config: ModelConfig,
    context: usize,
    slots: usize,
    queue_len: usize,
    queue: SyncSender<Request>,
    shutting_down: AtomicBool,
    ids: AtomicU64,
    /// Sequences in slots now (for /health and admission).
    active: AtomicUsize,
    /// Requests sent to the engine and not yet taken from its channel.
    waiting: AtomicUsize,
}

impl Shared {
    fn encode(&self, text: &str) -> Result<Vec<u32>, ApiError> {
        self.tokenizer.encode_with_special(text, true).map_err(|e| ApiError::bad(e.to_string(), Some("prompt")))
    }

    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::SeqCst)
    }

    /// What the engine would refuse (see `check_request`), as a 400 naming the field.
    fn validate(&self, prompt: &[u32], gen: &Generation) -> Result<(), ApiError> {
        check_request(&self.config, self.context, prompt, &gen.params, gen.max_tokens).map_err(|e| {
            let param = match &e {
                SamplerError::Param { name, .. } => name.clone(),
                SamplerError::Model(ModelError::Param { name, .. }) => name.clone(),
                _ => "prompt".into(),
            };
            ApiError { status: 400, message: e.to_string(), param: Some(param) }
        })
    }
}

pub fn run(dev_args: &DeviceArgs, args: ServeArgs) -> Result<()> {
    if args.slots == 0 {
        bail!("--slots must be >= 1");
    }
    let dev = dev_args.open()?;
    let mut parts = load_parts(&dev, &args.model)?;
    parts.model.set_kv_dtype(args.kv_cache.into());
    let Some(tokenizer) = parts.tokenizer else {
        bail!("{} has no tokenizer: kiln serve needs one", args.model.display())
    };
    let model = Arc::new(parts.model);
    let config = model.config();
    let context = args.context.min(config.max_position_embeddings);
    let engine = Engine::new(&dev, &model, args.slots, context)?;
    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let model_id = args.name.clone().unwrap_or_else(|| {
        args.model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "kiln".into())
    });
    // Admission counts slots and waiting requests (Shared::waiting); the channel only has
    // to hold them all.
    let (queue, requests) = sync_channel(args.slots.saturating_add(args.queue));
    let shared = Arc::new(Shared {
        dev: dev.clone(),
        model: model.clone(),
        tokenizer,
        template: parts.chat_template,
        bos: parts.bos,
        eos_ids: parts.eos_ids,
        model_id,
        config: config.clone(),
        context,
        slots: args.slots,
        queue_len: args.queue,
        queue,
        shutting_down: AtomicBool::new(false),
        ids: AtomicU64::new(0),
        active: AtomicUsize::new(0),
        waiting: AtomicUsize::new(0),
    });
    {
        let shared = shared.clone();
        ctrlc::set_handler(move || {
            if shared.shutting_down.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
            eprintln!("kiln serve: stopping — finishing the requests in flight (Ctrl-C again to quit now)");
        })?;
    }
    eprintln!(
        "kiln serve: {} on http://{}/v1 — {} slots × {} positions, queue {}, on {}",
        shared.model_id,
        listener.local_addr()?,
        args.slots,
        context,
        args.queue,
        dev.info().name
    );
    let acceptor = {
        let shared = shared.clone();
        std::thread::spawn(move || accept(listener, shared))
    };
    serve_engine(engine, requests, &shared)?;
    let _ = acceptor.join();
    eprintln!("kiln serve: stopped");
    Ok(())
}

/// Accept connections until shutdown; each gets a thread.
fn accept(listener: TcpListener, shared: Arc<Shared>) {
    listener.set_nonblocking(true).ok();
    while !shared.shutting_down.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).ok();
                let shared = shared.clone();
                std::thread::spawn(move || handler::handle(stream, &shared));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => eprintln!("kiln serve: accept failed: {e}"),
        }
    }
}

/// The engine loop: admit queued requests into free slots, run a batched step, repeat.
fn serve_engine(mut engine: Engine, requests: Receiver<Request>, shared: &Shared) -> Result<()> {
    loop {
        while engine.has_free_slot() {
            let next = if engine.active() == 0 {
                match requests.recv_timeout(Duration::from_millis(50)) {
                    Ok(r) => Some(r),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return Ok(()),
                }
            } else {
                match requests.try_recv() {
                    Ok(r) => Some(r),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => return Ok(()),
                }
            };
            let Some(request) = next else { break };
            shared.waiting.fetch_sub(1, Ordering::SeqCst);
            // A refused request has already been told why through its channel.
            if let Err(e) = engine.admit(request) {
                if let Some(why) = engine.device().lost() {
                    bail!("the GPU device was lost ({why}); last request: {e}");
                }
                eprintln!("kiln serve: request refused: {e}");
            }
        }
        shared.active.store(engine.active(), Ordering::SeqCst);
        // A failed step ends the sequences of that batch (each told why); the server goes
        // on, unless the GPU itself is gone.
        let ran = match engine.step() {
            Ok(ran) => ran,
            Err(e) => {
                if let Some(why) = engine.device().lost() {
                    bail!("the GPU device was lost ({why}); last step: {e}");
                }
                eprintln!("kiln serve: a decode step failed, its requests were ended: {e}");
                0
            }
        };
        shared.active.store(engine.active(), Ordering::SeqCst);
        if ran == 0 && shared.shutting_down.load(Ordering::SeqCst) {
            // Nothing running: finish what is still queued, then stop.
            match requests.try_recv() {
                Ok(request) => {
                    shared.waiting.fetch_sub(1, Ordering::SeqCst);
                    let _ = engine.admit(request);
                }
                Err(_) => return Ok(()),
            }
        }
    }
}
