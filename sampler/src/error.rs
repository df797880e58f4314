//! Errors of the sampler crate: an invalid parameter names the parameter and the allowed
//! range; model and GPU errors pass through.

use kiln_model::ModelError;
use kiln_tensor::TensorError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum SamplerError {
    /// A sampling or scoring parameter is out of range.
    #[error("invalid {name}: {detail}")]
    Param { name: String, detail: String },

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

pub type Result<T> = std::result::Result<T, SamplerError>;

/// Shorthand for a [`SamplerError::Param`].
pub fn param_error(name: &str, detail: impl Into<String>) -> SamplerError {
    SamplerError::Param { name: name.into(), detail: detail.into() }
}
