//! `kiln serve`: an OpenAI-compatible HTTP server over the continuous-batching engine.
//!
//! Two sides, joined by channels:
//! - the main thread owns the GPU: the [`scheduler`] runs the engine, admitting queued
//!   requests into free slots between batched decode steps and passing each token on;
//! - a tokio runtime on its own thread serves HTTP/1.1 with hyper and axum ([`http`],
//!   [`routes`]): the handlers check a request, queue its sequences (or answer 503 when
//!   `--slots` + `--queue` are taken) and turn the tokens into a JSON answer or
//!   server-sent events ([`completion`]); `/` is a page built into the binary ([`page`])
//!   and `/v1/lens` a prompt's logit lens ([`lens`], computed on the GPU thread).
//!
//! Ctrl-C or SIGTERM stops accepting, lets the requests in flight finish and their
//! answers be written, then exits 0 (a second signal exits at once).

mod body;
mod choice;
mod completion;
mod error;
mod http;
mod lens;
mod metrics;
mod openai;
mod page;
mod routes;
mod scheduler;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use kiln_model::{ModelConfig, Tokenizer};
use kiln_sampler::engine::Engine;
use tokio_util::sync::CancellationToken;

use crate::model_args::{load_parts, KvCacheArg};
use crate::DeviceArgs;
use scheduler::{Fault, Job, Scheduler};

/// Seconds as a flag value: a finite number in (0, 1 day].
fn seconds(s: &str) -> Result<Duration, String> {
    let x: f64 = s.parse().map_err(|_| format!("{s:?} is not a number of seconds"))?;
    if !(x > 0.0 && x <= 86_400.0) {
        return Err(format!("{s} must be in (0, 86400] seconds"));
    }
    Ok(Duration::from_secs_f64(x))
}

#[derive(Args)]
pub struct ServeArgs {
    /// A Hugging Face model directory or a GGUF file.
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// 0 lets the OS pick a free port (printed in the "listening" line).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Sequences decoded together (each has its own KV cache).
    #[arg(long, default_value_t = 4)]
    slots: usize,
    /// Positions per slot (prompt + completion); at most the model's context.
    #[arg(long, default_value_t = 2048)]
    context: usize,
    /// Sequences that may wait for a slot; beyond that, 503. 0: only what fits a free slot.
    #[arg(long, default_value_t = 64)]
    queue: usize,
    /// The model id reported by /v1/models (default: the file or directory name).
    #[arg(long)]
    name: Option<String>,
    /// How the KV cache stores keys and values (see `kiln generate --help`).
    #[arg(long = "kv-cache", value_enum, default_value_t = KvCacheArg::F16)]
    kv_cache: KvCacheArg,
    /// Require `Authorization: Bearer KEY` on every route but /health (401 otherwise).
    #[arg(long, env = "KILN_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Allow browsers from this origin (repeatable; `*` for any). CORS is off without it.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Open connections at most; more wait in the listen backlog.
    #[arg(long, default_value_t = 1024)]
    max_connections: usize,
    /// Seconds a client has to send a request's head (request line and headers).
    #[arg(long, value_parser = seconds, default_value = "10")]
    header_timeout: Duration,
    /// Seconds a client has to send a request's whole body (408 after).
    #[arg(long, value_parser = seconds, default_value = "30")]
    body_timeout: Duration,
    /// Seconds a keep-alive connection may sit idle between requests.
    #[arg(long, value_parser = seconds, default_value = "60")]
    idle_timeout: Duration,
    /// Seconds a client may stop reading an answer before it is dropped (its sequence
    /// freed, its connection closed).
    #[arg(long, value_parser = seconds, default_value = "30")]
    write_timeout: Duration,
    /// Largest request body in bytes (413 over it).
    #[arg(long, default_value_t = 8 << 20)]
    max_body_bytes: usize,
    /// Largest request head (request line + headers) in bytes; at least 8192.
    #[arg(long, default_value_t = 64 << 10)]
    max_header_bytes: usize,
    /// On Ctrl-C/SIGTERM, seconds to wait for the requests in flight before closing them.
    #[arg(long, value_parser = seconds, default_value = "300")]
    shutdown_timeout: Duration,
    /// Test hook: sequences sampled with seed SEED fail after TOKENS tokens (0: when
    /// admitted), as a sequence the engine fails alone would (repeatable).
    #[arg(long, value_name = "SEED:TOKENS", value_parser = Fault::parse, hide = true)]
    inject_fault: Vec<Fault>,
    /// Test hook: destroy the GPU device once TOKENS tokens have been generated, to test
    /// that a lost device stops the server with a clear error.
    #[arg(long, value_name = "TOKENS", hide = true)]
    inject_device_loss: Option<u64>,
}

/// Body limits the handlers read with.
pub struct BodyLimits {
    pub max_body_bytes: usize,
    pub body_timeout: Duration,
}

/// What every handler reads.
pub struct Shared {
    tokenizer: Tokenizer,
    template: Option<String>,
    bos: Option<u32>,
    eos_ids: Vec<u32>,
    model_id: String,
    config: ModelConfig,
    context: usize,
    slots: usize,
    /// Sequences the server takes at once (`--slots` + `--queue`).
    capacity: usize,
    /// Sequences accepted and not finished.
    in_system: AtomicUsize,
    jobs: Sender<Job>,
    shutting_down: AtomicBool,
    ids: AtomicU64,
    started: u64,
    api_key: Option<String>,
    limits: BodyLimits,
    metrics: Arc<metrics::Metrics>,
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colours only on a terminal: a log file or a pipe gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).try_init();
}

pub fn run(dev_args: &DeviceArgs, args: ServeArgs) -> Result<()> {
    if args.slots == 0 {
        bail!("--slots must be >= 1");
    }
    if args.max_connections == 0 {
        bail!("--max-connections must be >= 1");
    }
    if args.api_key.as_deref().is_some_and(|k| k.trim().is_empty()) {
        bail!("--api-key (KILN_API_KEY) is empty");
    }
    let capacity = args.slots.checked_add(args.queue).context("--slots + --queue overflow")?;
    init_tracing();
    let dev = dev_args.open()?;
    let mut parts = load_parts(&dev, &args.model)?;
    parts.model.set_kv_dtype(args.kv_cache.into());
    let Some(tokenizer) = parts.tokenizer else { bail!("{} has no tokenizer: kiln serve needs one", args.model.display()) };
    let config = parts.model.config().clone();
    let context = args.context.min(config.max_position_embeddings);
    if context < 2 {
        bail!("--context must be >= 2");
    }
    let engine = Engine::new(&dev, &parts.model, args.slots, context)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("kiln-http").build()?;
    let listener = {
        let _in_runtime = runtime.enter();
        listen(&args.host, args.port, args.max_connections).with_context(|| format!("binding {}:{}", args.host, args.port))?
    };
    let address = listener.local_addr()?;
    let model_id = args.name.clone().unwrap_or_else(|| {
        args.model.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "kiln".into())
    });
    let metrics = Arc::new(metrics::Metrics::new());
    let (jobs, job_rx) = std::sync::mpsc::channel();
    let shared = Arc::new(Shared {
        tokenizer,
        template: parts.chat_template,
        bos: parts.bos,
        eos_ids: parts.eos_ids,
        model_id,
        config,
        context,
        slots: args.slots,
        capacity,
        in_system: AtomicUsize::new(0),
        jobs,
        shutting_down: AtomicBool::new(false),
        ids: AtomicU64::new(0),
        started: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        api_key: args.api_key.clone(),
        limits: BodyLimits { max_body_bytes: args.max_body_bytes, body_timeout: args.body_timeout },
        metrics: metrics.clone(),
    });
    let limits = http::ConnLimits {
        max_connections: args.max_connections,
        header_timeout: args.header_timeout,
        idle_timeout: args.idle_timeout,
        write_timeout: args.write_timeout,
        max_header_bytes: args.max_header_bytes,
    };
    let shutdown = CancellationToken::new();
    eprintln!(
        "kiln serve: {} on http://{address}/v1 — {} slots × {context} positions, queue {}, on {}{}",
        shared.model_id,
        args.slots,
        args.queue,
        dev.info().name,
        if args.api_key.is_some() { " (API key required)" } else { "" }
    );
    let http_side = {
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        let app = routes::router(shared.clone(), &args.cors_origins);
        let drain = args.shutdown_timeout;
        std::thread::Builder::new().name("kiln-http".into()).spawn(move || {
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                tokio::spawn(watch_signals(shared.clone(), shutdown.clone()));
                http::serve(listener, app, limits, metrics, shutdown, drain).await;
                // Every connection is closed: nothing more can be queued.
                let _ = shared.jobs.send(Job::Stop);
                anyhow::Ok(())
            })
        })?
    };
    let served = Scheduler::new(engine, &dev, &parts.model, shared.metrics.clone(), args.write_timeout, args.inject_fault.clone())
        .lose_device_after(args.inject_device_loss)
        .run(job_rx);
    if served.is_err() {
        shared.shutting_down.store(true, Ordering::SeqCst);
        shutdown.cancel();
    }
    let http_result = http_side.join().map_err(|_| anyhow::anyhow!("the HTTP thread panicked"))?;
    served.context("kiln serve stopped")?;
    http_result?;
    eprintln!("kiln serve: stopped");
    Ok(())
}

/// A listening socket on `host:port` whose accept backlog holds `backlog` connections
/// (std's 128 would leave a burst of connections half-open until the client retries),
/// handed back as a non-blocking std listener. Must run inside the tokio runtime.
fn listen(host: &str, port: u16, backlog: usize) -> Result<std::net::TcpListener> {
    use std::net::ToSocketAddrs;
    let mut last = None;
    for addr in (host, port).to_socket_addrs()? {
        let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(backlog.clamp(128, 65_535) as u32)) {
            Ok(listener) => return Ok(listener.into_std()?),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(|| anyhow::anyhow!("{host} resolves to no address"), anyhow::Error::from))
}

/// The first Ctrl-C or SIGTERM starts a graceful shutdown; a second one exits at once.
async fn watch_signals(shared: Arc<Shared>, shutdown: CancellationToken) {
    for first in [true, false] {
        signal().await;
        if !first {
            eprintln!("kiln serve: second signal: exiting now");
            std::process::exit(130);
        }
        shared.shutting_down.store(true, Ordering::SeqCst);
        shutdown.cancel();
        eprintln!("kiln serve: stopping — finishing the requests in flight (Ctrl-C again to quit now)");
    }
}

async fn signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
