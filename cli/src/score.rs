//! `kiln score`: the chain-rule log-probability of a text, or of an answer given a
//! context, with a per-token table (or JSON) and totals. See docs/scoring.md.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args};
use kiln_model::Tokenizer;
use kiln_sampler::score::{score_answer, score_text, AnswerScore, TextScore, TokenScore, Totals};
use serde_json::{json, Value};

use crate::model_args::{load_parts, KvCacheArg};
use crate::DeviceArgs;

#[derive(Args)]
#[command(group(ArgGroup::new("input").required(true).args(["text", "context"])))]
pub struct ScoreArgs {
    /// A Hugging Face model directory or a GGUF file (see `kiln fetch`).
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// Score the text of this file (`-` reads stdin), every token given the ones before it.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["context", "answer"])]
    text: Option<PathBuf>,
    /// The context an answer is scored after (needs --answer).
    #[arg(long, value_name = "TEXT", requires = "answer")]
    context: Option<String>,
    /// The answer to score given --context: its tokens only count in answer_logprob.
    #[arg(long, value_name = "TEXT", requires = "context")]
    answer: Option<String>,
    /// Print one JSON object (token_logprobs, tokens, sum_logprob, perplexity,
    /// bits_per_byte, and answer_* with --answer) instead of the table.
    #[arg(long)]
    json: bool,
    /// How the KV cache stores keys and values (as for `kiln generate`).
    #[arg(long = "kv-cache", value_enum, default_value_t = KvCacheArg::F16)]
    kv_cache: KvCacheArg,
}

enum Input {
    Text(String),
    Answer { context: String, answer: String },
}

impl ScoreArgs {
    /// The input, checked before the model is loaded.
    fn input(&self) -> Result<Input> {
        match (&self.text, &self.context, &self.answer) {
            (Some(path), None, None) => {
                let text = if path.as_os_str() == "-" {
                    let mut s = String::new();
                    std::io::stdin().read_to_string(&mut s).context("reading the text from stdin")?;
                    s
                } else {
                    std::fs::read_to_string(path).with_context(|| format!("--text: reading {}", path.display()))?
                };
                if text.is_empty() {
                    bail!("--text: {} is empty: nothing to score", path.display());
                }
                Ok(Input::Text(text))
            }
            (None, Some(context), Some(answer)) => {
                if answer.is_empty() {
                    bail!("--answer is empty: give the text to score after --context");
                }
                Ok(Input::Answer { context: context.clone(), answer: answer.clone() })
            }
            _ => bail!("give either --text FILE, or --context TEXT with --answer TEXT"),
        }
    }
}

pub fn run(dev_args: &DeviceArgs, args: ScoreArgs) -> Result<()> {
    let input = args.input()?;
    let dev = dev_args.open()?;
    let mut opened = load_parts(&dev, &args.model)?;
    opened.model.set_kv_dtype(args.kv_cache.into());
    let Some(tok) = opened.tokenizer.as_ref() else {
        bail!("{} has no tokenizer (tokenizer.json): kiln score needs one", args.model.display())
    };
    let (text, answer) = match &input {
        Input::Text(text) => (score_text(&dev, &opened.model, tok, text)?, None),
        Input::Answer { context, answer } => {
            let a = score_answer(&dev, &opened.model, tok, context, answer)?;
            (a.text.clone(), Some(a))
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(tok, &text, answer.as_ref()))?);
    } else {
        print_table(tok, &text, answer.as_ref());
    }
    Ok(())
}

fn token_json(tok: &Tokenizer, t: &TokenScore, in_answer: bool) -> Value {
    json!({
        "position": t.position, "id": t.id, "token": tok.token_text(t.id), "logprob": t.logprob,
        "prob": t.prob(), "rank": t.rank, "entropy": t.entropy, "argmax": t.argmax,
        "greedy": t.is_greedy(), "answer": in_answer,
    })
}

fn to_json(tok: &Tokenizer, text: &TextScore, answer: Option<&AnswerScore>) -> Value {
    let answer_start = answer.map_or(usize::MAX, |a| a.answer_start);
    let tokens: Vec<Value> = text.tokens.iter().map(|t| token_json(tok, t, t.position >= answer_start)).collect();
    let t = &text.totals;
    let mut out = json!({
        "ids": text.ids,
        "first_scored": text.first_scored,
        "tokens": tokens,
        "token_logprobs": text.tokens.iter().map(|t| t.logprob).collect::<Vec<_>>(),
        "n_tokens": t.tokens,
        "bytes": t.bytes,
        "sum_logprob": t.sum_logprob,
        "mean_logprob": t.mean_logprob,
        "perplexity": t.perplexity,
        "bits_per_byte": t.bits_per_byte,
        "greedy": t.greedy,
    });
    if let Some(a) = answer {
        let at = &a.answer_totals;
        let answer_tokens: Vec<Value> = a.answer_tokens().iter().map(|t| token_json(tok, t, true)).collect();
        let fields = json!({
            "context": a.context,
            "answer": a.answer,
            "answer_start": a.answer_start,
            "answer_tokens": answer_tokens,
            "answer_n_tokens": at.tokens,
            "answer_bytes": at.bytes,
            "answer_logprob": at.sum_logprob,
            "answer_mean_logprob": at.mean_logprob,
            "answer_logprob_per_byte": at.logprob_per_byte,
            "answer_perplexity": at.perplexity,
            "answer_bits_per_byte": at.bits_per_byte,
            "answer_greedy": at.greedy,
        });
        out.as_object_mut().unwrap().extend(fields.as_object().unwrap().clone());
    }
    out
}

fn print_table(tok: &Tokenizer, text: &TextScore, answer: Option<&AnswerScore>) {
    let answer_start = answer.map_or(usize::MAX, |a| a.answer_start);
    println!(
        "{:>5} {:>8}  {:<20} {:>10} {:>9} {:>7} {:>8}",
        "pos", "id", "token", "logprob", "prob", "rank", "entropy"
    );
    for (p, &id) in text.ids[..text.first_scored].iter().enumerate() {
        let token = format!("{:?}", tok.token_text(id));
        println!("{p:>5} {id:>8}  {token:<20} {:>10} {:>9} {:>7} {:>8}  (context, not scored)", "-", "-", "-", "-");
    }
    for t in &text.tokens {
        let token = format!("{:?}", tok.token_text(t.id));
        let mark = if t.position >= answer_start { "  answer" } else { "" };
        println!(
            "{:>5} {:>8}  {token:<20} {:>10.4} {:>9} {:>7} {:>8.4}{mark}",
            t.position,
            t.id,
            t.logprob,
            prob_text(t.prob()),
            t.rank,
            t.entropy
        );
    }
    println!();
    print_totals("text", &text.totals);
    if let Some(a) = answer {
        println!("answer {:?} given {:?}:", a.answer, a.context);
        print_totals("answer", &a.answer_totals);
    }
}

/// A probability for the table: fixed-point, or scientific when below 0.001.
fn prob_text(p: f64) -> String {
    if p >= 1e-3 {
        format!("{p:.5}")
    } else {
        format!("{p:.2e}")
    }
}

fn print_totals(what: &str, t: &Totals) {
    println!("{what}: {} tokens scored, {} bytes", t.tokens, t.bytes);
    println!("  sum logprob    {:.4} nats", t.sum_logprob);
    println!("  mean logprob   {:.4} nats/token, {:.4} nats/byte", t.mean_logprob, t.logprob_per_byte);
    println!("  perplexity     {:.4}", t.perplexity);
    println!("  bits per byte  {:.4}", t.bits_per_byte);
    println!("  greedy         {}", if t.greedy { "yes (every token was the argmax)" } else { "no" });
}
