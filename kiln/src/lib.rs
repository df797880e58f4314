//! kiln as a library: a GPU tensor framework on wgpu with hand-written WGSL kernels, and
//! GPT-2, Qwen2, Llama and Qwen3 on top.
//!
//! [`open`] loads a model (a Hugging Face directory or a GGUF file) with everything needed
//! to run it — tokenizer, chat template, BOS/EOS ids and the directory's generation
//! defaults — as the `kiln` command does. The layers below are re-exported whole:
//! [`tensor`] (device, tensors, recording), [`kernels`] (one launcher per WGSL entry
//! point, with CPU twins), [`model`] (configs, loaders, tokenizers, the model families)
//! and [`sampler`] (GPU sampling, generation, scoring, the batching engine).
//!
//! ```no_run
//! use kiln::sampler::generate::{generate, Flow, GenerateOptions};
//!
//! let dev = kiln::Device::new(&kiln::DeviceOptions::default())?;
//! let m = kiln::open(&dev, "path/to/model-or.gguf")?;
//! let prompt = m.chat_prompt("Write a haiku about GPUs.")?;
//! let opts = GenerateOptions::greedy(64, m.eos_ids.clone());
//! let (tokens, _) = generate(&dev, &m.model, &prompt, &opts, |_| Ok(Flow::Continue))?;
//! let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
//! println!("{}", m.tokenizer()?.decode(&ids, true)?);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

use std::path::{Path, PathBuf};

pub mod hub;

pub use kiln_kernels as kernels;
pub use kiln_model as model;
pub use kiln_sampler as sampler;
pub use kiln_tensor as tensor;

pub use kiln_model::gguf::chat::ChatMessage;
pub use kiln_model::hooks::{Capture, Edit, Hooks, LogitBase, LogitEdit, Point};
pub use kiln_model::{GenerationConfig, KvDtype, Model, ModelConfig, Tokenizer};
pub use kiln_sampler::SamplingParams;
pub use kiln_tensor::{BackendChoice, DType, Device, DeviceOptions, Recorder, Tensor};

use kiln_model::gguf::chat::render_chat;
use kiln_model::gguf::tokenizer::{build, GgufTokenizerSpec};
use kiln_model::gguf::GgufFile;
use kiln_model::ModelDir;

/// What [`open`] and [`LoadedModel`]'s helpers can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the model's files, its config or its weights failed (the message names
    /// the file and field or tensor).
    #[error(transparent)]
    Model(#[from] kiln_model::ModelError),
    /// A GPU operation failed.
    #[error(transparent)]
    Tensor(#[from] kiln_tensor::TensorError),
    /// The model came without a tokenizer, so text cannot be encoded or decoded.
    #[error("{path} has no tokenizer: pass token ids instead of text")]
    NoTokenizer {
        /// The model's directory or file.
        path: PathBuf,
    },
    /// The model has no chat template (a base model): use plain text.
    #[error("{path} has no chat template: use the text as it is")]
    NoChatTemplate {
        /// The model's directory or file.
        path: PathBuf,
    },
    /// An `hf:` name is malformed, or downloading what it names failed.
    #[error("{name}: {detail}")]
    Hub {
        /// The `hf:` name.
        name: String,
        /// What went wrong (the file and the hub's answer).
        detail: String,
    },
    /// A chat template file exists but could not be read.
    #[error("reading the chat template {path}: {detail}")]
    ChatTemplate {
        /// The file (chat_template.jinja or tokenizer_config.json).
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// A model on the GPU with what running it needs around it.
pub struct LoadedModel {
    /// The weights on the device and the forward pass.
    pub model: Model,
    /// The tokenizer (`tokenizer.json`, or a GGUF's `tokenizer.ggml.*`); `None` for a
    /// directory without one.
    pub tokenizer: Option<Tokenizer>,
    /// The Jinja chat template (a GGUF's `tokenizer.chat_template`, a directory's
    /// chat_template.jinja or tokenizer_config.json `chat_template`), if any.
    pub chat_template: Option<String>,
    /// The BOS id the chat template's `bos_token` stands for.
    pub bos: Option<u32>,
    /// Ids that end generation: a GGUF's eos and eot, or config.json's and
    /// generation_config.json's eos ids.
    pub eos_ids: Vec<u32>,
    /// A directory's generation_config.json (sampling defaults); `None` for GGUF files.
    pub generation: Option<GenerationConfig>,
    /// Where the model was opened from.
    pub path: PathBuf,
}

/// Open a model — a Hugging Face directory (config.json, safetensors, tokenizer.json), a
/// GGUF file, or an `hf:OWNER/REPO[:FILE]` name downloaded first ([`hub`]) — and upload
/// its weights to `dev`. Tokenization then follows the files: a BOS only where the
/// tokenizer adds one, the chat template exactly as written.
pub fn open(dev: &Device, path: impl AsRef<Path>) -> Result<LoadedModel> {
    let path = resolve(path.as_ref(), true)?;
    let path = path.as_path();
    if kiln_model::gguf::model::is_gguf(path) {
        let file = GgufFile::open(path)?;
        let spec = GgufTokenizerSpec::from_gguf(&file)?;
        let tokenizer = build(&spec)?;
        let chat_template = kiln_model::gguf::chat::chat_template(&file)?.map(str::to_string);
        let model = Model::load_gguf(dev, &file)?;
        let bos = model.config().bos_token_id;
        Ok(LoadedModel {
            model,
            tokenizer: Some(tokenizer),
            chat_template,
            bos,
            eos_ids: spec.eos_ids(),
            generation: None,
            path: path.to_path_buf(),
        })
    } else {
        let dir = ModelDir::open(path)?;
        let chat_template = if dir.path.is_dir() { hf_chat_template(&dir.path)? } else { None };
        let model = Model::load(dev, &dir)?;
        let eos_ids = dir.eos_token_ids();
        let bos = dir.config.bos_token_id;
        let generation = dir.generation.path.is_some().then(|| dir.generation.clone());
        Ok(LoadedModel { model, tokenizer: dir.tokenizer, chat_template, bos, eos_ids, generation, path: path.to_path_buf() })
    }
}

/// The local path of `path`: itself, or for an `hf:` name the downloaded file or snapshot
/// directory (with a progress bar per file when `progress`).
pub fn resolve(path: &Path, progress: bool) -> Result<PathBuf> {
    match path.to_str().map(hub::parse).transpose()?.flatten() {
        Some(name) => hub::download(&name, progress),
        None => Ok(path.to_path_buf()),
    }
}

/// A directory's chat template: chat_template.jinja, else tokenizer_config.json's
/// `chat_template` string.
fn hf_chat_template(dir: &Path) -> Result<Option<String>> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|e| Error::ChatTemplate { path: path.to_path_buf(), detail: e.to_string() })
    };
    let jinja = dir.join("chat_template.jinja");
    if jinja.exists() {
        return Ok(Some(read(&jinja)?));
    }
    let cfg = dir.join("tokenizer_config.json");
    if cfg.exists() {
        let v: serde_json::Value = serde_json::from_str(&read(&cfg)?)
            .map_err(|e| Error::ChatTemplate { path: cfg.clone(), detail: format!("not valid JSON: {e}") })?;
        if let Some(t) = v.get("chat_template").and_then(|t| t.as_str()) {
            return Ok(Some(t.to_string()));
        }
    }
    Ok(None)
}

/// Render `messages` with `template` (the assistant's turn opened; `bos_token` and
/// `eos_token` are the tokens of `bos` and the first of `eos_ids`) and encode the result
/// without adding special tokens. Returns the ids and the rendered text.
pub fn chat_ids(
    tok: &Tokenizer,
    template: &str,
    bos: Option<u32>,
    eos_ids: &[u32],
    messages: &[ChatMessage],
) -> Result<(Vec<u32>, String)> {
    let token = |id: Option<u32>| id.and_then(|id| tok.id_to_token(id)).unwrap_or_default();
    let rendered = render_chat(template, messages, true, &token(bos), &token(eos_ids.first().copied()))?;
    Ok((tok.encode_with_special(&rendered, false)?, rendered))
}

impl LoadedModel {
    /// The tokenizer, or [`Error::NoTokenizer`].
    pub fn tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| Error::NoTokenizer { path: self.path.clone() })
    }

    /// `text` as transformers' `tokenizer(text)` encodes it: with the special tokens the
    /// model's files ask for (a BOS only where the tokenizer adds one).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.tokenizer()?.encode_with_special(text, true)?)
    }

    /// Render `messages` with the chat template (the assistant's turn opened) and encode
    /// the result without adding special tokens: the template holds every one it wants.
    /// Returns the ids and the rendered text.
    pub fn chat_ids(&self, messages: &[ChatMessage]) -> Result<(Vec<u32>, String)> {
        let template =
            self.chat_template.as_deref().ok_or_else(|| Error::NoChatTemplate { path: self.path.clone() })?;
        chat_ids(self.tokenizer()?, template, self.bos, &self.eos_ids, messages)
    }

    /// One user message through the chat template: [`LoadedModel::chat_ids`]'s ids.
    pub fn chat_prompt(&self, user: &str) -> Result<Vec<u32>> {
        Ok(self.chat_ids(&[ChatMessage::user(user)])?.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_model::gguf::tokenizer::{build, token_type, GgufTokenizerSpec};

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
