//! Placeholder: CPU twin of `wgsl/logprobs.wgsl`.
