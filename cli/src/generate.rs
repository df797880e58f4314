//! `kiln generate`: stream a continuation of the prompt (sampled on the GPU), then a stats
//! line on stderr; or beam search with `--beams N`.

use std::io::Write;

use anyhow::{bail, Context, Result};
use clap::Args;
use kiln_model::Tokenizer;
use kiln_sampler::beam::{beam_search, BeamOptions};
use kiln_sampler::generate::{generate, Flow, GenerateOptions};
use kiln_sampler::gpu::TokenChoice;
use kiln_sampler::stop::StopStrings;
use kiln_sampler::SamplingParams;
use serde_json::{json, Value};

use crate::model_args::{Loaded, ModelArgs};
use crate::trace::print_trace;
use crate::DeviceArgs;

#[derive(Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Most tokens to generate (stops early at an end-of-sequence token or a --stop string).
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    /// Always take the most likely token (same as --temperature 0).
    #[arg(long)]
    greedy: bool,
    /// Sampling temperature: softmax(logits / T); 0 is greedy. [default: 1]
    #[arg(long, allow_hyphen_values = true)]
    temperature: Option<f32>,
    /// Keep only the K most likely tokens (ties at the K-th value stay).
    #[arg(long, value_name = "K")]
    top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches P, in (0, 1].
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    top_p: Option<f32>,
    /// Keep tokens at least MIN_P times as likely as the most likely one, in [0, 1].
    #[arg(long, allow_hyphen_values = true)]
    min_p: Option<f32>,
    /// Hugging Face repetition penalty (> 0; 1 is off) over prompt and output tokens.
    #[arg(long, value_name = "R", allow_hyphen_values = true)]
    repeat_penalty: Option<f32>,
    /// OpenAI frequency penalty in [-2, 2]: minus F per earlier occurrence in the output.
    #[arg(long, value_name = "F", allow_hyphen_values = true)]
    frequency_penalty: Option<f32>,
    /// OpenAI presence penalty in [-2, 2]: minus P once a token occurred in the output.
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    presence_penalty: Option<f32>,
    /// Add BIAS to token ID's logit, e.g. `--logit-bias 1234=-5`; `-inf` bans it. Repeatable.
    #[arg(long, value_name = "ID=BIAS", allow_hyphen_values = true)]
    logit_bias: Vec<String>,
    /// Never generate the tokens TEXT encodes to (each of them). Repeatable.
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    ban: Vec<String>,
    /// Random seed: the same seed gives the same tokens.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Report each token's log-probability and its N most likely alternatives (N <= 20).
    #[arg(long, value_name = "N")]
    logprobs: Option<usize>,
    /// Beam search with N beams instead of sampling (deterministic, not streamed).
    #[arg(long, value_name = "N")]
    beams: Option<usize>,
    /// Beam search length penalty: a finished beam scores sum_logprob / length^L.
    #[arg(long, value_name = "L", default_value_t = 1.0, allow_hyphen_values = true)]
    length_penalty: f32,
    /// Stop before this text (it is not printed). Repeatable.
    #[arg(long, value_name = "STR")]
    stop: Vec<String>,
    /// Print one JSON object (prompt_ids, generated_ids, text, tokens, stats) instead of streaming.
    #[arg(long)]
    json: bool,
    /// Print every kernel of one decode step: shapes, bytes moved, FLOPs.
    #[arg(long)]
    trace: bool,
    /// Also print the bytes of weights resident on the GPU and the KV-cache size.
    #[arg(short, long)]
    verbose: bool,
    #[command(flatten)]
    hooks: crate::hooks::HookFlags,
}

impl GenerateArgs {
    fn sampling_params(&self, loaded: &Loaded) -> Result<SamplingParams> {
        let mut logit_bias = Vec::new();
        for item in &self.logit_bias {
            logit_bias.push(parse_bias(item)?);
        }
        for text in &self.ban {
            let Some(tok) = loaded.tokenizer.as_ref() else { bail!("--ban needs a tokenizer; use --logit-bias ID=-inf") };
            let ids = tok.encode_with_special(text, false)?;
            if ids.is_empty() {
                bail!("--ban {text:?} encodes to no tokens");
            }
            logit_bias.extend(ids.into_iter().map(|id| (id, f32::NEG_INFINITY)));
        }
        let d = SamplingParams::default();
        let temperature = if self.greedy { 0.0 } else { self.temperature.unwrap_or(d.temperature) };
        Ok(SamplingParams {
            temperature,
            top_k: self.top_k,
            top_p: self.top_p.unwrap_or(d.top_p),
            min_p: self.min_p.unwrap_or(d.min_p),
            repetition_penalty: self.repeat_penalty.unwrap_or(d.repetition_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(d.frequency_penalty),
            presence_penalty: self.presence_penalty.unwrap_or(d.presence_penalty),
            logit_bias,
            seed: self.seed,
            logprobs: self.logprobs,
        })
    }

    /// Sampling flags given together with --beams (which ignores them).
    fn sampling_flags_given(&self) -> Vec<&'static str> {
        let given = [
            ("--temperature", self.temperature.is_some()),
            ("--top-k", self.top_k.is_some()),
            ("--top-p", self.top_p.is_some()),
            ("--min-p", self.min_p.is_some()),
            ("--repeat-penalty", self.repeat_penalty.is_some()),
            ("--frequency-penalty", self.frequency_penalty.is_some()),
            ("--presence-penalty", self.presence_penalty.is_some()),
            ("--logit-bias", !self.logit_bias.is_empty()),
            ("--ban", !self.ban.is_empty()),
            ("--logprobs", self.logprobs.is_some()),
            ("--greedy", self.greedy),
        ];
        given.iter().filter(|(_, on)| *on).map(|(name, _)| *name).collect()
    }
}

/// `ID=BIAS` with BIAS a number or `-inf`.
fn parse_bias(item: &str) -> Result<(u32, f32)> {
    let (id, bias) = item.split_once('=').with_context(|| format!("--logit-bias {item:?}: expected ID=BIAS, e.g. 1234=-5 or 1234=-inf"))?;
    let id: u32 = id.trim().parse().with_context(|| format!("--logit-bias {item:?}: {id:?} is not a token id"))?;
    let bias = match bias.trim() {
        "-inf" | "-infinity" => f32::NEG_INFINITY,
        b => b.parse().with_context(|| format!("--logit-bias {item:?}: {b:?} is not a number (or -inf)"))?,
    };
    Ok((id, bias))
}

pub fn run(dev_args: &DeviceArgs, args: GenerateArgs) -> Result<()> {
    if let Some(beams) = args.beams {
        let flags = args.sampling_flags_given();
        if !flags.is_empty() {
            bail!("--beams {beams} searches the model's log-probabilities; it cannot be combined with {}", flags.join(", "));
        }
    }
    let dev = dev_args.open()?;
    let mut loaded = args.model.load(&dev)?;
    args.hooks.install(&mut loaded)?;
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
    if let Some(beams) = args.beams {
        return run_beams(&dev, &args, &loaded, beams);
    }
    let opts = GenerateOptions {
        max_new_tokens: args.max_tokens,
        sampling: args.sampling_params(&loaded)?,
        eos_ids: loaded.eos_ids.clone(),
        trace: args.trace,
    };
    let tokenizer = loaded.tokenizer.as_ref();
    let mut stream = tokenizer.map(|t| t.stream(true));
    let mut stops = StopStrings::new(&args.stop)?;
    if !args.stop.is_empty() && tokenizer.is_none() {
        bail!("--stop needs a tokenizer to decode the output");
    }
    let mut text = String::new();
    let stdout = std::io::stdout();
    let (tokens, stats) = generate(&dev, &loaded.model, &loaded.prompt_ids, &opts, |t| {
        let piece = match stream.as_mut() {
            Some(s) => s.push(t.id)?,
            None => format!("{} ", t.id),
        };
        let (shown, stopped) = stops.push(&piece);
        text.push_str(&shown);
        if !args.json {
            let mut out = stdout.lock();
            write!(out, "{shown}").and_then(|_| out.flush()).map_err(|e| kiln_sampler::error::param_error("stdout", e.to_string()))?;
        }
        Ok(if stopped { Flow::Stop } else { Flow::Continue })
    })?;
    if !stops.stopped() {
        let tail = stream.as_mut().map(|s| s.finish()).transpose()?.unwrap_or_default();
        let (shown, _) = stops.push(&tail);
        let rest = shown + &stops.finish();
        text.push_str(&rest);
        if !args.json {
            print!("{rest}");
        }
    }
    if args.json {
        let obj = json!({
            "prompt_ids": loaded.prompt_ids,
            "generated_ids": tokens.iter().map(|t| t.id).collect::<Vec<_>>(),
            "text": text,
            "tokens": tokens.iter().map(|t| token_json(tokenizer, t)).collect::<Vec<_>>(),
            "prompt_tokens": stats.prompt_tokens,
            "prefill_tok_s": stats.prefill_tok_s(),
            "decode_tok_s": stats.decode_tok_s(),
            "readback_bytes_per_token": stats.readback_bytes_per_step,
        });
        println!("{}", serde_json::to_string_pretty(&obj)?);
    } else {
        println!();
        if let Some(n) = args.logprobs {
            print_logprobs(tokenizer, &tokens, n);
        }
    }
    eprintln!(
        "prompt tokens: {} | prefill: {:.1} tok/s | decode: {:.1} tok/s ({} tokens) | KV cache {:.1} MiB | read back {} B/token",
        stats.prompt_tokens,
        stats.prefill_tok_s(),
        stats.decode_tok_s(),
        stats.generated_tokens,
        stats.kv_cache_bytes as f64 / (1 << 20) as f64,
        stats.readback_bytes_per_step
    );
    if args.verbose {
        eprintln!("KV cache: {} bytes ({:.1} MiB) for {} positions", stats.kv_cache_bytes, stats.kv_cache_bytes as f64 / (1 << 20) as f64, loaded.prompt_ids.len() + args.max_tokens);
    }
    if let Some(trace) = &stats.trace {
        print_trace(trace);
    }
    Ok(())
}

fn token_text(tokenizer: Option<&Tokenizer>, id: u32) -> String {
    tokenizer.map(|t| t.token_text(id)).unwrap_or_default()
}

/// One generated token for --json: id, text, and the log-probs when asked for.
fn token_json(tokenizer: Option<&Tokenizer>, t: &TokenChoice) -> Value {
    let mut obj = json!({"id": t.id, "token": token_text(tokenizer, t.id)});
    if let Some(lp) = t.logprob {
        obj["logprob"] = json!(lp);
        obj["top_logprobs"] = t.top.iter().map(|&(id, lp)| json!({"id": id, "token": token_text(tokenizer, id), "logprob": lp})).collect();
    }
    obj
}

/// A table after the text: each token's log-prob and its alternatives.
fn print_logprobs(tokenizer: Option<&Tokenizer>, tokens: &[TokenChoice], n: usize) {
    println!("{:>4} {:>8}  {:<20} {:>9}  top {n}", "pos", "id", "token", "logprob");
    for (i, t) in tokens.iter().enumerate() {
        let alts: Vec<String> = t.top.iter().map(|&(id, lp)| format!("{:?} {lp:.3}", token_text(tokenizer, id))).collect();
        println!("{:>4} {:>8}  {:<20} {:>9.4}  {}", i, t.id, format!("{:?}", token_text(tokenizer, t.id)), t.logprob.unwrap_or(f32::NAN), alts.join(", "));
    }
}

fn run_beams(dev: &kiln_tensor::Device, args: &GenerateArgs, loaded: &Loaded, beams: usize) -> Result<()> {
    let opts = BeamOptions { beams, length_penalty: args.length_penalty, max_new_tokens: args.max_tokens, eos_ids: loaded.eos_ids.clone() };
    let t0 = std::time::Instant::now();
    let hyps = beam_search(dev, &loaded.model, &loaded.prompt_ids, &opts)?;
    let elapsed = t0.elapsed();
    let decode = |ids: &[u32]| -> Result<String> {
        let text = match loaded.tokenizer.as_ref() {
            Some(t) => t.decode(ids, true)?,
            None => ids.iter().map(|id| format!("{id} ")).collect(),
        };
        Ok(match args.stop.iter().filter_map(|s| text.find(s.as_str())).min() {
            Some(at) => text[..at].to_string(),
            None => text,
        })
    };
    if args.json {
        let all: Result<Vec<Value>> = hyps
            .iter()
            .map(|h| Ok(json!({"generated_ids": h.ids, "text": decode(&h.ids)?, "sum_logprob": h.sum_logprob, "score": h.score})))
            .collect();
        let best = &hyps[0];
        let obj = json!({
            "prompt_ids": loaded.prompt_ids,
            "generated_ids": best.ids,
            "text": decode(&best.ids)?,
            "beams": beams,
            "length_penalty": args.length_penalty,
            "hypotheses": all?,
        });
        println!("{}", serde_json::to_string_pretty(&obj)?);
    } else {
        println!("{}", decode(&hyps[0].ids)?);
    }
    eprintln!(
        "beam search: {beams} beams, {} tokens in {:.2} s, score {:.4} (sum log-prob {:.4})",
        hyps[0].ids.len(),
        elapsed.as_secs_f64(),
        hyps[0].score,
        hyps[0].sum_logprob
    );
    Ok(())
}
