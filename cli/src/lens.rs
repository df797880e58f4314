//! `kiln lens`: the logit lens of a prompt (kiln_sampler::lens, docs/lens.md) — for every
//! block and position, the top next token when the block's output goes straight through
//! the final norm and the LM head — as a table, a heatmap (`--plot`) or JSON.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use kiln_model::hooks::Hooks;
use kiln_model::Tokenizer;
use kiln_sampler::lens::{logit_lens_with, Lens};
use serde_json::{json, Value};

use crate::model_args::ModelArgs;
use crate::plot;
use crate::DeviceArgs;

#[derive(Args)]
pub struct LensArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// How many ids per block and position --json lists (the table and the plot show the
    /// first), 1 to 32.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Print everything as JSON: {"prompt_ids", "tokens", "blocks", "lens": [row][position]
    /// = {"top": [{id, token, prob, logprob}]}}, row r being block `blocks[r]`.
    #[arg(long)]
    json: bool,
    /// Draw the lens as a heatmap into FILE (.svg or .png): one row per block, one column
    /// per input token, each cell the top token coloured by its probability.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// Only these blocks, e.g. `--blocks 0,12,23` (default: every block).
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    blocks: Vec<usize>,
    /// Characters of a token the table shows per cell.
    #[arg(long, default_value_t = 10)]
    width: usize,
    #[command(flatten)]
    hooks: crate::hooks::HookFlags,
}

/// A token's text, or `#id` without a tokenizer.
fn token_text(tokenizer: Option<&Tokenizer>, id: u32) -> String {
    tokenizer.map(|t| t.token_text(id)).unwrap_or_else(|| format!("#{id}"))
}

/// The lens as JSON (what `kiln lens --json` prints and `kiln serve`'s lens endpoint
/// answers).
pub fn to_json(lens: &Lens, tokenizer: Option<&Tokenizer>) -> Value {
    let rows: Vec<Value> = lens
        .top
        .iter()
        .map(|row| {
            let cells: Vec<Value> = row
                .iter()
                .map(|cell| {
                    let top: Vec<Value> = cell
                        .iter()
                        .map(|&(id, lp)| json!({"id": id, "token": token_text(tokenizer, id), "prob": lp.exp(), "logprob": lp}))
                        .collect();
                    json!({"top": top})
                })
                .collect();
            json!(cells)
        })
        .collect();
    let tokens: Vec<String> = lens.ids.iter().map(|&id| token_text(tokenizer, id)).collect();
    json!({"prompt_ids": lens.ids, "tokens": tokens, "blocks": lens.blocks, "lens": rows})
}

/// A table cell: the token (debug-escaped, cut to `width` characters) and its probability.
fn cell(token: &str, prob: f32, width: usize) -> String {
    let shown = format!("{token:?}");
    format!("{} {prob:.2}", plot::truncate(&shown, width))
}

pub fn run(dev_args: &DeviceArgs, args: LensArgs) -> Result<()> {
    if let Some(path) = &args.plot {
        plot::Format::from_path(path)?;
    }
    if args.top == 0 || args.top > kiln_kernels::topn::MAX_TOP {
        bail!("--top {}: give 1 to {}", args.top, kiln_kernels::topn::MAX_TOP);
    }
    let dev = dev_args.open()?;
    let loaded = args.model.load(&dev)?;
    let mut hooks = Hooks::new();
    args.hooks.add_to(&mut hooks, loaded.model.config(), loaded.tokenizer.as_ref())?;
    let blocks = if args.blocks.is_empty() { (0..loaded.model.config().n_layers).collect() } else { args.blocks.clone() };
    let lens = logit_lens_with(&dev, &loaded.model, &loaded.prompt_ids, args.top, &blocks, hooks)?;
    let tok = loaded.tokenizer.as_ref();

    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&lens, tok))?);
    } else {
        let w = args.width.max(3) + 7;
        let inputs: Vec<String> = lens.ids.iter().map(|&id| format!("{:?}", token_text(tok, id))).collect();
        let mut line = format!("{:>6} ", "block");
        for t in &inputs {
            line += &format!(" {:<w$}", plot::truncate(t, w));
        }
        println!("{}", line.trim_end());
        for (&block, row) in lens.blocks.iter().zip(&lens.top) {
            let mut line = format!("{block:>6} ");
            for c in row {
                let (id, lp) = c[0];
                line += &format!(" {:<w$}", cell(&token_text(tok, id), lp.exp(), args.width.max(3)));
            }
            println!("{}", line.trim_end());
        }
    }

    if let Some(path) = &args.plot {
        let rows = lens.blocks.iter().map(|b| b.to_string()).collect();
        let columns = lens.ids.iter().map(|&id| plot::cell_token(&token_text(tok, id))).collect();
        let cells = lens
            .top
            .iter()
            .flatten()
            .map(|c| plot::Cell { label: plot::cell_token(&token_text(tok, c[0].0)), value: c[0].1.exp() })
            .collect();
        let title = match &args.model.prompt {
            Some(text) => format!("Logit lens of {:?}", plot::truncate(text, 48)),
            None => format!("Logit lens of {} prompt ids", lens.ids.len()),
        };
        let mut map = plot::Heatmap::new(title, rows, columns, cells)?;
        map.row_title = "block".into();
        map.column_title = "input token (cell: top next token)".into();
        plot::write(path, &map)?;
        eprintln!("plot written to {}", path.display());
    }
    Ok(())
}
