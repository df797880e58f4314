//! `kiln eval`: multiple-choice evaluation of a JSONL task — accuracy under three length
//! conventions with lm-evaluation-harness's standard errors, and calibration (ECE with
//! its bins, Brier score, a reliability diagram). The numbers come from
//! `kiln_sampler::eval`; see docs/eval.md.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use kiln_sampler::eval::{report, score_item, Accuracy, Item, ItemResult, Report};
use serde_json::{json, Value};

use crate::model_args::{load_parts, KvCacheArg};
use crate::{plot, progress, DeviceArgs};

#[derive(Args)]
pub struct EvalArgs {
    /// A Hugging Face model directory or a GGUF file (see `kiln fetch`).
    #[arg(short = 'm', long = "model")]
    model: PathBuf,
    /// The task: one JSON object a line, {"context": TEXT, "choices": [TEXT, ...],
    /// "gold": INDEX} with an optional "id".
    #[arg(long, value_name = "FILE.jsonl")]
    task: PathBuf,
    /// Evaluate only the first N items.
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Put between the context and each choice (lm-evaluation-harness's
    /// `target_delimiter`).
    #[arg(long, default_value = " ", value_name = "TEXT")]
    delimiter: String,
    /// Equal-width confidence bins of the calibration error.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..=1000))]
    bins: u16,
    /// Print one JSON object (metrics, bins and every item's scores) instead of tables.
    #[arg(long)]
    json: bool,
    /// Draw the reliability diagram into this .png or .svg file.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// How the KV cache stores keys and values (as for `kiln generate`).
    #[arg(long = "kv-cache", value_enum, default_value_t = KvCacheArg::F16)]
    kv_cache: KvCacheArg,
}

/// One task line: the item and its id (the "id" field, else the line number).
struct TaskItem {
    id: Value,
    item: Item,
}

/// Parse the task file: every non-blank line an item; errors name the file and line.
fn read_task(path: &Path, limit: Option<usize>) -> Result<Vec<TaskItem>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("--task: reading {}", path.display()))?;
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if limit.is_some_and(|n| items.len() >= n) {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("{}:{}", path.display(), i + 1);
        let v: Value = serde_json::from_str(line).with_context(|| format!("{at}: not a JSON object"))?;
        let field = |name: &str| v.get(name).with_context(|| format!("{at}: no \"{name}\" field"));
        let Some(context) = field("context")?.as_str() else { bail!("{at}: \"context\" must be a string") };
        let Some(choices) = field("choices")?.as_array() else { bail!("{at}: \"choices\" must be an array of strings") };
        let choices: Vec<String> = choices
            .iter()
            .map(|c| c.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .with_context(|| format!("{at}: \"choices\" must be an array of strings"))?;
        let gold = field("gold")?
            .as_u64()
            .and_then(|g| usize::try_from(g).ok())
            .with_context(|| format!("{at}: \"gold\" must be a choice index (a whole number from 0)"))?;
        let item = Item { context: context.to_string(), choices, gold };
        item.check(&at)?;
        items.push(TaskItem { id: v.get("id").cloned().unwrap_or(json!(i + 1)), item });
    }
    if items.is_empty() {
        bail!("--task {}: no items", path.display());
    }
    Ok(items)
}

pub fn run(dev_args: &DeviceArgs, args: EvalArgs) -> Result<()> {
    if args.limit == Some(0) {
        bail!("--limit 0: nothing to evaluate; give at least 1");
    }
    if let Some(path) = &args.plot {
        plot::Format::from_path(path)?;
    }
    let items = read_task(&args.task, args.limit)?;
    let dev = dev_args.open()?;
    let mut opened = load_parts(&dev, &args.model)?;
    opened.model.set_kv_dtype(args.kv_cache.into());
    let Some(tok) = opened.tokenizer.as_ref() else {
        bail!("{} has no tokenizer (tokenizer.json): kiln eval needs one", args.model.display())
    };
    let bar = progress::count(items.len() as u64, "scoring".to_string());
    let mut results = Vec::with_capacity(items.len());
    for t in &items {
        let r = score_item(&dev, &opened.model, tok, &t.item, &args.delimiter)
            .with_context(|| format!("item {}", t.id))?;
        results.push(r);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let rep = report(&results, usize::from(args.bins))?;
    if let Some(path) = &args.plot {
        let title = format!("{} on {}", file_name(&args.model), file_name(&args.task));
        let bins = rep
            .bins
            .iter()
            .map(|b| plot::Bin {
                lo: b.lo,
                hi: b.hi,
                count: b.count as u64,
                confidence: if b.count == 0 { (b.lo + b.hi) / 2.0 } else { b.confidence },
                accuracy: b.accuracy,
            })
            .collect();
        plot::write(path, &plot::Reliability { title, bins })?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&args, &items, &results, &rep))?);
    } else {
        print_report(&rep);
        if let Some(path) = &args.plot {
            println!("reliability diagram: {}", path.display());
        }
    }
    Ok(())
}

fn file_name(p: &Path) -> String {
    p.file_name().map_or_else(|| p.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn accuracy_json(a: &Accuracy) -> Value {
    json!({ "value": a.value, "stderr": a.stderr })
}

fn to_json(args: &EvalArgs, items: &[TaskItem], results: &[ItemResult], rep: &Report) -> Value {
    let per_item: Vec<Value> = items
        .iter()
        .zip(results)
        .map(|(t, r)| {
            json!({
                "id": t.id,
                "gold": r.gold,
                "pred": r.pred,
                "pred_norm": r.pred_norm,
                "pred_per_token": r.pred_per_token,
                "correct": r.correct(),
                "confidence": r.confidence(),
                "probs": r.probs,
                "choices": r.choices.iter().map(|c| json!({
                    "loglikelihood": c.loglikelihood,
                    "tokens": c.tokens,
                    "chars": c.chars,
                    "greedy": c.greedy,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({
        "model": args.model.display().to_string(),
        "task": args.task.display().to_string(),
        "delimiter": args.delimiter,
        "items": rep.items,
        "acc": accuracy_json(&rep.acc),
        "acc_norm": accuracy_json(&rep.acc_norm),
        "acc_per_token": accuracy_json(&rep.acc_per_token),
        "ece": rep.ece,
        "brier": rep.brier,
        "bins": rep.bins.iter().map(|b| json!({
            "lo": b.lo, "hi": b.hi, "count": b.count, "accuracy": b.accuracy, "confidence": b.confidence,
        })).collect::<Vec<_>>(),
        "results": per_item,
    })
}

fn print_report(rep: &Report) {
    let acc = |name: &str, what: &str, a: &Accuracy| {
        let se = a.stderr.map_or("-".to_string(), |s| format!("{s:.4}"));
        println!("{name:<15} {:>7.4} ± {se:<7} {what}", a.value);
    };
    println!("{} items", rep.items);
    acc("acc", "argmax of the choices' summed log-probs", &rep.acc);
    acc("acc_norm", "the sum divided by the choice's length in characters", &rep.acc_norm);
    acc("acc_per_token", "the mean log-prob per token", &rep.acc_per_token);
    println!("{:<15} {:>7.4}   expected calibration error ({} bins)", "ece", rep.ece, rep.bins.len());
    println!("{:<15} {:>7.4}   mean Σ (p − [gold])² over the choices", "brier", rep.brier);
    println!();
    println!("{:>13} {:>6} {:>9} {:>11}", "confidence", "count", "accuracy", "mean conf");
    for b in &rep.bins {
        if b.count == 0 {
            println!("({:.2}, {:.2}] {:>6} {:>9} {:>11}", b.lo, b.hi, 0, "-", "-");
        } else {
            println!("({:.2}, {:.2}] {:>6} {:>9.4} {:>11.4}", b.lo, b.hi, b.count, b.accuracy, b.confidence);
        }
    }
}
