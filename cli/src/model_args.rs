//! Arguments shared by the commands that run a model: the model path and the prompt.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use kiln_model::{Model, ModelDir, Tokenizer};
use kiln_tensor::Device;

#[derive(Args, Clone)]
pub struct ModelArgs {
    /// A Hugging Face model directory (config.json, *.safetensors, tokenizer.json).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Token ids to use as the prompt instead of text, e.g. `--prompt-ids 15496,11,995`.
    #[arg(long, value_name = "IDS")]
    pub prompt_ids: Option<String>,
    /// The prompt text (fed raw to the tokenizer, no special tokens added).
    pub prompt: Option<String>,
}

pub struct Loaded {
    pub dir: ModelDir,
    pub model: Model,
    pub prompt_ids: Vec<u32>,
}

impl Loaded {
    pub fn tokenizer(&self) -> Option<&Tokenizer> {
        self.dir.tokenizer.as_ref()
    }
}

pub fn parse_ids(s: &str) -> Result<Vec<u32>> {
    let ids: Result<Vec<u32>> = s
        .split(',')
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u32>().with_context(|| format!("--prompt-ids: {p:?} is not a token id (a number >= 0)")))
        .collect();
    let ids = ids?;
    if ids.is_empty() {
        bail!("--prompt-ids is empty: give comma-separated token ids, e.g. 15496,11,995");
    }
    Ok(ids)
}

impl ModelArgs {
    /// Open the model directory, tokenize the prompt and upload the weights.
    pub fn load(&self, dev: &Device) -> Result<Loaded> {
        let dir = ModelDir::open(&self.model)?;
        let prompt_ids = match (&self.prompt_ids, &self.prompt) {
            (Some(_), Some(_)) => bail!("give either a prompt or --prompt-ids, not both"),
            (Some(ids), None) => parse_ids(ids)?,
            (None, Some(text)) => dir.tokenizer()?.encode(text)?,
            (None, None) => bail!("no prompt: give the prompt text or --prompt-ids"),
        };
        if prompt_ids.is_empty() {
            bail!("the prompt encodes to no tokens");
        }
        let model = Model::load(dev, &dir)?;
        Ok(Loaded { dir, model, prompt_ids })
    }
}
