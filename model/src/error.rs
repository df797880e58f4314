//! Errors of the model crate. Every variant names the file and, where there is one, the
//! tensor or config field that was wrong, so a user can act on the message alone.

use std::path::PathBuf;

use kiln_tensor::TensorError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ModelError {
    /// A file the loader needs is not there.
    #[error("{what} not found: {} does not exist", path.display())]
    MissingFile { path: PathBuf, what: String },

    /// The model path is not a directory (or cannot be listed).
    #[error("{}: {detail}", path.display())]
    NotADirectory { path: PathBuf, detail: String },

    /// Reading or mapping a file failed.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (config.json, generation_config.json, index.json) is not valid JSON.
    #[error("{} is not valid JSON: {source}", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    /// A config field is missing, has the wrong type or an invalid value.
    #[error("{}: field `{field}`: {detail}", path.display())]
    Config { path: PathBuf, field: String, detail: String },

    /// `architectures` / `model_type` names a model kiln does not implement.
    #[error(
        "{}: unsupported architecture {value}; kiln supports GPT2LMHeadModel (model_type gpt2), \
         Qwen2ForCausalLM (qwen2) and LlamaForCausalLM (llama)",
        path.display()
    )]
    UnknownArchitecture { path: PathBuf, value: String },

    /// The directory has no weights kiln can read.
    #[error(
        "no weights in {}: expected model.safetensors or model.safetensors.index.json{hint}",
        dir.display()
    )]
    NoWeights { dir: PathBuf, hint: String },

    /// A safetensors file is malformed or truncated.
    #[error("{}: invalid safetensors file: {detail}", path.display())]
    Safetensors { path: PathBuf, detail: String },

    /// A safetensors index names a shard that is not on disk.
    #[error(
        "{}: shard {shard} (holding tensor `{tensor}`) is missing: {} does not exist",
        index.display(),
        path.display()
    )]
    MissingShard { index: PathBuf, shard: String, tensor: String, path: PathBuf },

    /// A tensor the model needs is in none of the weight files.
    #[error("tensor `{name}` not found: looked for {} in {}", list_names(tried), list_paths(files))]
    MissingTensor { name: String, tried: Vec<String>, files: Vec<PathBuf> },

    /// A tensor has another shape than the config implies.
    #[error("tensor `{name}` in {} has shape {got:?}, expected {expected:?}", path.display())]
    Shape { name: String, path: PathBuf, expected: Vec<usize>, got: Vec<usize> },

    /// A tensor's element type cannot be used as a weight.
    #[error(
        "tensor `{name}` in {} has dtype {dtype}; kiln loads F32, F16 and BF16 weights",
        path.display()
    )]
    UnsupportedDType { name: String, path: PathBuf, dtype: String },

    /// Uploading a named tensor failed (e.g. over the adapter's binding limit).
    #[error("tensor `{name}` in {}: {source}", path.display())]
    Tensor {
        name: String,
        path: PathBuf,
        #[source]
        source: Box<TensorError>,
    },

    /// tokenizer.json could not be loaded, or encoding/decoding failed.
    #[error("{}: {detail}", path.display())]
    Tokenizer { path: PathBuf, detail: String },

    /// The context (KV cache / max_position_embeddings) is too short for a request.
    #[error("context too long: {detail}")]
    Context { detail: String },

    /// An invalid parameter of a model-level call (generation settings, prompt, ...).
    #[error("invalid parameter {name}: {detail}")]
    Param { name: String, detail: String },

    /// A tensor-layer error outside any named tensor (boxed: TensorError is large).
    #[error(transparent)]
    TensorError(Box<TensorError>),

    /// A GGUF file is malformed, truncated or of an unsupported version. `detail` names
    /// the metadata key or tensor where there is one.
    #[error("{}: invalid GGUF file: {detail}", path.display())]
    Gguf { path: PathBuf, detail: String },

    /// A GGUF metadata key is missing or its value has the wrong type or range.
    #[error("{}: GGUF metadata `{key}`: {detail}", path.display())]
    GgufMetadata { path: PathBuf, key: String, detail: String },

    /// A GGUF tensor's ggml type is one kiln cannot load (its data was asked for).
    #[error(
        "tensor `{name}` in {} has ggml type {ggml_type}; kiln loads F32, F16, BF16, Q8_0, Q4_0, Q4_1, \
         Q5_0, Q5_1, Q4_K, Q5_K and Q6_K",
        path.display()
    )]
    GgufUnsupportedType { name: String, path: PathBuf, ggml_type: String },
}

impl From<TensorError> for ModelError {
    fn from(e: TensorError) -> Self {
        ModelError::TensorError(Box::new(e))
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;

fn list_names(names: &[String]) -> String {
    names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
}

fn list_paths(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "no weight files".to_string();
    }
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

impl ModelError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ModelError::Io { path: path.into(), source }
    }
    pub(crate) fn config(path: impl Into<PathBuf>, field: impl Into<String>, detail: impl Into<String>) -> Self {
        ModelError::Config { path: path.into(), field: field.into(), detail: detail.into() }
    }
    pub(crate) fn safetensors(path: impl Into<PathBuf>, detail: impl Into<String>) -> Self {
        ModelError::Safetensors { path: path.into(), detail: detail.into() }
    }
}
