//! Load a model, wrap a question in its chat template (plain text for a base model), and
//! stream the answer as it is sampled on the GPU.
//!
//!     cargo run --release -p kiln --example generate -- MODEL [PROMPT]
//!
//! MODEL is a Hugging Face directory or a GGUF file (`kiln fetch qwen2.5` prints one).
use kiln::sampler::generate::{generate, Flow, GenerateOptions};
use std::io::Write;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or_else(|| anyhow::anyhow!("usage: generate MODEL [PROMPT]"))?;
    let text = args.next().unwrap_or_else(|| "Write a haiku about GPUs.".into());

    let dev = kiln::Device::new(&kiln::DeviceOptions::default())?;
    let m = kiln::open(&dev, &path)?;
    let prompt = if m.chat_template.is_some() { m.chat_prompt(&text)? } else { m.encode(&text)? };
    let opts = GenerateOptions { sampling: kiln::SamplingParams { temperature: 0.7, seed: 1, ..Default::default() }, ..GenerateOptions::greedy(48, m.eos_ids.clone()) };

    let mut out = m.tokenizer()?.stream(true); // decodes pieces as whole UTF-8 arrives
    generate(&dev, &m.model, &prompt, &opts, |token| {
        print!("{}", out.push(token.id)?);
        std::io::stdout().flush().ok();
        Ok(Flow::Continue)
    })?;
    println!("{}", out.finish()?);
    Ok(())
}
