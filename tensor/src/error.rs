//! Errors of the tensor crate. Every variant names what was wrong so a user can act on it.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum TensorError {
    #[error("no GPU adapter found for backend {backend}. {hint}")]
    NoAdapter { backend: String, hint: String },

    #[error("adapter index {index} is out of range: {count} adapter(s) available for backend {backend} (see `kiln devices`)")]
    AdapterIndex { index: usize, count: usize, backend: String },

    #[error("unknown backend {0:?}: expected one of auto, vulkan, metal, dx12, gl")]
    UnknownBackend(String),

    #[error("could not open the GPU device {adapter}: {source}")]
    RequestDevice {
        adapter: String,
        #[source]
        source: wgpu::RequestDeviceError,
    },

    #[error("shape mismatch in {op}: {detail}")]
    Shape { op: String, detail: String },

    #[error("dtype mismatch in {op}: {detail}")]
    DType { op: String, detail: String },

    #[error("zero-size tensor in {op}: shape {shape:?} has no elements")]
    Empty { op: String, shape: Vec<usize> },

    #[error("tensor {what} needs {bytes} bytes, over this adapter's limit of {limit} bytes ({limit_name}); split it or use a smaller dtype")]
    TooLarge { what: String, bytes: u64, limit: u64, limit_name: &'static str },

    #[error("host data for a tensor of shape {shape:?} ({dtype}) must be {expected} bytes, got {got}")]
    HostData { shape: Vec<usize>, dtype: String, expected: u64, got: u64 },

    #[error("invalid parameter {name}: {detail}")]
    Param { name: String, detail: String },

    #[error("GPU error in {context}: {detail}")]
    Gpu { context: String, detail: String },
}

pub type Result<T, E = TensorError> = std::result::Result<T, E>;

impl TensorError {
    pub fn shape(op: impl Into<String>, detail: impl Into<String>) -> Self {
        TensorError::Shape { op: op.into(), detail: detail.into() }
    }
    pub fn dtype(op: impl Into<String>, detail: impl Into<String>) -> Self {
        TensorError::DType { op: op.into(), detail: detail.into() }
    }
    pub fn param(name: impl Into<String>, detail: impl Into<String>) -> Self {
        TensorError::Param { name: name.into(), detail: detail.into() }
    }
}
