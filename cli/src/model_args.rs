//! Arguments shared by the commands that run a model: the model (a Hugging Face
//! directory or a GGUF file) and the prompt (raw text, `--chat` text, or token ids).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use kiln_model::gguf::chat::ChatMessage;
use kiln_model::{KvDtype, Model, Tokenizer};
use kiln_tensor::Device;

#[derive(Args, Clone)]
pub struct ModelArgs {
    /// A Hugging Face model directory (config.json, *.safetensors, tokenizer.json), a GGUF
    /// file (see `kiln fetch`), or hf:OWNER/REPO[:FILE] to download from the Hugging Face
    /// Hub (HF_ENDPOINT, HF_TOKEN and HF_HOME are honoured).
    #[arg(short = 'm', long = "model")]
    pub model: PathBuf,
    /// Token ids to use as the prompt instead of text, e.g. `--prompt-ids 15496,11,995`.
    #[arg(long, value_name = "IDS")]
    pub prompt_ids: Option<String>,
    /// Wrap the prompt in the model's chat template as a user message (instruct models).
    #[arg(long)]
    pub chat: bool,
    /// System message for --chat (default: the template's own, if it has one).
    #[arg(long, value_name = "TEXT", requires = "chat")]
    pub system: Option<String>,
    /// How the KV cache stores keys and values.
    #[arg(long = "kv-cache", value_enum, default_value_t = KvCacheArg::F16)]
    pub kv_cache: KvCacheArg,
    /// The prompt text. Without --chat it is tokenized as transformers' `tokenizer(prompt)`
    /// does, with the special tokens the model's files ask for: a BOS only where the
    /// tokenizer adds one (a GGUF's `add_bos_token`, a tokenizer.json's post-processor),
    /// none for GPT-2, Qwen2 or SmolLM2.
    pub prompt: Option<String>,
}

/// `--kv-cache`: f16 halves the cache's memory and the bytes attention reads per token
/// (values rounded to the nearest f16); f32 keeps the projections' values exactly.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KvCacheArg {
    F16,
    F32,
}

impl From<KvCacheArg> for KvDtype {
    fn from(a: KvCacheArg) -> KvDtype {
        match a {
            KvCacheArg::F16 => KvDtype::F16,
            KvCacheArg::F32 => KvDtype::F32,
        }
    }
}

/// A loaded model with what the commands need around it.
pub struct Loaded {
    pub model: Model,
    pub tokenizer: Option<Tokenizer>,
    pub eos_ids: Vec<u32>,
    pub prompt_ids: Vec<u32>,
    /// What was fed to the tokenizer (the rendered chat template with --chat).
    pub prompt_text: Option<String>,
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

/// Open a model (a Hugging Face directory, a GGUF file or an `hf:` name) and upload its
/// weights: `kiln::open`, with a progress bar for downloads and a spinner while loading.
pub fn load_parts(dev: &Device, path: &Path) -> Result<kiln::LoadedModel> {
    // An `hf:OWNER/REPO[:FILE]` name is downloaded first (progress bars), then loaded.
    let path = kiln::resolve(path, true)?;
    let bar = crate::progress::spinner(format!("loading {} onto {}", path.display(), dev.info().name));
    let parts = kiln::open(dev, &path);
    bar.finish_and_clear();
    Ok(parts?)
}

impl ModelArgs {
    /// Open the model, build the prompt, upload the weights.
    pub fn load(&self, dev: &Device) -> Result<Loaded> {
        let mut parts = load_parts(dev, &self.model)?;
        parts.model.set_kv_dtype(self.kv_cache.into());
        let (prompt_ids, prompt_text) = match (&self.prompt_ids, &self.prompt) {
            (Some(_), Some(_)) => bail!("give either a prompt or --prompt-ids, not both"),
            (Some(_), None) if self.chat => bail!("--chat needs prompt text, not --prompt-ids"),
            (Some(ids), None) => (parse_ids(ids)?, None),
            (None, None) => bail!("no prompt: give the prompt text or --prompt-ids"),
            (None, Some(text)) => {
                let Some(tok) = parts.tokenizer.as_ref() else {
                    bail!("{} has no tokenizer: pass --prompt-ids", self.model.display())
                };
                if self.chat {
                    if parts.chat_template.is_none() {
                        bail!("{} has no chat template: drop --chat", self.model.display())
                    }
                    let mut messages = Vec::new();
                    if let Some(system) = &self.system {
                        messages.push(ChatMessage::system(system.clone()));
                    }
                    messages.push(ChatMessage::user(text.clone()));
                    let (ids, rendered) = parts.chat_ids(&messages)?;
                    (ids, Some(rendered))
                } else {
                    (tok.encode_with_special(text, true)?, Some(text.clone()))
                }
            }
        };
        if prompt_ids.is_empty() {
            bail!("the prompt encodes to no tokens");
        }
        let kiln::LoadedModel { model, tokenizer, eos_ids, .. } = parts;
        Ok(Loaded { model, tokenizer, eos_ids, prompt_ids, prompt_text })
    }
}
