//! Errors of the tensor crate. Every variant names what was wrong so a user can act on it.

use thiserror::Error;

/// Every error the tensor crate (and the kernel launchers built on it) returns.
#[derive(Debug, Error)]
pub enum TensorError {
    /// The chosen backend exposes no adapter at all ([`crate::Device::new`]).
    #[error("no GPU adapter found for backend {backend}. {hint}")]
    NoAdapter {
        /// The backend that was searched, as [`crate::BackendChoice`] prints it.
        backend: String,
        /// What to install to get an adapter (a GPU driver or software Vulkan).
        hint: String,
    },

    /// `--adapter N` names an index past the adapters the backend lists.
    #[error("adapter index {index} is out of range: {count} adapter(s) available for backend {backend} (see `kiln devices`)")]
    AdapterIndex {
        /// The index that was asked for.
        index: usize,
        /// How many adapters the backend lists.
        count: usize,
        /// The backend that was searched.
        backend: String,
    },

    /// A backend name (`--backend`, `KILN_BACKEND`) that is not auto, vulkan, metal, dx12
    /// or gl (or one of their aliases); holds the name as given.
    #[error("unknown backend {0:?}: expected one of auto, vulkan, metal, dx12, gl")]
    UnknownBackend(String),

    /// wgpu refused to open a device on the chosen adapter.
    #[error("could not open the GPU device {adapter}: {source}")]
    RequestDevice {
        /// The adapter's name.
        adapter: String,
        /// wgpu's error.
        #[source]
        source: wgpu::RequestDeviceError,
    },

    /// Shapes, offsets or counts that do not fit the operation (also: tensors on different
    /// devices, too many tensors bound to one dispatch).
    #[error("shape mismatch in {op}: {detail}")]
    Shape {
        /// The operation or kernel that refused them.
        op: String,
        /// What was wrong.
        detail: String,
    },

    /// A tensor or host slice of a dtype the operation does not take.
    #[error("dtype mismatch in {op}: {detail}")]
    DType {
        /// The operation or kernel that refused it.
        op: String,
        /// What was wrong.
        detail: String,
    },

    /// A shape with a zero dimension, so no elements.
    #[error("zero-size tensor in {op}: shape {shape:?} has no elements")]
    Empty {
        /// The operation that was given the shape.
        op: String,
        /// The shape.
        shape: Vec<usize>,
    },

    /// Something over one of the adapter's limits: a tensor or row larger than one binding
    /// can see, or a dispatch with more workgroups in one dimension than allowed.
    #[error("tensor {what} needs {bytes} bytes, over this adapter's limit of {limit} bytes ({limit_name}); split it or use a smaller dtype")]
    TooLarge {
        /// What was too large.
        what: String,
        /// Its size: bytes, or for a dispatch the largest workgroup count.
        bytes: u64,
        /// The adapter's limit, in the same unit as `bytes`.
        limit: u64,
        /// The name of the wgpu limit, e.g. `max_storage_buffer_binding_size`.
        limit_name: &'static str,
    },

    /// Host bytes given for an upload are not the size the shape and dtype need.
    #[error("host data for a tensor of shape {shape:?} ({dtype}) must be {expected} bytes, got {got}")]
    HostData {
        /// The tensor's shape.
        shape: Vec<usize>,
        /// The tensor's dtype name.
        dtype: String,
        /// Bytes the shape and dtype need.
        expected: u64,
        /// Bytes that were given.
        got: u64,
    },

    /// A launcher or constructor argument out of its valid range (a slot, a position,
    /// RoPE theta, ...).
    #[error("invalid parameter {name}: {detail}")]
    Param {
        /// The parameter's name.
        name: String,
        /// What was wrong with its value.
        detail: String,
    },

    /// wgpu reported an error: a shader that failed to compile, a validation error of an
    /// earlier command, a failed wait or a failed buffer mapping.
    #[error("GPU error in {context}: {detail}")]
    Gpu {
        /// What kiln was doing (e.g. `readback`, `compiling <pipeline>`).
        context: String,
        /// wgpu's message.
        detail: String,
    },
}

/// `Result` with [`TensorError`] as the default error.
pub type Result<T, E = TensorError> = std::result::Result<T, E>;

impl TensorError {
    /// A [`TensorError::Shape`] for `op`.
    pub fn shape(op: impl Into<String>, detail: impl Into<String>) -> Self {
        TensorError::Shape { op: op.into(), detail: detail.into() }
    }
    /// A [`TensorError::DType`] for `op`.
    pub fn dtype(op: impl Into<String>, detail: impl Into<String>) -> Self {
        TensorError::DType { op: op.into(), detail: detail.into() }
    }
    /// A [`TensorError::Param`] for the parameter `name`.
    pub fn param(name: impl Into<String>, detail: impl Into<String>) -> Self {
        TensorError::Param { name: name.into(), detail: detail.into() }
    }
}
