//! `kiln bench ...`: benchmarks that print figures (never pass/fail on speed).

use anyhow::Result;
use clap::Subcommand;

use crate::DeviceArgs;

mod cases;
mod kernels;
mod measure;
mod model;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Every kernel at GPT-2 124M and Qwen2.5-0.5B layer shapes (decode and prefill), and
    /// the quantized matvec/matmul at the shapes and block types of Qwen2.5-0.5B Q4_K_M
    /// and SmolLM2-135M Q4_1: median GPU time, GFLOP/s, GB/s and a correctness check
    /// against the CPU twin.
    Kernels {
        /// Print a JSON array (one object per kernel) instead of a table.
        #[arg(long)]
        json: bool,
        /// Only run cases whose kernel, model, shape or weight dtype contains this text
        /// (`quant`: every case with GGUF block-type weights).
        #[arg(long)]
        filter: Option<String>,
        /// Time budget per case in milliseconds (more iterations on fast devices).
        #[arg(long, default_value_t = 300)]
        budget_ms: u64,
    },
    /// A whole model: prefill and decode tok/s, weight bytes per decode token, achieved
    /// GB/s against the copy bandwidth, submits/buffers/readback per token, `--profile`.
    Model(model::ModelBenchArgs),
}

pub fn run(args: &DeviceArgs, cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Kernels { json, filter, budget_ms } => kernels::run(args, json, filter.as_deref(), budget_ms),
        BenchCommand::Model(model_args) => model::run(args, model_args),
    }
}
