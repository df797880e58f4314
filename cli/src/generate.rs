//! `kiln generate`: stream a continuation of the prompt, then a stats line on stderr.

use std::io::Write;

use anyhow::Result;
use clap::Args;
use kiln_model::generate::{generate, GenerateOptions, Sampling};
use serde_json::json;

use crate::model_args::ModelArgs;
use crate::trace::print_trace;
use crate::DeviceArgs;

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Most tokens to generate (stops early at an end-of-sequence token).
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// Always take the most likely token (same as --temperature 0).
    #[arg(long)]
    greedy: bool,
    /// Sampling temperature (> 0 samples from softmax(logits / T); 0 is greedy).
    #[arg(long, default_value_t = 1.0)]
    temperature: f32,
    /// Random seed for sampling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object (prompt_ids, generated_ids, text, stats) instead of streaming.
    #[arg(long)]
    json: bool,
    /// Print every kernel of one decode step: shapes, bytes moved, FLOPs.
    #[arg(long)]
    trace: bool,
    /// Also print the bytes of weights resident on the GPU and the KV-cache size.
    #[arg(short, long)]
    verbose: bool,
}

pub fn run(dev_args: &DeviceArgs, args: GenerateArgs) -> Result<()> {
    let dev = dev_args.open()?;
    let loaded = args.model.load(&dev)?;
    if args.verbose {
        let c = loaded.model.config();
        eprintln!(
            "model: {:?}, {} layers, hidden {}, {} heads / {} kv heads, vocab {}, context {}",
            c.arch, c.n_layers, c.hidden_size, c.n_heads, c.n_kv_heads, c.vocab_size, c.max_position_embeddings
        );
        eprintln!("weights resident on the GPU: {} bytes ({:.1} MiB)", loaded.model.weight_bytes(), loaded.model.weight_bytes() as f64 / (1 << 20) as f64);
        if let Some(text) = &loaded.prompt_text {
            eprintln!("prompt ({} tokens): {text:?}", loaded.prompt_ids.len());
        }
    }
    let sampling = if args.greedy { Sampling::Greedy } else { Sampling::temperature(args.temperature, args.seed)? };
    let opts = GenerateOptions {
        max_new_tokens: args.max_tokens,
        sampling,
        eos_ids: loaded.eos_ids.clone(),
        trace: args.trace,
    };
    let tokenizer = loaded.tokenizer.as_ref();
    let mut stream = tokenizer.map(|t| t.stream(true));
    let stdout = std::io::stdout();
    let (ids, stats) = generate(&dev, &loaded.model, &loaded.prompt_ids, &opts, |id| {
        if args.json {
            return Ok(());
        }
        let mut out = stdout.lock();
        match stream.as_mut() {
            Some(s) => write!(out, "{}", s.push(id)?),
            None => write!(out, "{id} "),
        }
        .and_then(|_| out.flush())
        .map_err(|e| kiln_model::ModelError::Param { name: "stdout".into(), detail: e.to_string() })
    })?;
    let text = match tokenizer {
        Some(t) => t.decode(&ids, true)?,
        None => String::new(),
    };
    if args.json {
        let obj = json!({
            "prompt_ids": loaded.prompt_ids,
            "generated_ids": ids,
            "text": text,
            "prompt_tokens": stats.prompt_tokens,
            "prefill_tok_s": stats.prefill_tok_s(),
            "decode_tok_s": stats.decode_tok_s(),
        });
        println!("{}", serde_json::to_string_pretty(&obj)?);
    } else {
        if let Some(s) = stream.as_mut() {
            print!("{}", s.finish()?);
        }
        println!();
    }
    eprintln!(
        "prompt tokens: {} | prefill: {:.1} tok/s | decode: {:.1} tok/s ({} tokens) | KV cache {:.1} MiB",
        stats.prompt_tokens,
        stats.prefill_tok_s(),
        stats.decode_tok_s(),
        stats.generated_tokens,
        stats.kv_cache_bytes as f64 / (1 << 20) as f64
    );
    if args.verbose {
        eprintln!("KV cache: {} bytes ({:.1} MiB) for {} positions", stats.kv_cache_bytes, stats.kv_cache_bytes as f64 / (1 << 20) as f64, loaded.prompt_ids.len() + args.max_tokens);
    }
    if let Some(trace) = &stats.trace {
        print_trace(trace);
    }
    Ok(())
}
