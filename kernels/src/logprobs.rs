//! Placeholder: launchers for `wgsl/logprobs.wgsl`.
