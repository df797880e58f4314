//! Arguments shared by the commands that run a model: the model (a Hugging Face
//! directory or a GGUF file) and the prompt (raw text, `--chat` text, or token ids).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use kiln_model::gguf::chat::{render_chat, ChatMessage};
use kiln_model::gguf::tokenizer::{build, GgufTokenizerSpec};
use kiln_model::gguf::GgufFile;
use kiln_model::{KvDtype, Model, ModelDir, Tokenizer};
use kiln_tensor::Device;

#[derive(Args, Clone)]
pub struct ModelArgs {
    /// A Hugging Face model directory (config.json, *.safetensors, tokenizer.json) or a
    /// GGUF file (see `kiln fetch`).
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

/// The chat template of a Hugging Face directory: chat_template.jinja, else the
/// `chat_template` string of tokenizer_config.json.
fn hf_chat_template(dir: &Path) -> Result<Option<String>> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.exists() {
        return Ok(Some(std::fs::read_to_string(&jinja).with_context(|| format!("reading {}", jinja.display()))?));
    }
    let cfg = dir.join("tokenizer_config.json");
    if cfg.exists() {
        let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cfg)?)
            .with_context(|| format!("{} is not valid JSON", cfg.display()))?;
        if let Some(t) = v.get("chat_template").and_then(|t| t.as_str()) {
            return Ok(Some(t.to_string()));
        }
    }
    Ok(None)
}

fn token_string(tok: &Tokenizer, id: Option<u32>) -> String {
    id.and_then(|id| tok.id_to_token(id)).unwrap_or_default()
}

/// A model with its tokenizer, end-of-sequence ids and chat template, before any prompt.
pub struct ModelParts {
    pub model: Model,
    pub tokenizer: Option<Tokenizer>,
    pub eos_ids: Vec<u32>,
    pub template: Option<String>,
    pub bos: Option<u32>,
}

impl ModelParts {
    /// Render chat `messages` with the model's template (generation prompt added) and
    /// tokenize it; the template already holds every special token it wants.
    pub fn chat_ids(&self, messages: &[ChatMessage]) -> Result<(Vec<u32>, String)> {
        let Some(tok) = self.tokenizer.as_ref() else { bail!("the model has no tokenizer") };
        let Some(template) = self.template.as_deref() else { bail!("the model has no chat template") };
        chat_ids(tok, template, self.bos, &self.eos_ids, messages)
    }
}

/// Render `messages` with `template` (generation prompt added) and tokenize the result.
pub fn chat_ids(
    tok: &Tokenizer,
    template: &str,
    bos: Option<u32>,
    eos_ids: &[u32],
    messages: &[ChatMessage],
) -> Result<(Vec<u32>, String)> {
    let eos = token_string(tok, eos_ids.first().copied());
    let rendered = render_chat(template, messages, true, &token_string(tok, bos), &eos)?;
    Ok((tok.encode_with_special(&rendered, false)?, rendered))
}

/// Open a model (a Hugging Face directory or a GGUF file) and upload its weights.
pub fn load_parts(dev: &Device, path: &Path) -> Result<ModelParts> {
    let bar = crate::progress::spinner(format!("loading {} onto {}", path.display(), dev.info().name));
    let parts = load_parts_quietly(dev, path);
    bar.finish_and_clear();
    parts
}

fn load_parts_quietly(dev: &Device, path: &Path) -> Result<ModelParts> {
    if kiln_model::gguf::model::is_gguf(path) {
        let file = GgufFile::open(path)?;
        let spec = GgufTokenizerSpec::from_gguf(&file)?;
        // End of sequence as the file says (llama.cpp's reading: eos and eot).
        let eos_ids = spec.eos_ids();
        // BOS/EOS, added tokens and the split as the metadata says (llama.cpp, transformers 5).
        let tokenizer = build(&spec)?;
        let template = kiln_model::gguf::chat::chat_template(&file)?.map(str::to_string);
        let model = Model::load_gguf(dev, &file)?;
        let bos = model.config().bos_token_id;
        Ok(ModelParts { model, tokenizer: Some(tokenizer), eos_ids, template, bos })
    } else {
        let dir = ModelDir::open(path)?;
        let template = if dir.path.is_dir() { hf_chat_template(&dir.path)? } else { None };
        let model = Model::load(dev, &dir)?;
        let eos_ids = dir.eos_token_ids();
        let bos = dir.config.bos_token_id;
        Ok(ModelParts { model, tokenizer: dir.tokenizer, eos_ids, template, bos })
    }
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
                    if parts.template.is_none() {
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
        let ModelParts { model, tokenizer, eos_ids, .. } = parts;
        Ok(Loaded { model, tokenizer, eos_ids, prompt_ids, prompt_text })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_model::gguf::tokenizer::token_type;

    /// A byte-level vocabulary whose GGUF metadata asks for a BOS (`<s>`) on every text.
    fn bos_tokenizer() -> Tokenizer {
        let mut tokens: Vec<String> =
            kiln_model::tokenizer::bytes_to_unicode().into_iter().map(|(_, c)| c.to_string()).collect();
        let mut token_types = vec![token_type::NORMAL; tokens.len()];
        for t in ["<s>", "</s>"] {
            tokens.push(t.to_string());
            token_types.push(token_type::CONTROL);
        }
        let spec = GgufTokenizerSpec {
            model: "gpt2".into(),
            pre: Some("gpt2".into()),
            bos: Some(256),
            eos: Some(257),
            add_bos: Some(true),
            tokens,
            token_types,
            source: "synthetic.gguf".into(),
            ..Default::default()
        };
        build(&spec).unwrap()
    }

    #[test]
    fn chat_ids_add_exactly_what_the_template_writes() {
        let tok = bos_tokenizer();
        let template = "{{ bos_token }}{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}";
        let (ids, text) = chat_ids(&tok, template, Some(256), &[257], &[ChatMessage::user("hi")]).unwrap();
        assert_eq!(text, "<s>hi</s>");
        // One BOS, from the template; none added on top of it.
        assert_eq!(ids.iter().filter(|&&i| i == 256).count(), 1, "{ids:?}");
        assert_eq!(ids[0], 256);
        assert_eq!(*ids.last().unwrap(), 257);
        // A plain prompt gets the BOS the file asks for.
        assert_eq!(tok.encode_with_special("hi", true).unwrap()[0], 256);

        // A template without a BOS gets none.
        let (ids, _) = chat_ids(
            &tok,
            "{% for m in messages %}{{ m.content }}{% endfor %}",
            Some(256),
            &[257],
            &[ChatMessage::user("hi")],
        )
        .unwrap();
        assert!(!ids.contains(&256), "{ids:?}");
    }
}
