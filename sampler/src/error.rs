//! Errors of the sampler crate: an invalid parameter names the parameter and the allowed
//! range; model and GPU errors pass through.

use kiln_model::ModelError;
use kiln_tensor::TensorError;
use thiserror::Error;

/// Every error of the sampler crate.
#[derive(Debug, Error)]
pub enum SamplerError {
    /// A sampling or scoring parameter is out of range.
    #[error("invalid {name}: {detail}")]
    Param {
        /// The parameter's name (`temperature`, `max_tokens`, `beams`, ...).
        name: String,
        /// What was wrong and the allowed range.
        detail: String,
    },

    /// An error from the model crate (e.g. a prompt it refuses, a failed forward pass).
    #[error(transparent)]
    Model(#[from] ModelError),

    /// A GPU-side error (boxed: TensorError is large).
    #[error(transparent)]
    Tensor(Box<TensorError>),
}

impl From<TensorError> for SamplerError {
    fn from(e: TensorError) -> Self {
        SamplerError::Tensor(Box::new(e))
    }
}

/// `Result` with [`SamplerError`].
pub type Result<T> = std::result::Result<T, SamplerError>;

/// Shorthand for a [`SamplerError::Param`].
pub fn param_error(name: &str, detail: impl Into<String>) -> SamplerError {
    SamplerError::Param { name: name.into(), detail: detail.into() }
}
