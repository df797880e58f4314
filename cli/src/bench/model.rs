//! `kiln bench model`: prefill and decode speed of a whole model, the weight bytes a
//! decode token reads, the bandwidth that achieves against the device's measured copy
//! bandwidth, and what crosses between CPU and GPU per token (submits, buffers created,
//! bytes read back). `--profile` adds a per-kernel GPU time table for one decode step.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{bail, Result};
use clap::Args;
use kiln_model::synthetic::load_synthetic;
use kiln_model::Model;
use kiln_sampler::generate::{generate, Flow, GenerateOptions};
use kiln_sampler::SamplingParams;
use kiln_tensor::{CounterSnapshot, Device};
use serde_json::json;

use super::measure::copy_bandwidth;
use crate::model_args::{load_parts, KvCacheArg};
use crate::DeviceArgs;

#[derive(Args)]
pub struct ModelBenchArgs {
    /// A model file or directory to benchmark.
    #[arg(short = 'm', long = "model", conflicts_with = "synthetic", required_unless_present = "synthetic")]
    model: Option<std::path::PathBuf>,
    /// Random weights with a real model's shapes and types, built in memory:
    /// qwen2.5-0.5b, smollm2-135m, qwen3-0.6b, gpt2 or gemma3-270m.
    #[arg(long, value_name = "NAME")]
    synthetic: Option<String>,
    /// Weight types of --synthetic: f16, q8_0 or q4_k (llama.cpp's Q4_K_M mix).
    #[arg(long, default_value = "q4_k")]
    dtype: String,
    /// Write the --synthetic model to this GGUF file and exit (llama.cpp's llama-bench and
    /// `kiln bench model -m FILE` then run the very same weights).
    #[arg(long, value_name = "FILE", requires = "synthetic")]
    write_gguf: Option<std::path::PathBuf>,
    #[arg(long, default_value_t = 512)]
    prompt_tokens: usize,
    #[arg(long, default_value_t = 128)]
    decode_tokens: usize,
    /// Per-kernel GPU time of one decode step (timestamp queries).
    #[arg(long)]
    profile: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// How the KV cache stores keys and values.
    #[arg(long = "kv-cache", value_enum, default_value_t = KvCacheArg::F16)]
    kv_cache: KvCacheArg,
}

pub fn run(dev_args: &DeviceArgs, args: ModelBenchArgs) -> Result<()> {
    if args.prompt_tokens == 0 || args.decode_tokens < 2 {
        bail!("--prompt-tokens must be >= 1 and --decode-tokens >= 2");
    }
    if let (Some(path), Some(name)) = (&args.write_gguf, &args.synthetic) {
        let types = args.dtype.parse::<kiln_model::synthetic::WeightTypes>()?;
        let bytes = kiln_model::synthetic::write_synthetic_gguf(name, types, path)?;
        println!("wrote synthetic {name} ({}) to {}: {:.1} MiB", args.dtype, path.display(), bytes as f64 / (1 << 20) as f64);
        return Ok(());
    }
    let dev = dev_args.open()?;
    let (mut model, name) = match (&args.synthetic, &args.model) {
        (Some(name), _) => (load_synthetic(&dev, name, args.dtype.parse::<kiln_model::synthetic::WeightTypes>()?)?, format!("synthetic {name} ({})", args.dtype)),
        (None, Some(path)) => (load_parts(&dev, path)?.model, path.display().to_string()),
        (None, None) => bail!("give -m MODEL or --synthetic NAME"),
    };
    model.set_kv_dtype(args.kv_cache.into());
    let c = model.config();
    let need = args.prompt_tokens + args.decode_tokens + 1;
    if need > c.max_position_embeddings {
        bail!("{need} positions exceed the model's context of {}", c.max_position_embeddings);
    }
    let copy_gbps = copy_bandwidth(&dev)?;
    // Warm-up: compile every pipeline (prefill and decode shapes) before timing.
    run_once(&dev, &model, 8.min(args.prompt_tokens), 2, false)?;
    let r = run_once(&dev, &model, args.prompt_tokens, args.decode_tokens, args.profile)?;

    let weight_bytes = model.decode_weight_bytes();
    // K and V of every cached position are read once per layer per token.
    let kv_bytes_per_pos = (2 * c.n_layers * c.n_kv_heads * c.head_dim * model.kv_dtype().dtype().elem_bytes()) as u64;
    let mean_positions = args.prompt_tokens as u64 + args.decode_tokens as u64 / 2;
    let bytes_per_token = weight_bytes + kv_bytes_per_pos * mean_positions;
    let decode_gbps = bytes_per_token as f64 * r.decode_tok_s / 1e9;
    let roofline_tok_s = copy_gbps * 1e9 / bytes_per_token as f64;
    let per_token = |v: u64| v as f64 / (args.decode_tokens - 1) as f64;
    let info = dev.info();
    if args.json {
        let obj = json!({
            "model": name,
            "device": info.name,
            "backend": format!("{:?}", info.backend),
            "driver": format!("{} {}", info.driver, info.driver_info),
            "kv_cache": model.kv_dtype().to_string(),
            "prompt_tokens": args.prompt_tokens,
            "decode_tokens": args.decode_tokens,
            "prefill_tok_s": r.prefill_tok_s,
            "decode_tok_s": r.decode_tok_s,
            "decode_weight_bytes_per_token": weight_bytes,
            "decode_bytes_per_token": bytes_per_token,
            "decode_gbps": decode_gbps,
            "copy_gbps": copy_gbps,
            "pct_copy_bandwidth": 100.0 * decode_gbps / copy_gbps,
            "roofline_decode_tok_s": roofline_tok_s,
            "submits_per_token": per_token(r.decode.submits),
            "buffers_created_per_token": per_token(r.decode.buffers_created),
            "bind_groups_per_token": per_token(r.decode.bind_groups),
            "dispatches_per_token": per_token(r.decode.dispatches),
            "dispatches_per_layer": r.decode.dispatches_per_layer(),
            "record_cpu_us_per_token": per_token(r.decode.record_ns) / 1e3,
            "readback_bytes_per_token": per_token(r.decode.readback_bytes),
            "upload_bytes_per_token": per_token(r.decode.upload_bytes),
            "profile": r.profile.iter().map(|(k, (n, us))| json!({"kernel": k, "dispatches": n, "gpu_us": us})).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&obj)?);
        return Ok(());
    }
    println!("{name} on {} ({:?}, {} {}), {} KV cache", info.name, info.backend, info.driver, info.driver_info, model.kv_dtype());
    println!("prefill  {:>10.1} tok/s   ({} tokens)", r.prefill_tok_s, args.prompt_tokens);
    println!("decode   {:>10.1} tok/s   ({} tokens after the prompt)", r.decode_tok_s, args.decode_tokens);
    println!(
        "bytes/token  {:.1} MiB weights + {:.1} MiB KV cache (mean position {mean_positions})",
        weight_bytes as f64 / (1 << 20) as f64,
        (bytes_per_token - weight_bytes) as f64 / (1 << 20) as f64
    );
    println!(
        "bandwidth    {decode_gbps:.1} GB/s = {:.1}% of the measured copy bandwidth {copy_gbps:.1} GB/s (roofline {roofline_tok_s:.0} tok/s)",
        100.0 * decode_gbps / copy_gbps
    );
    println!(
        "per token    {:.2} submits, {:.2} buffers created, {:.0} bind groups, {:.0} B read back, {:.0} B uploaded",
        per_token(r.decode.submits),
        per_token(r.decode.buffers_created),
        per_token(r.decode.bind_groups),
        per_token(r.decode.readback_bytes),
        per_token(r.decode.upload_bytes)
    );
    println!(
        "dispatches   {:.0} per token, {:.1} per layer; recording a step takes {:.0} µs of CPU",
        per_token(r.decode.dispatches),
        r.decode.dispatches_per_layer(),
        per_token(r.decode.record_ns) / 1e3
    );
    if args.profile {
        let total: f64 = r.profile.values().map(|(_, us)| us).sum();
        println!("\none decode step on the GPU: {total:.1} µs");
        println!("{:<32} {:>10} {:>10} {:>7}", "kernel", "dispatches", "µs", "%");
        let mut rows: Vec<_> = r.profile.iter().collect();
        rows.sort_by(|a, b| b.1 .1.total_cmp(&a.1 .1));
        for (k, (n, us)) in rows {
            println!("{k:<32} {n:>10} {us:>10.1} {:>6.1}%", 100.0 * us / total.max(1e-9));
        }
        if r.profile.is_empty() {
            println!("(this adapter has no timestamp queries)");
        }
    }
    Ok(())
}

struct RunResult {
    prefill_tok_s: f64,
    decode_tok_s: f64,
    /// Counters over the decode steps after the first.
    decode: CounterSnapshot,
    /// kernel → (dispatches, GPU µs) of one decode step.
    profile: BTreeMap<String, (usize, f64)>,
}

/// Prefill `prompt` random ids, then decode `decode` tokens greedily on the GPU (through
/// `generate`); with `profile`, the first decode step is timed per kernel.
fn run_once(dev: &Device, model: &Model, prompt: usize, decode: usize, profile: bool) -> Result<RunResult> {
    let vocab = model.config().vocab_size;
    let ids: Vec<u32> = (0..prompt).map(|i| ((i as u64 * 2_654_435_761) % vocab as u64) as u32).collect();
    let opts = GenerateOptions { max_new_tokens: decode + 1, sampling: SamplingParams::greedy(), eos_ids: vec![], trace: profile };
    // After each token: when, and the counters. Token 0 comes from the prefill, token k
    // from decode step k.
    let mut marks = Vec::with_capacity(decode + 1);
    let (_, stats) = generate(dev, model, &ids, &opts, |_| {
        marks.push((Instant::now(), dev.counters()));
        Ok(Flow::Continue)
    })?;
    // The first decode step may still fill the buffer pool (and is the profiled one):
    // measure steps 2..=decode.
    let ((t1, c1), (t2, c2)) = (marks[1], marks[decode]);
    let mut table = BTreeMap::new();
    if let (Some(trace), Some(ns)) = (&stats.trace, &stats.trace_gpu_ns) {
        for (entry, ns) in trace.iter().zip(ns) {
            let e = table.entry(entry.kernel.to_string()).or_insert((0usize, 0.0f64));
            e.0 += 1;
            e.1 += ns / 1e3;
        }
    }
    Ok(RunResult {
        prefill_tok_s: stats.prefill_tok_s(),
        decode_tok_s: (decode - 1) as f64 / (t2 - t1).as_secs_f64(),
        decode: c2 - c1,
        profile: table,
    })
}
