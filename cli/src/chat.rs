//! `kiln chat`: an interactive terminal chat with the model's own template, streaming
//! each answer. `/reset` starts over, `/quit` (or end of input) leaves.

use std::io::{BufRead, Write};

use anyhow::{bail, Result};
use clap::Args;
use kiln_model::gguf::chat::ChatMessage;
use kiln_sampler::generate::{generate, Flow, GenerateOptions};
use kiln_sampler::SamplingParams;

use crate::model_args::load_parts;
use crate::DeviceArgs;

#[derive(Args)]
pub struct ChatArgs {
    /// A Hugging Face model directory or a GGUF file with a chat template.
    #[arg(short = 'm', long = "model")]
    model: std::path::PathBuf,
    /// System message (default: the template's own, if it has one).
    #[arg(long, value_name = "TEXT")]
    system: Option<String>,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// Sampling temperature (0 is greedy).
    #[arg(long, default_value_t = 0.7, allow_hyphen_values = true)]
    temperature: f32,
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(dev_args: &DeviceArgs, args: ChatArgs) -> Result<()> {
    let dev = dev_args.open()?;
    let parts = load_parts(&dev, &args.model)?;
    let Some(tok) = parts.tokenizer.as_ref() else { bail!("{} has no tokenizer", args.model.display()) };
    if parts.chat_template.is_none() {
        bail!("{} has no chat template: use `kiln generate` instead", args.model.display());
    }
    let start = || args.system.iter().map(|s| ChatMessage::system(s.clone())).collect::<Vec<_>>();
    let mut messages = start();
    eprintln!("kiln chat — {} on {}. /reset starts over, /quit leaves.", args.model.display(), dev.info().name);
    let stdin = std::io::stdin();
    let mut line = String::new();
    let mut turn = 0u64;
    loop {
        eprint!("> ");
        std::io::stderr().flush()?;
        line.clear();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let input = line.trim();
        match input {
            "" => continue,
            "/quit" | "/exit" => break,
            "/reset" => {
                messages = start();
                eprintln!("(conversation cleared)");
                continue;
            }
            _ => {}
        }
        messages.push(ChatMessage::user(input));
        let (ids, _) = parts.chat_ids(&messages)?;
        let room = parts.model.config().max_position_embeddings.saturating_sub(ids.len());
        if room == 0 {
            eprintln!("(the conversation fills the model's context: /reset to start over)");
            messages.pop();
            continue;
        }
        let sampling = SamplingParams { temperature: args.temperature, top_p: args.top_p, seed: args.seed.wrapping_add(turn), ..Default::default() };
        let opts = GenerateOptions { max_new_tokens: args.max_tokens.min(room), sampling, eos_ids: parts.eos_ids.clone(), trace: false };
        let mut stream = tok.stream(true);
        let mut answer = String::new();
        let stdout = std::io::stdout();
        let (_, stats) = generate(&dev, &parts.model, &ids, &opts, |t| {
            let piece = stream.push(t.id)?;
            answer.push_str(&piece);
            let mut out = stdout.lock();
            let _ = write!(out, "{piece}").and_then(|_| out.flush());
            Ok(Flow::Continue)
        })?;
        let tail = stream.finish()?;
        answer.push_str(&tail);
        println!("{tail}");
        eprintln!("({} tokens, {:.1} tok/s)", stats.generated_tokens, stats.decode_tok_s());
        messages.push(ChatMessage::assistant(answer));
        turn += 1;
    }
    Ok(())
}
