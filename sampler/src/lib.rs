#![warn(missing_docs)]
//! kiln-sampler: what happens to the logits after the forward pass, on the GPU.
//!
//! - [`params`]: the sampling parameters and their validation.
//! - [`gpu`]: [`gpu::Sampler`], the per-request buffers and the kernels of one step:
//!   penalties and bias → temperature → top-k → top-p → min-p → a seeded draw, with the
//!   requested log-probabilities; one token id (4 bytes) is read back per step.
//! - [`batch_sampler`]: [`batch_sampler::BatchSampler`], one set of those buffers with a
//!   row per serving slot, sampling a whole batch in one pass (the engine's).
//! - [`generate`]: prefill then decode, sampling each token on the GPU.
//! - [`score`]: chain-rule log-probability of a text, perplexity, bits per byte,
//!   conditional answer scores and per-position entropy.
//! - [`beam`]: beam search with a length penalty.

pub mod batch_sampler;
pub mod beam;
pub mod engine;
pub mod eval;
pub mod error;
pub mod generate;
pub mod gpu;
pub mod lens;
pub mod params;
pub mod score;
pub mod stop;

pub use error::{Result, SamplerError};
pub use params::SamplingParams;
