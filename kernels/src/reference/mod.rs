//! Naive CPU twins of every kernel: the definition each WGSL kernel is tested against.
//! One file per op family, mirroring `wgsl/`. Written for clarity, accumulating in
//! f64 where that makes the reference more exact.

pub mod argmax;
pub mod attention;
pub mod elementwise;
pub mod embedding;
pub mod kv_cache;
pub mod logit_edit;
pub mod logprobs;
pub mod matmul;
pub mod matvec;
pub mod norm;
pub mod rope;
pub mod sample;
pub mod softmax;
pub mod topn;

pub use elementwise::*;
