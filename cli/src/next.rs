//! `kiln next`: the next-token table for a prompt (rank, id, token, logit, prob, logprob),
//! where chosen tokens rank (`--find`), and a plot of the logits over the whole
//! vocabulary (`--plot`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;
use kiln_kernels::softmax;
use kiln_model::Tokenizer;
use kiln_tensor::{DType, Recorder, Tensor};
use serde_json::json;

use crate::model_args::ModelArgs;
use crate::plot;
use crate::DeviceArgs;

#[derive(Args)]
pub struct NextArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// How many candidates to list.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Print a JSON object {"prompt_ids", "top": [{id, token, logit, prob, logprob}]}, plus
    /// "find": [{text, id, token, rank, logit, prob, logprob, pieces}] with --find.
    #[arg(long)]
    json: bool,
    /// Also show the rank, logit, probability and log-prob of TEXT's first token, e.g.
    /// `--find " milk"` (mind the leading space). TEXT is tokenized without special
    /// tokens. Repeatable.
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    find: Vec<String>,
    /// Draw the logits over the whole vocabulary into FILE (.svg or .png), with the top
    /// token and each --find token marked.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    #[command(flatten)]
    hooks: crate::hooks::HookFlags,
}

/// A `--find` text and the token that stands for it: its first.
struct Find {
    text: String,
    id: usize,
    /// Every token of the text, with its readable text.
    pieces: Vec<(u32, String)>,
}

fn resolve_finds(texts: &[String], tokenizer: Option<&Tokenizer>, model: &Path) -> Result<Vec<Find>> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let Some(tok) = tokenizer else { bail!("--find needs a tokenizer, and {} has none", model.display()) };
    let find = |text: &String| {
        let ids = tok.encode_with_special(text, false)?;
        let Some(&first) = ids.first() else {
            bail!("--find {text:?} encodes to no tokens: give some text, e.g. --find \" milk\"")
        };
        let pieces = ids.iter().map(|&id| (id, tok.token_text(id))).collect();
        Ok(Find { text: text.clone(), id: first as usize, pieces })
    };
    texts.iter().map(find).collect()
}

/// 1 + the number of ids with a strictly larger logit, so ties share a rank.
fn rank(logits: &[f32], id: usize) -> usize {
    1 + logits.iter().filter(|&&l| l > logits[id]).count()
}

fn row(rank: usize, id: usize, token: &str, logit: f32, logprob: f32) -> String {
    let token = format!("{token:?}");
    format!("{rank:>4} {id:>8}  {token:<20} {logit:>10.4} {:>9.5} {logprob:>10.4}", logprob.exp())
}

pub fn run(dev_args: &DeviceArgs, args: NextArgs) -> Result<()> {
    // Bad --plot names fail before the slow part.
    if let Some(path) = &args.plot {
        plot::Format::from_path(path)?;
    }
    let dev = dev_args.open()?;
    let mut loaded = args.model.load(&dev)?;
    args.hooks.install(&mut loaded)?;
    let finds = resolve_finds(&args.find, loaded.tokenizer.as_ref(), &args.model.model)?;
    let ids = &loaded.prompt_ids;
    kiln_model::generate::check_prompt(loaded.model.config(), ids, 0)?;
    let mut cache = loaded.model.new_cache(&dev, ids.len())?;
    let input = Tensor::from_slice(&dev, ids, &[ids.len()])?;
    let mut rec = Recorder::new(&dev);
    let logits = loaded.model.forward(&mut rec, &input, &mut cache, false)?; // [1, vocab]
    let logprobs = Tensor::empty(&dev, logits.shape(), DType::F32)?;
    softmax::log_softmax(&mut rec, &logits, &logprobs)?;
    rec.submit()?;
    let logits = logits.to_vec_f32()?;
    let logprobs = logprobs.to_vec_f32()?;
    if let Some(f) = finds.iter().find(|f| f.id >= logits.len()) {
        bail!("--find {:?}: token id {} is past the model's {} logits", f.text, f.id, logits.len());
    }

    let mut order: Vec<usize> = (0..logits.len()).collect();
    // Highest logit first; ties keep the lower id first (like torch.topk on CPU).
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order.truncate(args.top.max(1));
    let token = |id: usize| loaded.tokenizer.as_ref().map(|t| t.token_text(id as u32)).unwrap_or_default();

    if args.json {
        let top: Vec<_> = order
            .iter()
            .map(|&id| {
                json!({"id": id, "token": token(id), "logit": logits[id], "prob": logprobs[id].exp(), "logprob": logprobs[id]})
            })
            .collect();
        let mut out = json!({"prompt_ids": ids, "top": top});
        if !finds.is_empty() {
            let find: Vec<_> = finds
                .iter()
                .map(|f| {
                    let pieces: Vec<_> = f.pieces.iter().map(|(id, text)| json!({"id": id, "token": text})).collect();
                    json!({
                        "text": f.text, "id": f.id, "token": token(f.id), "rank": rank(&logits, f.id),
                        "logit": logits[f.id], "prob": logprobs[f.id].exp(), "logprob": logprobs[f.id],
                        "pieces": pieces,
                    })
                })
                .collect();
            out["find"] = json!(find);
        }
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{:>4} {:>8}  {:<20} {:>10} {:>9} {:>10}", "rank", "id", "token", "logit", "prob", "logprob");
        for (rank, &id) in order.iter().enumerate() {
            println!("{}", row(rank + 1, id, &token(id), logits[id], logprobs[id]));
        }
        for f in &finds {
            println!();
            if f.pieces.len() > 1 {
                let pieces: Vec<String> = f.pieces.iter().map(|(id, text)| format!("{id} {text:?}")).collect();
                let n = f.pieces.len();
                println!("find {:?}: {n} tokens ({}), ranking the first", f.text, pieces.join(", "));
            } else {
                println!("find {:?}:", f.text);
            }
            println!("{}", row(rank(&logits, f.id), f.id, &token(f.id), logits[f.id], logprobs[f.id]));
        }
    }

    if let Some(path) = &args.plot {
        let prompt = match &args.model.prompt {
            Some(text) => format!("{:?}", plot::truncate(text, 48)),
            None => format!("{} prompt ids", ids.len()),
        };
        let top = plot::Mark { id: order[0], label: plot::mark_label(order[0], &token(order[0]), logits[order[0]]) };
        let finds = finds
            .iter()
            .map(|f| {
                let label = plot::mark_label(f.id, &token(f.id), logits[f.id]);
                plot::Mark { id: f.id, label: format!("{label} rank {}", rank(&logits, f.id)) }
            })
            .collect();
        let title = format!("Next-token logits after {prompt}");
        plot::write(path, &plot::LogitsPlot { logits: &logits, title, top, finds })?;
        eprintln!("plot written to {}", path.display());
    }
    Ok(())
}
