//! Errors of the model crate. Every variant names the file and, where there is one, the
//! tensor or config field that was wrong, so a user can act on the message alone.

use std::path::PathBuf;

use kiln_tensor::TensorError;
use thiserror::Error;

/// Every error of the model crate.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A file the loader needs is not there.
    #[error("{what} not found: {} does not exist", path.display())]
    MissingFile {
        /// The path that does not exist.
        path: PathBuf,
        /// What the file is for (e.g. `model directory`, `GGUF file`).
        what: String,
    },

    /// The model path is not a directory (or cannot be listed).
    #[error("{}: {detail}", path.display())]
    NotADirectory {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },

    /// Reading or mapping a file failed.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },

    /// A JSON file (config.json, generation_config.json, index.json) is not valid JSON.
    #[error("{} is not valid JSON: {source}", path.display())]
    Json {
        /// The file.
        path: PathBuf,
        /// serde_json's error (with line and column).
        #[source]
        source: serde_json::Error,
    },

    /// A config field is missing, has the wrong type or an invalid value.
    #[error("{}: field `{field}`: {detail}", path.display())]
    Config {
        /// The config file.
        path: PathBuf,
        /// The field's name.
        field: String,
        /// What is wrong with it.
        detail: String,
    },

    /// `architectures` / `model_type` names a model kiln does not implement.
    #[error(
        "{}: unsupported architecture {value}; kiln supports GPT2LMHeadModel (model_type gpt2), \
         Qwen2ForCausalLM (qwen2) and LlamaForCausalLM (llama)",
        path.display()
    )]
    UnknownArchitecture {
        /// The config or GGUF file.
        path: PathBuf,
        /// The architecture as the file names it.
        value: String,
    },

    /// The directory has no weights kiln can read.
    #[error(
        "no weights in {}: expected model.safetensors or model.safetensors.index.json{hint}",
        dir.display()
    )]
    NoWeights {
        /// The model directory.
        dir: PathBuf,
        /// Empty, or the weight-like files that were found and why they are not read.
        hint: String,
    },

    /// A safetensors file is malformed or truncated.
    #[error("{}: invalid safetensors file: {detail}", path.display())]
    Safetensors {
        /// The safetensors file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },

    /// A safetensors index names a shard that is not on disk.
    #[error(
        "{}: shard {shard} (holding tensor `{tensor}`) is missing: {} does not exist",
        index.display(),
        path.display()
    )]
    MissingShard {
        /// The index file (`model.safetensors.index.json`).
        index: PathBuf,
        /// The shard's file name as the index gives it.
        shard: String,
        /// A tensor the index places in that shard.
        tensor: String,
        /// Where the shard was looked for.
        path: PathBuf,
    },

    /// A tensor the model needs is in none of the weight files.
    #[error("tensor `{name}` not found: looked for {} in {}", list_names(tried), list_paths(files))]
    MissingTensor {
        /// The tensor's name as the model asked for it.
        name: String,
        /// Every name that was looked up for it (may be empty).
        tried: Vec<String>,
        /// The files that were searched.
        files: Vec<PathBuf>,
    },

    /// A tensor has another shape than the config implies.
    #[error("tensor `{name}` in {} has shape {got:?}, expected {expected:?}", path.display())]
    Shape {
        /// The tensor's name in the file.
        name: String,
        /// The file holding it.
        path: PathBuf,
        /// The shape the config implies.
        expected: Vec<usize>,
        /// The shape in the file.
        got: Vec<usize>,
    },

    /// A tensor's element type cannot be used as a weight.
    #[error(
        "tensor `{name}` in {} has dtype {dtype}; kiln loads F32, F16 and BF16 weights",
        path.display()
    )]
    UnsupportedDType {
        /// The tensor's name in the file.
        name: String,
        /// The file holding it.
        path: PathBuf,
        /// The dtype as the safetensors header names it.
        dtype: String,
    },

    /// Uploading a named tensor failed (e.g. over the adapter's binding limit).
    #[error("tensor `{name}` in {}: {source}", path.display())]
    Tensor {
        /// The tensor's name.
        name: String,
        /// The file it comes from.
        path: PathBuf,
        /// The tensor-layer error.
        #[source]
        source: Box<TensorError>,
    },

    /// tokenizer.json could not be loaded, or encoding/decoding failed.
    #[error("{}: {detail}", path.display())]
    Tokenizer {
        /// The file the tokenizer was loaded from.
        path: PathBuf,
        /// What failed.
        detail: String,
    },

    /// The context (KV cache / max_position_embeddings) is too short for a request.
    #[error("context too long: {detail}")]
    Context {
        /// How many positions were needed and how many there are.
        detail: String,
    },

    /// An invalid parameter of a model-level call (generation settings, prompt, ...).
    #[error("invalid parameter {name}: {detail}")]
    Param {
        /// The parameter's name.
        name: String,
        /// What was wrong with its value.
        detail: String,
    },

    /// A tensor-layer error outside any named tensor (boxed: TensorError is large).
    #[error(transparent)]
    TensorError(Box<TensorError>),

    /// A GGUF file is malformed, truncated or of an unsupported version. `detail` names
    /// the metadata key or tensor where there is one.
    #[error("{}: invalid GGUF file: {detail}", path.display())]
    Gguf {
        /// The GGUF file.
        path: PathBuf,
        /// What is wrong, naming the key or tensor where there is one.
        detail: String,
    },

    /// A GGUF metadata key is missing or its value has the wrong type or range.
    #[error("{}: GGUF metadata `{key}`: {detail}", path.display())]
    GgufMetadata {
        /// The file the metadata comes from.
        path: PathBuf,
        /// The metadata key.
        key: String,
        /// What is wrong with it.
        detail: String,
    },

    /// A GGUF tensor's ggml type is one kiln cannot load (its data was asked for).
    #[error(
        "tensor `{name}` in {} has ggml type {ggml_type}; kiln loads F32, F16, BF16, Q8_0, Q4_0, Q4_1, \
         Q5_0, Q5_1, Q4_K, Q5_K and Q6_K",
        path.display()
    )]
    GgufUnsupportedType {
        /// The tensor's name in the file.
        name: String,
        /// The GGUF file.
        path: PathBuf,
        /// The ggml type's name.
        ggml_type: String,
    },
}

impl From<TensorError> for ModelError {
    fn from(e: TensorError) -> Self {
        ModelError::TensorError(Box::new(e))
    }
}

/// `Result` with [`ModelError`] as the default error.
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
