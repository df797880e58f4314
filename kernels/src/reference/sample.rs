//! Placeholder: CPU twin of `wgsl/sample.wgsl`.
