#![warn(missing_docs)]
//! kiln-kernels: hand-written WGSL compute kernels and their launchers.
//!
//! Each op family lives in `wgsl/<family>.wgsl` with a Rust module of the same name
//! holding one launcher per entry point: validate shapes and dtypes → fill the
//! `Params` uniform → fetch the cached pipeline → dispatch on a [`Recorder`].
//! [`mod@reference`] holds a naive CPU twin of every kernel; [`tolerance`] the allowed
//! differences between them.
//!
//! [`Recorder`]: kiln_tensor::Recorder

pub mod argmax;
pub mod attention;
pub mod elementwise;
pub mod embedding;
pub mod kv_cache;
pub mod launch;
pub mod logit_edit;
pub mod logprobs;
pub mod matmul;
pub mod matvec;
pub mod norm;
pub mod quant;
pub mod reference;
pub mod rope;
pub mod sample;
pub mod selftest;
pub mod shaders;
pub mod softmax;
pub mod testing;
pub mod tolerance;
pub mod topn;

pub use kiln_tensor::{DType, Device, Recorder, Result, Tensor, TensorError};
