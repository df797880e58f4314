#![warn(missing_docs)]
//! kiln-model: everything between a model on disk and the GPU forward pass.
//!
//! - [`ModelDir`]: a Hugging Face model directory (`config.json`, `generation_config.json`,
//!   `model.safetensors` or a sharded index, `tokenizer.json`), opened and validated.
//! - [`ModelConfig`]: one config for GPT-2, Qwen2, Llama, Qwen3 and Gemma 3.
//! - [`WeightStore`]: memory-mapped safetensors, uploaded to [`kiln_tensor::Tensor`]s by name.
//! - [`Tokenizer`]: `tokenizer.json` via the `tokenizers` crate, with streaming decode.
//! - [`layout`]: the tensors (names, shapes) each family needs.
//! - [`Model`] (`gpt2.rs`, `qwen2.rs`, `gemma3.rs` on the blocks of `nn.rs`): the forward passes over a
//!   [`KvCache`]; [`generate`]: prompt checks (generation itself is in kiln-sampler).

pub mod batch;
pub mod config;
pub mod error;
pub mod fetch;
pub mod fused;
pub mod gemma3;
pub mod generate;
pub mod gguf;
pub mod gpt2;
pub mod hooks;
pub mod kv_cache;
pub mod layout;
pub mod model;
pub mod nn;
pub mod qwen2;
pub mod source;
pub mod synthetic;
pub mod tokenizer;
pub mod weights;

use std::path::{Path, PathBuf};

pub use config::{parse_torch_dtype, Arch, Gemma3Params, GenerationConfig, ModelConfig, CONFIG_FILE, GENERATION_CONFIG_FILE};
pub use error::{ModelError, Result};
pub use kv_cache::{KvCache, KvDtype};
pub use layout::{embedding_name, expected_weights, WeightSpec, LM_HEAD};
pub use model::{Model, PREFILL_CHUNK};
pub use source::WeightSource;
pub use tokenizer::{escape_invalid_utf8, StreamDecoder, Tokenizer, TOKENIZER_FILE};
pub use weights::{TensorInfo, WeightStore, SAFETENSORS_FILE, SAFETENSORS_INDEX_FILE};

/// A Hugging Face model directory, opened: config parsed and validated, weight headers
/// read and checked against the config, tokenizer loaded when `tokenizer.json` exists.
/// Files other than those named above are ignored. Nothing is uploaded yet.
#[derive(Debug)]
pub struct ModelDir {
    /// The directory.
    pub path: PathBuf,
    /// config.json (with generation_config.json's token ids folded in).
    pub config: ModelConfig,
    /// generation_config.json's sampling defaults (all `None` when it is absent).
    pub generation: GenerationConfig,
    /// The safetensors headers, checked against the config; the data stays memory-mapped.
    pub weights: WeightStore,
    /// `None` when the directory has no tokenizer.json (see [`ModelDir::tokenizer`]).
    pub tokenizer: Option<Tokenizer>,
}

impl ModelDir {
    /// Open `dir` and check every tensor the model needs (names, shapes, dtypes).
    pub fn open(dir: impl AsRef<Path>) -> Result<ModelDir> {
        let dir = dir.as_ref();
        if !dir.exists() {
            return Err(ModelError::MissingFile { path: dir.to_path_buf(), what: "model directory".into() });
        }
        if !dir.is_dir() {
            return Err(ModelError::NotADirectory {
                path: dir.to_path_buf(),
                detail: "is not a directory; pass a Hugging Face model directory (with config.json)".into(),
            });
        }
        let (config, generation) = ModelConfig::from_dir(dir)?;
        let weights = WeightStore::open_dir(dir)?;
        let tokenizer = if dir.join(TOKENIZER_FILE).exists() {
            let mut t = Tokenizer::from_dir(dir)?;
            t.set_eos_ids(&config.eos_token_ids);
            Some(t)
        } else {
            None
        };
        let md = ModelDir { path: dir.to_path_buf(), config, generation, weights, tokenizer };
        md.check_weights()?;
        Ok(md)
    }

    /// The tokenizer, or an error naming the missing tokenizer.json.
    pub fn tokenizer(&self) -> Result<&Tokenizer> {
        self.tokenizer.as_ref().ok_or_else(|| ModelError::MissingFile {
            path: self.path.join(TOKENIZER_FILE),
            what: "tokenizer (tokenizer.json)".into(),
        })
    }

    /// End-of-sequence ids: from generation_config.json / config.json, else the
    /// tokenizer's known eos token, else none.
    pub fn eos_token_ids(&self) -> Vec<u32> {
        if !self.config.eos_token_ids.is_empty() {
            return self.config.eos_token_ids.clone();
        }
        self.tokenizer.as_ref().map(|t| t.eos_ids().to_vec()).unwrap_or_default()
    }

    /// True when the LM head reuses the token embedding ([`embedding_name`]): the config
    /// says `tie_word_embeddings`, or the checkpoint has no `lm_head.weight`.
    pub fn lm_head_tied(&self) -> bool {
        self.config.tie_word_embeddings || !self.weights.contains(LM_HEAD)
    }

    /// Check that every tensor of [`expected_weights`] is present with the right shape
    /// and a loadable dtype (f32/f16/bf16). `lm_head.weight` is checked only when untied.
    pub fn check_weights(&self) -> Result<()> {
        // Every layer has several tensors: a config claiming more layers than the
        // checkpoint holds tensors is wrong, and must not make us list them all.
        if self.config.n_layers > self.weights.len() {
            let field = if self.config.arch == Arch::Gpt2 { "n_layer" } else { "num_hidden_layers" };
            return Err(ModelError::config(
                &self.config.path,
                field,
                format!(
                    "{} layers, but the checkpoint holds only {} tensors",
                    self.config.n_layers,
                    self.weights.len()
                ),
            ));
        }
        let tied = self.lm_head_tied();
        for spec in expected_weights(&self.config) {
            if spec.optional && (tied || !self.weights.contains(&spec.name)) {
                continue;
            }
            let info = self.weights.info(&spec.name)?;
            if info.shape != spec.shape {
                return Err(ModelError::Shape {
                    name: info.name.clone(),
                    path: info.path.clone(),
                    expected: spec.shape.clone(),
                    got: info.shape.clone(),
                });
            }
            if info.kiln_dtype().is_none() {
                return Err(ModelError::UnsupportedDType {
                    name: info.name.clone(),
                    path: info.path.clone(),
                    dtype: info.dtype.clone(),
                });
            }
        }
        Ok(())
    }
}
